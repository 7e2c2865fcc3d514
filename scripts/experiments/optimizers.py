"""Experiment 5: optimizers, learning rates and schedules on one problem.

One network (64-64-10, ReLU, He initialization, seed 0), one data set (digits), mini-batches of
32, the same initial weights for every run:

1. **Optimizers**: SGD, momentum, Nesterov momentum (all lr 0.01), RMSprop and Adam and AdamW
   (lr 0.001), Adagrad (lr 0.05), and full-batch L-BFGS (one iteration = one epoch).
2. **Learning-rate sweep** for plain SGD: too small barely moves, a good rate converges, too
   large oscillates and then diverges (the trainer stops with ``TrainingDivergedError``).
3. **Schedules** side by side with SGD + momentum: the learning rate each one gives per epoch
   and the training loss it leads to.

    python -m scripts.experiments.optimizers            # about a minute
    python -m scripts.experiments.optimizers --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import SEED, accuracy, data_loss, digits, main, save_figure, table, write_summary

NAME = "optimizers"


def optimizer_settings() -> dict:
    return {
        "SGD lr=0.01": bp.SGD(lr=0.01),
        "momentum 0.9": bp.SGD(lr=0.01, momentum=0.9),
        "Nesterov 0.9": bp.SGD(lr=0.01, momentum=0.9, nesterov=True),
        "RMSprop lr=0.001": bp.RMSprop(lr=0.001),
        "Adagrad lr=0.05": bp.Adagrad(lr=0.05),
        "Adam lr=0.001": bp.Adam(lr=0.001),
        "AdamW lr=0.001 wd=0.01": bp.AdamW(lr=0.001, weight_decay=0.01),
        "L-BFGS (full batch)": bp.LBFGS(),
    }


def schedule_settings(epochs: int) -> dict:
    return {
        "Constant": bp.Constant(),
        f"StepDecay(step {max(1, epochs // 3)}, x0.3)": bp.StepDecay(
            step_size=max(1, epochs // 3), gamma=0.3
        ),
        "ExponentialDecay(0.9)": bp.ExponentialDecay(gamma=0.9),
        "InverseScaling(0.5, per update)": bp.InverseScaling(power=0.5, interval="update"),
        "CosineDecay(warm-up 3)": bp.CosineDecay(total=epochs, warmup=min(3, epochs - 1)),
    }


LR_SWEEP = [0.001, 0.01, 0.1, 0.5, 2.0, 8.0, 32.0]


def make_model() -> bp.Sequential:
    return bp.Sequential(
        [bp.Dense(64, 64), bp.ReLU(), bp.Dense(64, 10)], dtype="float64", seed=SEED
    )  # float64: the same digits everywhere


def train(optimizer, data: dict, epochs: int, schedule=None) -> dict:
    """One run from the shared initial weights; the loss curve starts with the initial loss."""
    model = make_model()
    loss = bp.SoftmaxCrossEntropy()
    initial = data_loss(model, loss, data["X_train"], data["y_train"])
    trainer = bp.Trainer(
        model, loss, optimizer, batch_size=32, epochs=epochs, schedule=schedule, seed=SEED
    )
    diverged = False
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(data["X_train"], data["y_train"])
    except bp.TrainingDivergedError:
        diverged = True
    history = trainer.history
    curve = [initial, *history.get("loss", [])]
    # dead ReLU units: output 0 for every training image
    with np.errstate(over="ignore", invalid="ignore"):
        hidden = model.layers[1].forward(model.layers[0].forward(data["X_train"]))
    dead = float(np.mean(~np.any(hidden > 0, axis=0)))
    if diverged:
        curve.append(math.inf)  # the epoch in which it diverged
    return {
        "curve": np.array(curve),
        "lr": np.array(history.get("lr", [])),
        "diverged": diverged,
        "epochs_run": trainer.epoch,
        "initial_loss": initial,
        "dead_units": dead,
        "final_train_loss": math.inf if diverged else float(history["loss"][-1]),
        "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
    }


def plot_optimizers(runs: dict, out_dir: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.6))
    cmap = plt.get_cmap("tab10")
    # pairs that nearly coincide get different line styles so both stay visible
    styles = {"Nesterov": ":", "AdamW": ":", "L-BFGS": "--"}
    for i, (label, r) in enumerate(runs.items()):
        ls = next((v for k, v in styles.items() if label.startswith(k)), "-")
        lw = 2.5 if ls == ":" else 1.5
        ax.plot(np.arange(len(r["curve"])), r["curve"], ls, color=cmap(i), label=label, lw=lw)
    ax.set_yscale("log")
    ax.set_xlabel("epoch (L-BFGS: iteration over the full batch)")
    ax.set_ylabel("training cross-entropy, log scale")
    ax.set_title("Eight optimizers, same network, same initial weights, batch 32")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, out_dir, "optimizers_loss")


def plot_sweep(sweep: dict, out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    cmap = plt.get_cmap("viridis")
    for i, (lr, r) in enumerate(sweep.items()):
        c = cmap(i / max(1, len(sweep) - 1))
        curve = r["curve"]
        finite = np.isfinite(curve)
        label = f"lr={lr:g}" + (" (diverged)" if r["diverged"] else "")
        axes[0].plot(np.flatnonzero(finite), curve[finite], "-", color=c, label=label)
        if r["diverged"]:
            axes[0].plot(np.flatnonzero(finite)[-1], curve[finite][-1], "x", color=c, ms=10, mew=2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training cross-entropy, log scale")
    any_diverged = any(r["diverged"] for r in sweep.values())
    note = " (x: diverged next)" if any_diverged else ""
    axes[0].set_title(f"Plain SGD: training loss per learning rate{note}")
    initial = next(iter(sweep.values()))["initial_loss"]
    for ax in axes:
        ax.axhline(initial, color="grey", ls=":", lw=1, label=f"initial loss ({initial:.2f})")
    axes[0].legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    lrs = np.array(list(sweep))
    finals = np.array([r["final_train_loss"] for r in sweep.values()])
    ok = np.isfinite(finals)
    axes[1].plot(lrs[ok], finals[ok], "o-", color="tab:blue", label="final training loss")
    dead = {lr: r for lr, r in sweep.items() if r["dead_units"] > 0.5}
    if dead:  # the ReLUs died: the network outputs a constant
        shares = sorted({f"{100 * r['dead_units']:.0f}%" for r in dead.values()})
        axes[1].annotate(
            f"lr {', '.join(f'{lr:g}' for lr in dead)}:\n{' / '.join(shares)} of the ReLUs dead",
            (min(dead), min(r["final_train_loss"] for r in dead.values())),
            textcoords="offset points",
            xytext=(25, -75),
            ha="left",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "grey"},
        )
    if any_diverged:
        top = finals[ok].max() * 3
        axes[1].plot(
            lrs[~ok],
            np.full((~ok).sum(), top),
            "x",
            color="tab:red",
            ms=10,
            mew=2,
            label="diverged (non-finite loss)",
        )
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("learning rate, log scale")
    axes[1].set_ylabel("final training cross-entropy, log scale")
    n_epochs = len(next(iter(sweep.values()))["curve"]) - 1
    axes[1].set_title(f"Too small, good, too large: loss after {n_epochs} epochs")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    save_figure(fig, out_dir, "optimizers_lr_sweep")


def plot_schedules(runs: dict, out_dir: Path, base_lr: float) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    cmap = plt.get_cmap("tab10")
    for i, (label, r) in enumerate(runs.items()):
        epochs = np.arange(1, len(r["lr"]) + 1)
        axes[0].plot(epochs, r["lr"], "o-", ms=3, color=cmap(i), label=label)
        axes[1].plot(np.arange(len(r["curve"])), r["curve"], color=cmap(i), label=label)
    axes[0].set_title(f"Learning rate at the end of each epoch (base {base_lr:g})")
    axes[0].set_ylabel("learning rate, log scale")
    axes[1].set_title("Training loss, SGD + momentum 0.9")
    axes[1].set_ylabel("training cross-entropy, log scale")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    save_figure(fig, out_dir, "optimizers_schedules")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Run the three studies; write figures and summary to ``out_dir``; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 6 if fast else 40
    if fast:
        data["X_train"], data["y_train"] = data["X_train"][:300], data["y_train"][:300]
    opt_runs = {label: train(opt, data, epochs) for label, opt in optimizer_settings().items()}
    sweep = {lr: train(bp.SGD(lr=lr), data, epochs) for lr in LR_SWEEP}
    base_lr = 0.05
    sched_runs = {
        label: train(bp.SGD(lr=base_lr, momentum=0.9), data, epochs, schedule=s)
        for label, s in schedule_settings(epochs).items()
    }
    if plots:
        plot_optimizers(opt_runs, out_dir)
        plot_sweep(sweep, out_dir)
        plot_schedules(sched_runs, out_dir, base_lr)

    def rows(runs: dict, name: str) -> list[dict]:
        keys = ["final_train_loss", "test_accuracy", "diverged", "epochs_run"]
        return [{name: label, **{k: r[k] for k in keys}} for label, r in runs.items()]

    opt_rows, sweep_rows = rows(opt_runs, "optimizer"), rows(sweep, "SGD lr")
    sched_rows = rows(sched_runs, "schedule")
    for row, r in zip(sweep_rows, sweep.values(), strict=True):
        row["initial_loss"] = r["initial_loss"]
        row["dead_units"] = r["dead_units"]
        row["max_loss_over_initial"] = float(np.max(r["curve"]) / r["initial_loss"])
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; 64-64-10 ReLU
network, same initial weights in every run; batch 32; {epochs} epochs (L-BFGS: {epochs}
iterations over the full training set). `final_train_loss` is the mean training loss of the last
epoch (inf: diverged, the trainer raised TrainingDivergedError).

## Optimizers

{table(opt_rows)}

![optimizers](optimizers_loss.png)

## Learning-rate sweep (plain SGD)

`max_loss_over_initial`: the largest epoch loss divided by the initial loss (> 1: the loss went
up at some point); `dead_units`: the fraction of the 64 hidden ReLU units that output 0 for
every training image at the end.

{table(sweep_rows)}

![sweep](optimizers_lr_sweep.png)

## Schedules (SGD, momentum 0.9, base lr {base_lr:g})

{table(sched_rows)}

![schedules](optimizers_schedules.png)
"""
    results = {
        "optimizers": {r["optimizer"]: r for r in opt_rows},
        "lr_sweep": {str(r["SGD lr"]): r for r in sweep_rows},
        "schedules": {r["schedule"]: r for r in sched_rows},
        "schedule_lr": {label: r["lr"].tolist() for label, r in sched_runs.items()},
        "epochs": epochs,
        "fast": fast,
    }
    write_summary(out_dir, "Optimizers, learning rates and schedules", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
