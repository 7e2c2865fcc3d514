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
    python -m scripts.experiments.adding --lengths 200   # one length; keeps the others' results
    python -m scripts.experiments.adding --lengths 200 --network LSTM --epochs 32 --out DIR

A run of some lengths or networks only keeps the other runs already in ``OUT/results.json``
when they were made with the same recipe (fast or full, epochs), and redraws the figure with all
of them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from threadpoolctl import threadpool_limits

import backprop as bp
from backprop.app.datasets import adding_problem

from ._common import DOCS, FAST, SEED, save_figure, table, write_summary

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
# t = 100 first: the length the claims are about, in case a long run must be cut short
LENGTHS = (100, 50, 200)
FAST_LENGTHS = (10, 20)


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
        print(f"  epoch {epoch}: test MSE {self.curve[-1]:.4g}", flush=True)  # progress


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


def plot(runs: list[dict], lengths: tuple[int, ...], show: tuple[int, ...], out_dir: Path) -> None:
    """One panel of test MSE per epoch for each length in ``lengths``, then one panel of
    ``||dL/dh_s||`` over s for each length in ``show``."""
    panels = len(lengths) + len(show)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.8))
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
    for ax, show_t in zip(axes[len(lengths) :], show, strict=True):
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


def report(
    runs: list[dict],
    n_train: int,
    epochs: int,
    fast: bool,
    out_dir: Path,
    earlier_environment: dict | str | None = None,
) -> dict:
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
    if earlier_environment is not None:  # where the runs kept from an earlier file were made
        results["earlier_environment"] = earlier_environment
    write_summary(out_dir, "The adding problem", body, results)
    return results


def earlier_runs(
    out_dir: Path, todo: set[tuple[str, int]], n_train: int, epochs: int, fast: bool
) -> tuple[list[dict], dict | str | None]:
    """The runs in ``out_dir/results.json`` other than the ``(network, t)`` pairs in ``todo``,
    if that file was made with the same recipe (else none), and the environment they were
    measured in."""
    path = out_dir / "results.json"
    if not path.is_file():
        return [], None
    old = json.loads(path.read_text())
    if (old.get("fast"), old.get("epochs"), old.get("n_train")) != (fast, epochs, n_train):
        print(f"{path}: another recipe; its runs are not kept", flush=True)
        return [], None
    kept = [r for r in old["runs"].values() if (r["network"], r["t"]) not in todo]
    if not kept:
        return [], None
    return kept, old.get("earlier_environment", old.get("environment", "not recorded"))


def run(
    out_dir: Path,
    fast: bool = False,
    plots: bool = True,
    lengths: tuple[int, ...] | None = None,
    networks: tuple[str, ...] | None = None,
    epochs: int | None = None,
) -> dict:
    """Train ``networks`` (default all of ``CELLS``) at each length in ``lengths`` (default
    ``LENGTHS``, or ``FAST_LENGTHS`` with ``fast``) for ``epochs`` (default 16, fast 2); the
    other runs already in ``out_dir`` with the same recipe are kept."""
    out_dir = Path(out_dir)
    lengths = tuple(lengths or (FAST_LENGTHS if fast else LENGTHS))
    networks = tuple(networks or CELLS)
    if any(t < 2 for t in lengths):
        raise ValueError(f"lengths must be at least 2 (a marker in each half), got {lengths}")
    unknown = [name for name in networks if name not in CELLS]
    if unknown:
        raise ValueError(f"unknown network {unknown[0]!r}; valid: {', '.join(CELLS)}")
    n_train, n_test, default_epochs = (512, 256, 2) if fast else (8000, 1000, 16)
    epochs = epochs or default_epochs
    todo = {(cell, t) for cell in networks for t in lengths}
    runs, earlier_env = earlier_runs(out_dir, todo, n_train, epochs, fast)
    results: dict = {}
    for length in lengths:
        X, y = adding_problem(n_train, length, np.random.default_rng(SEED))
        Xt, yt = adding_problem(n_test, length, np.random.default_rng(SEED + 1))
        data = {"X_train": X, "y_train": y, "X_test": Xt, "y_test": yt}
        for cell in networks:
            print(f"t={length} {cell}: training", flush=True)
            runs.append(train(cell, length, data, epochs))
            print(f"t={length} {cell}: test MSE {runs[-1]['test_mse']:.4g}", flush=True)
            results = report(runs, n_train, epochs, fast, out_dir, earlier_env)
        if plots:
            done = tuple(sorted({r["t"] for r in runs}))
            show = tuple(t for t in done if t >= 100) or (done[-1],)
            plot(runs, done, show, out_dir)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, help=f"output folder (default {DOCS / NAME}; with --fast {FAST / NAME})"
    )
    parser.add_argument("--fast", action="store_true", help="the reduced form the tests run")
    parser.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        help=f"sequence lengths to run (default {LENGTHS}, fast {FAST_LENGTHS}); "
        "the results of other lengths already in the output folder are kept",
    )
    parser.add_argument(
        "--network", choices=list(CELLS), action="append", help="one network (repeatable)"
    )
    parser.add_argument("--epochs", type=int, help="epochs (default 16; fast 2)")
    args = parser.parse_args()
    out = args.out or (FAST if args.fast else DOCS) / NAME
    start = time.perf_counter()
    with threadpool_limits(limits=1):  # small matrices: one BLAS thread, repeatable timings
        run(out, fast=args.fast, lengths=args.lengths, networks=args.network, epochs=args.epochs)
    print(f"{NAME}: {time.perf_counter() - start:.1f} s -> {out}")
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
