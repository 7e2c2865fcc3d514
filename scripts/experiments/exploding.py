"""Experiment 3: exploding gradients, and clipping by the global norm.

A deep ReLU network (8 Dense layers of 64 units) is initialized with weights twice as large as
He initialization (std = 2 sqrt(2 / fan_in)): every layer multiplies the signal by about 2, in
the forward pass and again in the backward pass, so the first gradient norms are in the
hundreds. With plain SGD (lr 0.05) and no clipping, the first updates overshoot, the weights
grow, the gradients grow faster, and within a few updates the loss is not a number: the
trainer raises ``bp.TrainingDivergedError``. The same run with ``clip_norm`` rescales every
gradient whose global norm exceeds the bound (``g <- g * c / ||g||``), so an update never moves
the weights by more than ``lr * c``; it trains. The pre-clip norms the trainer reports for every
update (``logs["grad_norm"]`` in ``on_batch_end``) are plotted.

    python -m scripts.experiments.exploding            # under a minute
    python -m scripts.experiments.exploding --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import (
    SEED,
    BatchRecorder,
    accuracy,
    digits,
    main,
    save_figure,
    table,
    write_summary,
)

NAME = "exploding"
DEPTH = 8
WIDTH = 64
GAIN = 2.0  # times the He standard deviation
LR = 0.05
SETTINGS = {"no clipping": None, "clip_norm=10": 10.0, "clip_norm=1": 1.0}
COLORS = {"no clipping": "tab:red", "clip_norm=10": "tab:orange", "clip_norm=1": "tab:blue"}


def large_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """N(0, (GAIN * sqrt(2 / fan_in))^2): He initialization scaled up by GAIN."""
    return (GAIN * np.sqrt(2.0 / shape[0]) * rng.standard_normal(shape)).astype(dtype)


def make_model() -> bp.Sequential:
    layers: list[bp.Layer] = []
    n_in = 64
    for _ in range(DEPTH - 1):
        layers += [bp.Dense(n_in, WIDTH, init=large_normal), bp.ReLU()]
        n_in = WIDTH
    layers.append(bp.Dense(n_in, 10, init=large_normal))
    return bp.Sequential(layers, dtype="float64", seed=SEED)  # float64: the same digits everywhere


def train(label: str, data: dict, epochs: int) -> dict:
    model = make_model()
    recorder = BatchRecorder()
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.SGD(lr=LR),
        batch_size=32,
        epochs=epochs,
        clip_norm=SETTINGS[label],
        callbacks=[recorder],
        seed=SEED,
    )
    diverged = None
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point here
            trainer.fit(data["X_train"], data["y_train"])
    except bp.TrainingDivergedError as exc:
        diverged = str(exc).split(":")[0]
    clip = SETTINGS[label]
    norms = np.array(recorder.grad_norm)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged model may overflow
        final_loss = trainer.evaluate(data["X_train"], data["y_train"])["loss"]
        test_accuracy = accuracy(model, data["X_test"], data["y_test"])
    return {
        "setting": label,
        "diverged": diverged or "no",
        "updates": trainer.step_count,
        "first_grad_norm": float(norms[0]),
        "max_grad_norm": float(np.max(norms)),
        "clipped_share": float(np.mean(norms > clip)) if clip else 0.0,
        "first_loss": recorder.batch_loss[0],
        "final_train_loss": final_loss,
        "test_accuracy": test_accuracy,
        "norms": norms,
        "batch_loss": np.array(recorder.batch_loss),
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for r in runs:
        c = COLORS[r["setting"]]
        steps = np.arange(1, len(r["norms"]) + 1)
        axes[0].plot(steps, r["norms"], color=c, lw=1, label=r["setting"])
        axes[1].plot(steps, r["batch_loss"], color=c, lw=1, label=r["setting"])
        if r["diverged"] != "no":
            # the batch whose loss or gradient was not finite: marked at the top of the axes
            for ax in axes:
                ax.axvline(steps[-1] + 1, color=c, ls=":", lw=1.5)
            axes[0].annotate(
                f"no clipping: non-finite\nloss at update {steps[-1] + 1}",
                (steps[-1] + 1, r["norms"][-1]),
                textcoords="offset points",
                xytext=(8, -10),
                color=c,
                fontsize=9,
            )
        clip = SETTINGS[r["setting"]]
        if clip:
            axes[0].axhline(clip, color=c, ls="--", lw=1)
    axes[0].set_title("Global gradient norm before clipping (dashed: the bounds)")
    axes[0].set_ylabel("||g|| before clipping, log scale")
    axes[1].set_title("Training loss of each batch")
    axes[1].set_ylabel("cross-entropy, log scale")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("update, log scale")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"{DEPTH} ReLU layers initialized at {GAIN:g} x He, SGD lr={LR}, batch 32", y=1.02)
    save_figure(fig, out_dir, "exploding_gradients")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train with and without clipping; write figures and summary; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 3 if fast else 30
    if fast:
        data["X_train"], data["y_train"] = data["X_train"][:400], data["y_train"][:400]
    runs = [train(label, data, epochs) for label in SETTINGS]
    if plots:
        plot(runs, out_dir)
    keys = [
        "setting",
        "diverged",
        "updates",
        "first_grad_norm",
        "max_grad_norm",
        "clipped_share",
        "first_loss",
        "final_train_loss",
        "test_accuracy",
    ]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; {DEPTH} Dense
layers of {WIDTH} units with ReLU, weights drawn from N(0, ({GAIN:g} sqrt(2/fan_in))^2); plain
SGD lr={LR}, batch 32, up to {epochs} epochs. `clipped_share` is the fraction of updates whose
pre-clip norm exceeded the bound; `final_train_loss` is measured on the whole training set with
the weights the run ended with (a diverged run keeps the last finite weights).

{table(rows)}

![gradients](exploding_gradients.png)
"""
    results = {"runs": {r["setting"]: r for r in rows}, "epochs": epochs, "fast": fast}
    write_summary(out_dir, "Exploding gradients and clipping", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
