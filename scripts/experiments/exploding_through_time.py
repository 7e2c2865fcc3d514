"""Experiment: exploding gradients through time, with and without clipping by the global norm.

A tanh RNN (64 units) on the adding problem (t = 50) starts with large recurrent weights,
``U = 3 Q`` with Q a random orthogonal matrix. The states stay bounded (tanh), but at each step
back BPTT multiplies the gradient by ``diag(1 - h_s^2) U^T``, whose norm is near 3 wherever units
are not saturated: ``||dL/dh_0|| / ||dL/dh_49||`` is about 1e7 at initialization. Plain SGD then
takes steps of ``lr * ||g||``, which throw the weights far away; with ``clip_norm`` every step is
at most ``lr * c`` long. Both runs are otherwise identical (same weights, batches and lr).

    python -m scripts.experiments.exploding_through_time          # minutes
    python -m scripts.experiments.exploding_through_time --fast   # what the tests run
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp
from backprop.app.datasets import adding_problem

from ._common import SEED, BatchRecorder, main, save_figure, table, write_summary

NAME = "exploding_through_time"
LENGTH = 50
UNITS = 64
GAIN = 3.0
LR = 0.1
SETTINGS = {"no clipping": None, "clip_norm=1": 1.0}
COLORS = {"no clipping": "tab:red", "clip_norm=1": "tab:blue"}


def make_model() -> bp.Sequential:
    model = bp.Sequential([bp.RNN(UNITS), bp.Dense(1)], input_shape=(LENGTH, 2), seed=SEED)
    q, _ = np.linalg.qr(np.random.default_rng(SEED).standard_normal((UNITS, UNITS)))
    model.layers[0].params["U"][...] = GAIN * q
    return model


def state_gradient_ratio(model: bp.Sequential, X: np.ndarray, y: np.ndarray) -> float:
    rnn = model.layers[0]
    rnn.record_state_grads = True
    loss = bp.MeanSquaredError()
    loss.forward(model.forward(X, training=True), y)
    model.backward(loss.backward())
    rnn.record_state_grads = False
    return float(rnn.state_grad_norms[0] / rnn.state_grad_norms[-1])


def train(label: str, data: dict, epochs: int) -> dict:
    model = make_model()
    ratio = state_gradient_ratio(model, data["X_test"][:256], data["y_test"][:256])
    recorder = BatchRecorder()
    trainer = bp.Trainer(
        model,
        bp.MeanSquaredError(),
        bp.SGD(lr=LR),
        batch_size=64,
        epochs=epochs,
        clip_norm=SETTINGS[label],
        callbacks=[recorder],
        seed=SEED,
    )
    diverged = "no"
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(data["X_train"], data["y_train"])
    except bp.TrainingDivergedError as exc:
        diverged = str(exc).split(":")[0]
    with np.errstate(over="ignore", invalid="ignore"):
        test_mse = float(
            bp.MeanSquaredError().forward(model.predict(data["X_test"]), data["y_test"])
        )
    norms = np.array(recorder.grad_norm)
    clip = SETTINGS[label]
    return {
        "setting": label,
        "diverged": diverged,
        "updates": trainer.step_count,
        "state_grad_ratio_init": ratio,
        "first_grad_norm": float(norms[0]),
        "max_grad_norm": float(norms.max()),
        "clipped_share": float(np.mean(norms > clip)) if clip else 0.0,
        "first_loss": recorder.batch_loss[0],
        "max_loss": float(np.max(recorder.batch_loss)),
        "test_mse": test_mse,
        "norms": norms,
        "batch_loss": np.array(recorder.batch_loss),
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for r in runs:
        steps = np.arange(1, len(r["norms"]) + 1)
        c = COLORS[r["setting"]]
        axes[0].plot(steps, r["norms"], color=c, lw=1, label=r["setting"])
        axes[1].plot(steps, r["batch_loss"], color=c, lw=1, label=r["setting"])
        if SETTINGS[r["setting"]]:
            axes[0].axhline(SETTINGS[r["setting"]], color=c, ls="--", lw=1)
    axes[0].set_title("global gradient norm before clipping (dashed: the bound)")
    axes[1].set_title("training loss of each batch (MSE; 0.167 = predict 1)")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("update")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"tanh RNN, U = {GAIN:g} x orthogonal, adding problem t={LENGTH}, SGD lr={LR}")
    save_figure(fig, out_dir, "exploding_through_time")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    out_dir = Path(out_dir)
    n_train, epochs = (640, 1) if fast else (4000, 20)
    X, y = adding_problem(n_train, LENGTH, np.random.default_rng(SEED))
    Xt, yt = adding_problem(1000, LENGTH, np.random.default_rng(SEED + 1))
    data = {"X_train": X, "y_train": y, "X_test": Xt, "y_test": yt}
    runs = [train(label, data, epochs) for label in SETTINGS]
    if plots:
        plot(runs, out_dir)
    keys = ["setting", "diverged", "updates", "state_grad_ratio_init", "first_grad_norm"]
    keys += ["max_grad_norm", "clipped_share", "first_loss", "max_loss", "test_mse"]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Adding problem, t={LENGTH}: {n_train} training and 1000 test sequences; RNN({UNITS}, tanh) with
U = {GAIN:g} Q (Q random orthogonal), then Dense(1); MSE, plain SGD lr={LR}, batch 64,
{epochs} epochs. `state_grad_ratio_init` is `||dL/dh_0|| / ||dL/dh_49||` at initialization;
`clipped_share` the fraction of updates whose norm exceeded the bound.

{table(rows)}

![exploding gradients through time](exploding_through_time.png)
"""
    results = {"runs": {r["setting"]: r for r in rows}, "epochs": epochs, "fast": fast}
    write_summary(out_dir, "Exploding gradients through time", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
