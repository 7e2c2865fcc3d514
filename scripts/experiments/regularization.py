"""Experiment 4: overfitting on little data, and four ways to regularize.

A network much larger than its training set (64-256-256-10, 85,002 parameters for 150
images) is trained with Adam until it fits the training set perfectly. Training and validation
losses are measured every epoch in inference mode and without the penalty (so the curves compare
the same quantity across settings). Settings: no regularization, an L2 penalty
(``l2/2 * sum W^2``), an L1 penalty (``l1 * sum |W|``), dropout after each hidden layer, and
early stopping on the validation loss (restoring the best epoch's weights).

What it shows: without regularization the validation loss turns up after a few epochs while
the training loss keeps falling towards 0: the gap between them is overfitting. Each
regularizer narrows the gap; the test accuracy shows which trade-off pays on this data.

    python -m scripts.experiments.regularization            # about a minute
    python -m scripts.experiments.regularization --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import (
    SEED,
    CurveRecorder,
    accuracy,
    data_loss,
    digits,
    main,
    save_figure,
    table,
    write_summary,
)

NAME = "regularization"
N_TRAIN = 150
HIDDEN = 256
SETTINGS = {
    "none": {},
    "L2 (l2=0.01)": {"l2": 0.01},
    "L1 (l1=3e-4)": {"l1": 3e-4},
    "dropout 0.5": {"drop_rate": 0.5},
    "early stopping": {"patience": 10},
}
COLORS = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]


def make_model(drop_rate: float = 0.0, hidden: int = HIDDEN) -> bp.Sequential:
    layers: list[bp.Layer] = [bp.Dense(64, hidden), bp.ReLU()]
    if drop_rate:
        layers.append(bp.Dropout(drop_rate))
    layers += [bp.Dense(hidden, hidden), bp.ReLU()]
    if drop_rate:
        layers.append(bp.Dropout(drop_rate))
    layers.append(bp.Dense(hidden, 10))
    return bp.Sequential(layers, dtype="float64", seed=SEED)  # float64: the same digits everywhere


def train(label: str, data: dict, epochs: int, lr: float, hidden: int = HIDDEN) -> dict:
    opts = SETTINGS[label]
    model = make_model(opts.get("drop_rate", 0.0), hidden)
    train_set, val_set = (data["X_train"], data["y_train"]), (data["X_val"], data["y_val"])
    curves = CurveRecorder({"train": train_set, "val": val_set})
    callbacks: list[bp.Callback] = [curves]
    stopper = None
    if "patience" in opts:
        stopper = bp.EarlyStopping(monitor="val_loss", patience=opts["patience"])
        callbacks.append(stopper)
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.Adam(lr=lr),
        batch_size=32,
        epochs=epochs,
        l1=opts.get("l1", 0.0),
        l2=opts.get("l2", 0.0),
        callbacks=callbacks,
        seed=SEED,
    )
    trainer.fit(*train_set, validation_data=val_set)
    loss = bp.SoftmaxCrossEntropy()
    train_loss, val_loss = data_loss(model, loss, *train_set), data_loss(model, loss, *val_set)
    return {
        "setting": label,
        "epochs_run": trainer.epoch,
        "best_epoch": None if stopper is None else stopper.best_epoch + 1,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "gap": val_loss - train_loss,
        "train_accuracy": accuracy(model, *train_set),
        "val_accuracy": accuracy(model, *val_set),
        "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
        "curves": curves.curves,
    }


def plot(runs: list[dict], out_dir: Path, lr: float, hidden: int) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for r, c in zip(runs, COLORS, strict=True):
        epochs = np.arange(1, len(r["curves"]["train_loss"]) + 1)
        axes[0].plot(epochs, r["curves"]["train_loss"], color=c, lw=1.5, label=r["setting"])
        axes[1].plot(epochs, r["curves"]["val_loss"], color=c, lw=1.5, label=r["setting"])
        axes[2].plot(epochs, r["curves"]["val_accuracy"], color=c, lw=1.5, label=r["setting"])
        if r["best_epoch"]:
            axes[1].plot(
                r["best_epoch"],
                r["val_loss"],
                "*",
                color=c,
                ms=14,
                label="early stopping: best epoch, restored",
            )
    axes[0].set_title("Training loss: falls towards 0 without regularization")
    axes[0].set_ylabel("cross-entropy without penalty, log scale")
    axes[0].set_yscale("log")
    axes[1].set_title("Validation loss: turns up again when overfitting")
    axes[1].set_ylabel("cross-entropy")
    axes[1].set_ylim(0.15, 0.65)
    axes[2].set_title("Validation accuracy")
    axes[2].set_ylabel("accuracy")
    axes[2].set_ylim(0.8, 0.96)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(
        f"{N_TRAIN} training images, 64-{hidden}-{hidden}-10 ReLU network, Adam lr={lr:g}; "
        "losses in inference mode",
        y=1.02,
    )
    save_figure(fig, out_dir, "regularization_curves")

    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(runs))
    ax.bar(x - 0.2, [r["train_accuracy"] for r in runs], 0.4, label="training", color="0.6")
    ax.bar(x + 0.2, [r["test_accuracy"] for r in runs], 0.4, label="test", color="tab:blue")
    for i, r in enumerate(runs):
        ax.text(
            i + 0.2,
            r["test_accuracy"] + 0.004,
            f"{r['test_accuracy']:.3f}",
            ha="center",
            fontsize=8,
        )
    ax.set_xticks(x, [r["setting"] for r in runs], fontsize=8)
    ax.set_ylim(0.85, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title("Training vs test accuracy at the end of each run")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, out_dir, "regularization_scores")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train the five settings; write figures and summary to ``out_dir``; return the numbers."""
    out_dir = Path(out_dir)
    # the fast form: a smaller network, larger steps, fewer epochs, a smaller validation set
    epochs, lr, hidden, n_val = (40, 3e-3, 128, 200) if fast else (200, 1e-3, HIDDEN, 400)
    full = digits()
    data = {
        "X_train": full["X_train"][:N_TRAIN],
        "y_train": full["y_train"][:N_TRAIN],
        "X_val": full["X_train"][N_TRAIN : N_TRAIN + n_val],
        "y_val": full["y_train"][N_TRAIN : N_TRAIN + n_val],
        "X_test": full["X_test"],
        "y_test": full["y_test"],
    }
    runs = [train(label, data, epochs, lr, hidden) for label in SETTINGS]
    if plots:
        plot(runs, out_dir, lr, hidden)
    keys = [
        "setting",
        "epochs_run",
        "train_loss",
        "val_loss",
        "gap",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
    ]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Digits: {N_TRAIN} training images (the first {N_TRAIN} of a stratified 75/25 split),
{len(data["X_val"])} validation images, {len(data["X_test"])} test images. Network
64-{hidden}-{hidden}-10 with ReLU, Adam lr={lr:g}, batch 32, up to {epochs} epochs. Losses are
cross-entropy without the penalty, in inference mode, with the final weights (for early
stopping: the restored best epoch, {runs[-1]["best_epoch"]}); `gap` = validation loss - training
loss.

{table(rows)}

![curves](regularization_curves.png)
![scores](regularization_scores.png)
"""
    results = {"runs": {r["setting"]: r for r in rows}, "epochs": epochs, "fast": fast}
    results["runs"]["early stopping"]["best_epoch"] = runs[-1]["best_epoch"]
    write_summary(out_dir, "Overfitting and regularization", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
