"""Experiment 1: stochastic vs full-batch vs mini-batch gradient descent.

The same network (64-64-10, ReLU, He initialization, seed 0) is trained on the same digits with
the same plain SGD step size in the three modes of ``bp.Trainer``. After every update the loss on
the whole training set is measured (in inference mode, outside the timed training), so the curves
compare like with like: against updates, against epochs (passes over the data) and against
wall-clock training time.

What it shows: full-batch descent with a small enough step lowers the loss at every update but
needs many epochs; stochastic updates (one sample) raise the loss on a large share of updates
yet make the most progress per epoch; mini-batches sit in between and win on wall-clock time
because each update is one vectorized matrix product.

    python -m scripts.experiments.modes            # about a minute
    python -m scripts.experiments.modes --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import SEED, BatchRecorder, accuracy, digits, main, save_figure, table, write_summary

NAME = "modes"
LR = 0.1
EARLY = 200  # updates over which the noise of the steps is measured
TARGET = 0.5  # "reaches a given loss": the first epoch whose full training loss is below this
COLORS = {"stochastic": "tab:red", "minibatch": "tab:blue", "batch": "tab:green"}


def make_model() -> bp.Sequential:
    return bp.Sequential([bp.Dense(64, 64), bp.ReLU(), bp.Dense(64, 10)], seed=SEED)


def train_mode(mode: str, epochs: int, data: dict, batch_size: int = 32) -> dict:
    """Train one mode; returns its per-update record and final scores."""
    X, y = data["X_train"], data["y_train"]
    model = make_model()
    recorder = BatchRecorder(X, y, every=1)
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.SGD(lr=LR),
        mode=mode,
        batch_size=batch_size,
        epochs=epochs,
        callbacks=[recorder],
        seed=SEED,
    )
    start = time.perf_counter()
    trainer.fit(X, y)
    wall = time.perf_counter() - start
    steps = np.array(recorder.full_step)
    loss = np.array(recorder.full_loss)
    per_epoch = trainer.steps_per_epoch
    epoch_loss = loss[steps % per_epoch == 0]  # the loss after each whole epoch (and at 0)
    below = np.flatnonzero(epoch_loss[1:] < TARGET)
    reached = np.flatnonzero(loss < TARGET)
    seconds_to_target = float(recorder.full_time[reached[0]]) if reached.size else None
    # noise: the share of the loss's movement over the first EARLY updates that goes upward
    # (0 for a monotone descent, about 0.5 for a random walk)
    change = np.diff(loss[: EARLY + 1])
    upward = float(np.sum(np.maximum(change, 0)) / np.sum(np.abs(change)))
    return {
        "mode": mode,
        "batch_size": trainer.resolve_batch_size(len(X)),
        "epochs": epochs,
        "updates": trainer.step_count,
        "train_time_s": recorder.full_time[-1],
        "wall_time_s": wall,
        "final_train_loss": float(loss[-1]),
        "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
        "epochs_to_target": int(below[0] + 1) if below.size else None,
        "seconds_to_target": seconds_to_target,
        "updates_raising_loss": float(np.mean(change > 0)),
        "upward_share": upward,
        "steps": steps,
        "loss": loss,
        "time": np.array(recorder.full_time),
        "per_epoch": per_epoch,
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    for r in runs:
        c, label = COLORS[r["mode"]], f"{r['mode']} (batch {r['batch_size']})"
        s = slice(1, None)  # from the first update on: the axes are logarithmic
        axes[0].plot(r["steps"][s], r["loss"][s], color=c, label=label, lw=1)
        axes[1].plot(r["steps"][s] / r["per_epoch"], r["loss"][s], color=c, label=label, lw=1)
        axes[2].plot(r["time"][s], r["loss"][s], color=c, label=label, lw=1)
    titles = ["per update", "per epoch (pass over the data)", "per second of training"]
    xlabels = ["updates", "epochs", "seconds of training (measurement excluded)"]
    for ax, title, xlabel in zip(axes, titles, xlabels, strict=True):
        ax.set_title(f"Training loss {title}")
        ax.set_xlabel(f"{xlabel}, log scale")
        ax.set_xscale("log")
        ax.axhline(TARGET, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy on the whole training set")
    axes[0].legend()
    fig.suptitle(
        f"Same model, data and SGD step (lr={LR}) in the three modes; dotted line: loss {TARGET}",
        y=1.02,
    )
    save_figure(fig, out_dir, "modes_curves")

    # the first updates, on a linear axis: the noise of one-sample steps is visible
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for r in runs:
        label = (
            f"{r['mode']}: {100 * r['updates_raising_loss']:.0f}% of updates raise the loss, "
            f"upward share {r['upward_share']:.2f}"
        )
        s = slice(0, EARLY + 1)
        ax.plot(r["steps"][s], r["loss"][s], color=COLORS[r["mode"]], lw=1, label=label)
    ax.set_title(f"The first {EARLY} updates: training loss after each update")
    ax.set_xlabel("update")
    ax.set_ylabel("cross-entropy on the whole training set")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.95)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend above the curves
    save_figure(fig, out_dir, "modes_first_updates")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train the three modes; write figures and summary to ``out_dir``; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    if fast:  # a third of the training set and fewer epochs
        data["X_train"], data["y_train"] = data["X_train"][:300], data["y_train"][:300]
    epochs = (
        {"stochastic": 1, "minibatch": 20, "batch": 40}
        if fast
        else {"stochastic": 5, "minibatch": 30, "batch": 300}
    )
    runs = [train_mode(mode, epochs[mode], data) for mode in ("stochastic", "minibatch", "batch")]
    if plots:
        plot(runs, out_dir)
    keys = [
        "mode",
        "batch_size",
        "epochs",
        "updates",
        "train_time_s",
        "final_train_loss",
        "test_accuracy",
        "epochs_to_target",
        "seconds_to_target",
        "updates_raising_loss",
        "upward_share",
    ]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; 64-64-10 ReLU
network; plain SGD with lr={LR} in every mode; `epochs_to_target` is the first epoch whose
training loss is below {TARGET} (None: not within the run), `seconds_to_target` the training
time until the first update after which it is; over the first {EARLY}
updates, `updates_raising_loss` is the fraction of updates after which the training loss is
higher than before, and `upward_share` is the upward part of the loss's total movement
(0: a monotone descent; about 0.5: a random walk).

{table(rows)}

![curves](modes_curves.png)
![first updates](modes_first_updates.png)
"""
    results = {"runs": {r["mode"]: r for r in rows}, "fast": fast}
    write_summary(out_dir, "Stochastic vs batch vs mini-batch", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
