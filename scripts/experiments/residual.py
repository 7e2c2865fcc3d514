"""Experiment 8: residual connections in a 30-layer MLP.

The same 30 Dense layers (64 -> 32, 28 hidden layers of 32 units, 32 -> 10) are trained on
digits with the same plain SGD, with and without skip connections around the 28 hidden layers:

- ``plain``: ``Dense(32) -> act`` stacked 28 times;
- ``residual``: ``bp.Residual([Dense(32), act])`` stacked 28 times, each computing
  ``x + act(x @ W + b)``.

for three activations (sigmoid, tanh, ReLU; default initialization: Glorot for sigmoid and tanh,
He for ReLU). ``bp.GradientMonitor`` logs the norm of every Dense layer's weight gradient per
epoch (``grad_norm/3.W`` plain, ``grad_norm/3.0.W`` inside a Residual). What it shows: the
residual's backward pass adds the incoming gradient to the branch's, so every layer receives at
least the signal that reaches the top; without the skip the signal is multiplied by each layer's
Jacobian and, for the sigmoid, vanishes.

    python -m scripts.experiments.residual            # about a minute
    python -m scripts.experiments.residual --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import SEED, accuracy, digits, main, save_figure, table, write_summary

NAME = "residual"
DEPTH = 30  # Dense layers, input and output layers included
WIDTH = 32
LR = 0.05
ACTIVATIONS = {"sigmoid": bp.Sigmoid, "tanh": bp.Tanh, "ReLU": bp.ReLU}
COLORS = {"sigmoid": "tab:red", "tanh": "tab:green", "ReLU": "tab:blue"}


def make_model(activation: str, residual: bool) -> bp.Sequential:
    act = ACTIVATIONS[activation]
    layers: list[bp.Layer] = [bp.Dense(WIDTH), act()]
    for _ in range(DEPTH - 2):
        block = [bp.Dense(WIDTH), act()]
        layers += [bp.Residual(block)] if residual else block
    layers.append(bp.Dense(10))
    return bp.Sequential(layers, input_shape=(64,), seed=SEED)


def train(activation: str, residual: bool, data: dict, epochs: int) -> dict:
    model = make_model(activation, residual)
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.SGD(lr=LR),
        batch_size=32,
        epochs=epochs,
        callbacks=[bp.GradientMonitor(vanish_ratio=0.0, explode=np.inf)],  # we plot them instead
        seed=SEED,
    )
    label = f"{activation}, {'residual' if residual else 'plain'}"
    out = {"run": label, "activation": activation, "residual": residual, "diverged": "no"}
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # the divergence is the observation
            history = trainer.fit(data["X_train"], data["y_train"])
    except bp.TrainingDivergedError as exc:
        out["diverged"] = str(exc).split(":")[0]  # "non-finite loss nan at epoch 1, batch 2"
        return {**out, "norms": None, "loss": np.array([])}
    dense = [name for name in model.parameters() if name.endswith(".W")]  # input to output
    norms = np.array([history[f"grad_norm/{name}"] for name in dense])  # (layers, epochs)
    return {
        **out,
        "norms": norms,
        "loss": np.array(history["loss"]),
        "first_layer_grad_epoch1": float(norms[0, 0]),
        "last_layer_grad_epoch1": float(norms[-1, 0]),
        "first_over_last_epoch1": float(norms[0, 0] / norms[-1, 0]),
        "epoch1_loss": float(history["loss"][0]),
        "final_train_loss": float(history["loss"][-1]),
        "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for r in runs:
        if r["norms"] is None:
            continue
        style = dict(color=COLORS[r["activation"]], ls="-" if r["residual"] else "--")
        layer = np.arange(1, DEPTH + 1)
        axes[0].plot(layer, r["norms"][:, 0], marker="o", ms=3, label=r["run"], **style)
        epochs = np.arange(1, len(r["loss"]) + 1)
        axes[1].plot(epochs, r["loss"], label=r["run"], **style)
    axes[0].set(
        title="Gradient norm per Dense layer, first epoch",
        xlabel="Dense layer (1 = next to the input)",
        ylabel="||dL/dW|| (mean over the epoch's updates), log scale",
        yscale="log",
    )
    axes[1].set(
        title="Training loss (solid: residual, dashed: plain)",
        xlabel="epoch",
        ylabel="cross-entropy, log scale",
        yscale="log",
    )
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"{DEPTH} Dense layers of {WIDTH} units, SGD lr={LR}, batch 32", y=1.02)
    save_figure(fig, out_dir, "residual_gradients")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train the six networks; write figures and summary to ``out_dir``; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 3 if fast else 30
    if fast:
        data["X_train"], data["y_train"] = data["X_train"][:400], data["y_train"][:400]
    runs = [train(a, res, data, epochs) for a in ACTIVATIONS for res in (False, True)]
    if plots:
        plot(runs, out_dir)
    keys = [
        "run",
        "first_layer_grad_epoch1",
        "last_layer_grad_epoch1",
        "first_over_last_epoch1",
        "epoch1_loss",
        "final_train_loss",
        "test_accuracy",
        "diverged",
    ]
    rows = [{k: r.get(k, "-") for k in keys} for r in runs]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; {DEPTH} Dense
layers of {WIDTH} units; plain SGD lr={LR}, batch 32, {epochs} epochs. Gradient norms are
`||dL/dW||` of each Dense layer, averaged over the updates of the first epoch.

{table(rows)}

![gradients](residual_gradients.png)
"""
    results = {"runs": {r["run"]: r for r in rows}, "epochs": epochs, "fast": fast}
    for r in runs:
        if r["norms"] is not None:
            results["runs"][r["run"]]["grad_norm_per_layer_epoch1"] = r["norms"][:, 0].tolist()
            results["runs"][r["run"]]["loss_curve"] = r["loss"].tolist()
    write_summary(out_dir, "Residual connections", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
