"""Experiment 2: vanishing gradients in a deep sigmoid network.

Three networks of the same depth (10 Dense layers: 9 hidden layers of 32 units and the output)
are trained on digits with the same plain SGD:

- ``sigmoid``: sigmoid activations, Glorot initialization (the classic setting);
- ``sigmoid + BatchNorm``: the same, with a BatchNorm before every sigmoid;
- ``ReLU + He``: ReLU activations with He initialization.

``bp.GradientMonitor`` logs the norm of every layer's weight gradient, averaged over each epoch
(``grad_norm/<i>.W`` in the history). What it shows: the sigmoid's derivative is at most 1/4, so
backpropagation multiplies the error signal by a small factor at every layer and the first
layers' gradients are orders of magnitude smaller than the last layers'; the first layers
hardly learn and training stalls. ReLU with He initialization, or batch normalization, keeps the
gradient norms of all layers within about one order of magnitude.

    python -m scripts.experiments.vanishing            # about 20 seconds
    python -m scripts.experiments.vanishing --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import SEED, accuracy, digits, main, save_figure, table, write_summary

NAME = "vanishing"
DEPTH = 10  # Dense layers, output included
WIDTH = 32
LR = 0.1
COLORS = {"sigmoid": "tab:red", "sigmoid + BatchNorm": "tab:purple", "ReLU + He": "tab:blue"}


def make_model(kind: str) -> bp.Sequential:
    layers: list[bp.Layer] = []
    n_in = 64
    for _ in range(DEPTH - 1):
        if kind == "ReLU + He":
            layers += [bp.Dense(n_in, WIDTH, init="he_normal"), bp.ReLU()]
        elif kind == "sigmoid + BatchNorm":
            layers += [bp.Dense(n_in, WIDTH, init="glorot_uniform"), bp.BatchNorm(WIDTH)]
            layers += [bp.Sigmoid()]
        else:
            layers += [bp.Dense(n_in, WIDTH, init="glorot_uniform"), bp.Sigmoid()]
        n_in = WIDTH
    layers.append(bp.Dense(n_in, 10, init="glorot_uniform"))
    return bp.Sequential(layers, dtype="float64", seed=SEED)  # float64: the same digits everywhere


def train(kind: str, data: dict, epochs: int) -> dict:
    model = make_model(kind)
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.SGD(lr=LR),
        batch_size=32,
        epochs=epochs,
        callbacks=[bp.GradientMonitor(vanish_ratio=0.0)],  # no warnings: we plot it instead
        seed=SEED,
    )
    history = trainer.fit(data["X_train"], data["y_train"])
    dense = [f"{i}.W" for i, layer in enumerate(model.layers) if isinstance(layer, bp.Dense)]
    norms = np.array([history[f"grad_norm/{name}"] for name in dense])  # (layers, epochs)
    return {
        "kind": kind,
        "norms": norms,
        "loss": np.array(history["loss"]),
        "first_layer_grad_epoch1": float(norms[0, 0]),
        "last_layer_grad_epoch1": float(norms[-1, 0]),
        "first_over_last_epoch1": float(norms[0, 0] / norms[-1, 0]),
        "final_train_loss": float(history["loss"][-1]),
        "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for r in runs:
        c = COLORS[r["kind"]]
        layer = np.arange(1, DEPTH + 1)
        axes[0].plot(layer, r["norms"][:, 0], "o-", color=c, label=r["kind"])
        epochs = np.arange(1, r["norms"].shape[1] + 1)
        axes[1].plot(epochs, r["norms"][0], color=c, label=f"{r['kind']}: layer 1")
        axes[1].plot(epochs, r["norms"][-1], color=c, ls="--", label=f"{r['kind']}: layer {DEPTH}")
        axes[2].plot(epochs, r["loss"], color=c, label=r["kind"])
    axes[0].set_title("Gradient norm per layer, first epoch")
    axes[0].set_xlabel("Dense layer (1 = next to the input)")
    axes[0].set_xticks(np.arange(1, DEPTH + 1))
    axes[1].set_title("First (solid) and last (dashed) layer over training")
    axes[1].set_xlabel("epoch")
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.set_ylabel("||dL/dW|| (mean over the epoch's updates), log scale")
    axes[2].set_title("Training loss")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("cross-entropy")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[0].legend()
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{DEPTH} Dense layers of {WIDTH} units, SGD lr={LR}, batch 32", y=1.02)
    save_figure(fig, out_dir, "vanishing_gradients")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train the three networks; write figures and summary to ``out_dir``; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 3 if fast else 40
    if fast:
        data["X_train"], data["y_train"] = data["X_train"][:400], data["y_train"][:400]
    runs = [train(kind, data, epochs) for kind in COLORS]
    if plots:
        plot(runs, out_dir)
    keys = [
        "kind",
        "first_layer_grad_epoch1",
        "last_layer_grad_epoch1",
        "first_over_last_epoch1",
        "final_train_loss",
        "test_accuracy",
    ]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; {DEPTH} Dense
layers of {WIDTH} units; plain SGD lr={LR}, batch 32, {epochs} epochs. Gradient norms are
`||dL/dW||` of each Dense layer, averaged over the updates of the first epoch.

{table(rows)}

![gradients](vanishing_gradients.png)
"""
    if fast:
        body += """
**Fast form.** A few epochs on 400 images show the gradient norms (the point of this page, and
what the test checks), but they are too short to rank the two fixes by accuracy: here
BatchNorm may lead, while over the full 40 epochs ReLU + He trains much further. Run without
`--fast` for the page's numbers.
"""
    results = {"runs": {r["kind"]: r for r in rows}, "epochs": epochs, "fast": fast}
    for r in runs:
        results["runs"][r["kind"]]["grad_norm_per_layer_epoch1"] = r["norms"][:, 0].tolist()
    write_summary(out_dir, "Vanishing gradients", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
