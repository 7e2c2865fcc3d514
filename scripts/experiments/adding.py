"""Experiment: the adding problem (Hochreiter & Schmidhuber 1997), tanh RNN vs LSTM vs GRU.

Each sequence has t steps of two channels: a value uniform in [0, 1) and a marker that is 1 at
exactly two steps, one in each half of the sequence. The target is the sum of the two marked
values. Predicting the constant 1 scores MSE 2/12 = 0.167; doing better means carrying the first
marked value across at least t/2 steps, which backpropagation through time must teach through
the product of t/2 step Jacobians. The tanh RNN's product shrinks geometrically (the gradient
vanishes), the LSTM's cell and the GRU's update gate keep a path whose Jacobian is near 1.

For every network the figure also shows ``||dL/dh_s||``, the gradient reaching the state at
step s of a test batch, over s: at initialization and after training.

    python -m scripts.experiments.adding            # the full run (see docs/experiments/adding.md)
    python -m scripts.experiments.adding --fast     # seconds: what the tests run
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp
from backprop.app.datasets import adding_problem

from ._common import SEED, main, save_figure, table, write_summary

NAME = "adding"
UNITS = 64
BATCH = 64
LR = 3e-3  # Adam; with clip_norm 1 (gradient spikes appear once the LSTM starts to solve it)
CLIP = 1.0
BASELINE = 2 / 12  # MSE of always predicting 1
CELLS = {
    "tanh RNN": lambda: bp.RNN(UNITS),
    "LSTM": lambda: bp.LSTM(UNITS),  # forget-gate bias 1 at initialization
    "GRU": lambda: bp.GRU(UNITS),
}
COLORS = {"tanh RNN": "tab:red", "LSTM": "tab:blue", "GRU": "tab:green"}


def make_model(cell: str, length: int) -> bp.Sequential:
    return bp.Sequential([CELLS[cell](), bp.Dense(1)], input_shape=(length, 2), seed=SEED)


def state_gradients(model: bp.Sequential, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over the batch of ``||dL/dh_s||`` for every step s (MSE loss, one backward pass)."""
    rnn = model.layers[0]
    rnn.record_state_grads = True
    loss = bp.MeanSquaredError()
    loss.forward(model.forward(X, training=True), y)
    model.backward(loss.backward())
    rnn.record_state_grads = False
    return rnn.state_grad_norms.copy()


class TestMSE(bp.Callback):
    """The test-set MSE after every epoch."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y, self.curve = X, y, []

    def on_epoch_end(self, trainer, epoch, logs):
        self.curve.append(
            float(bp.MeanSquaredError().forward(trainer.model.predict(self.X), self.y))
        )


def train(cell: str, length: int, data: dict, epochs: int) -> dict:
    model = make_model(cell, length)
    probe = data["X_test"][:256], data["y_test"][:256]
    grads_init = state_gradients(model, *probe)
    recorder = TestMSE(data["X_test"], data["y_test"])
    trainer = bp.Trainer(
        model,
        bp.MeanSquaredError(),
        bp.Adam(lr=LR),
        batch_size=BATCH,
        epochs=epochs,
        clip_norm=CLIP,
        callbacks=[recorder],
        seed=SEED,
    )
    trainer.fit(data["X_train"], data["y_train"])
    return {
        "network": cell,
        "t": length,
        "test_mse": recorder.curve[-1],
        "best_test_mse": min(recorder.curve),
        "updates": trainer.step_count,
        "grad_first_over_last_init": float(grads_init[0] / grads_init[-1]),
        "curve": recorder.curve,
        "grads_init": grads_init.tolist(),
        "grads_trained": state_gradients(model, *probe).tolist(),
    }


def plot(runs: list[dict], lengths: tuple[int, ...], show_t: int, out_dir: Path) -> None:
    fig, axes = plt.subplots(1, len(lengths) + 1, figsize=(4.2 * (len(lengths) + 1), 3.8))
    axes = list(np.atleast_1d(axes))
    for ax, length in zip(axes, lengths, strict=False):
        for r in (r for r in runs if r["t"] == length):
            ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], color=COLORS[r["network"]])
            ax.plot([], [], color=COLORS[r["network"]], label=r["network"])
        ax.axhline(BASELINE, color="gray", ls="--", lw=1, label="predict 1 (0.167)")
        ax.set_yscale("log")
        ax.set_title(f"t = {length}: test MSE")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    ax = axes[-1]
    for r in (r for r in runs if r["t"] == show_t):
        c = COLORS[r["network"]]
        ax.plot(r["grads_init"], color=c, ls=":", label=f"{r['network']}, initial")
        ax.plot(r["grads_trained"], color=c, label=f"{r['network']}, trained")
    ax.set_yscale("log")
    ax.set_title(f"||dL/dh_s|| over steps s (t = {show_t})")
    ax.set_xlabel("step s (the loss is at the last step)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save_figure(fig, out_dir, "adding_problem")


def report(runs: list[dict], n_train: int, epochs: int, fast: bool, out_dir: Path) -> dict:
    """Write summary.md and results.json for the runs so far (called after every run, so that a
    run cut short still leaves consistent files)."""
    keys = ["network", "t", "test_mse", "best_test_mse", "updates", "grad_first_over_last_init"]
    rows = [{k: r[k] for k in keys} for r in sorted(runs, key=lambda r: r["t"])]
    body = f"""
{n_train} training and 1000 test sequences per length t ({"fast form" if fast else "full run"});
{UNITS} units, then Dense(1); MSE loss, Adam lr={LR}, batch {BATCH}, clip_norm={CLIP},
{epochs} epochs. `test_mse` is after the last epoch (baseline 0.167: always predict 1);
`grad_first_over_last_init` is `||dL/dh_0|| / ||dL/dh_(t-1)||` at initialization, on 256 test
sequences.

{table(rows)}

![adding problem](adding_problem.png)
"""
    results = {
        "runs": {f"{r['network']} t={r['t']}": r for r in runs},
        "epochs": epochs,
        "n_train": n_train,
        "fast": fast,
    }
    write_summary(out_dir, "The adding problem", body, results)
    return results


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    out_dir = Path(out_dir)
    # t = 100 first: the length the claims are about, in case a long run must be cut short
    lengths = (10, 20) if fast else (100, 50, 200)
    n_train, n_test, epochs = (512, 256, 2) if fast else (8000, 1000, 16)
    runs: list[dict] = []
    for length in lengths:
        X, y = adding_problem(n_train, length, np.random.default_rng(SEED))
        Xt, yt = adding_problem(n_test, length, np.random.default_rng(SEED + 1))
        data = {"X_train": X, "y_train": y, "X_test": Xt, "y_test": yt}
        for cell in CELLS:
            runs.append(train(cell, length, data, epochs))
            print(f"t={length} {cell}: test MSE {runs[-1]['test_mse']:.4g}", flush=True)
            results = report(runs, n_train, epochs, fast, out_dir)
        if plots:
            done = tuple(sorted({r["t"] for r in runs}))
            plot(runs, done, lengths[0] if not fast else lengths[1], out_dir)
    return results


if __name__ == "__main__":
    main(run, NAME)
