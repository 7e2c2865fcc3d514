"""Experiment 6: weight initialization in a deep ReLU network.

The same network (8 Dense layers: 7 hidden layers of 64 units with ReLU, and the output) is
initialized six ways and trained with the same SGD + momentum:

- ``zeros``: every weight 0. Every hidden unit computes the same thing, receives the same
  gradient and gets the same update: the symmetry never breaks. With zeros it is worse still:
  ReLU(0) = 0, so no gradient reaches the hidden layers at all and only the output biases learn.
- ``constant 1/fan_in``: every weight equal. Gradients do flow, but all units of a layer stay
  identical for ever: the network behaves like one with a single unit per layer.
- ``small N(0, 0.01^2)``: the signal shrinks by ~0.06 per layer, so activations and gradients
  vanish with depth and training barely starts.
- ``large N(0, 1)``: the signal grows by ~5.7 per layer; logits of order 10^5, a huge loss,
  and SGD diverges.
- ``Glorot uniform`` and ``He normal``: variance-preserving scales (He keeps the activations'
  second moment constant through ReLU layers); both train.

    python -m scripts.experiments.initialization            # about a minute
    python -m scripts.experiments.initialization --fast     # a few seconds (what the tests run)
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

from ._common import SEED, accuracy, data_loss, digits, main, save_figure, table, write_summary

NAME = "initialization"
DEPTH = 8
WIDTH = 64


def constant(shape, rng, dtype=np.float32) -> np.ndarray:
    """Every weight 1 / fan_in (symmetric, but not zero, and of a sensible size)."""
    return np.full(shape, 1.0 / shape[0], dtype=dtype)


def unit_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    """N(0, 1): the 'just use randn' initialization, far too large for 64 inputs per unit."""
    return rng.standard_normal(shape).astype(dtype)


INITS = {
    "zeros": "zeros",
    "constant 1/fan_in": constant,
    "small N(0, 0.01^2)": "small_normal",
    "large N(0, 1)": unit_normal,
    "Glorot uniform": "glorot_uniform",
    "He normal": "he_normal",
}
COLORS = ["tab:gray", "tab:brown", "tab:purple", "tab:red", "tab:orange", "tab:blue"]


def make_model(init) -> bp.Sequential:
    layers: list[bp.Layer] = []
    n_in = 64
    for _ in range(DEPTH - 1):
        layers += [bp.Dense(n_in, WIDTH, init=init), bp.ReLU()]
        n_in = WIDTH
    layers.append(bp.Dense(n_in, 10, init=init))
    return bp.Sequential(layers, dtype="float64", seed=SEED)  # float64: the same digits everywhere


def activation_scale(model: bp.Sequential, X: np.ndarray) -> list[float]:
    """Root-mean-square of each hidden layer's output (after its ReLU) in a forward pass."""
    rms, x = [], X
    for layer in model.layers:
        x = layer.forward(x)
        if isinstance(layer, bp.ReLU):
            rms.append(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))
    return rms


def distinct_units(model: bp.Sequential) -> list[int]:
    """For each hidden Dense layer, the number of distinct units: distinct (incoming weights,
    bias) columns, compared to 6 significant digits."""
    counts = []
    for layer in model.layers[:-1]:
        if isinstance(layer, bp.Dense):
            cols = np.vstack([layer.params["W"], layer.params["b"][None]]).T
            scale = max(float(np.max(np.abs(cols))), 1e-30)
            counts.append(len(np.unique(np.round(cols / scale, 6), axis=0)))
    return counts


def train(label: str, data: dict, epochs: int) -> dict:
    model = make_model(INITS[label])
    loss = bp.SoftmaxCrossEntropy()
    X, y = data["X_train"], data["y_train"]
    with np.errstate(over="ignore", invalid="ignore"):
        scale = activation_scale(model, X)
        initial = data_loss(model, loss, X, y)
    trainer = bp.Trainer(
        model, loss, bp.SGD(lr=0.01, momentum=0.9), batch_size=32, epochs=epochs, seed=SEED
    )
    diverged = False
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            trainer.fit(X, y)
    except bp.TrainingDivergedError:
        diverged = True
    history = trainer.history
    units = distinct_units(model)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged model may overflow
        test_accuracy = accuracy(model, data["X_test"], data["y_test"])
    return {
        "init": label,
        "rms_layer1": scale[0],
        "rms_last_hidden": scale[-1],
        "initial_loss": initial,
        "diverged": diverged,
        "final_train_loss": math.inf if diverged else float(history["loss"][-1]),
        "test_accuracy": test_accuracy,
        "min_distinct_units": min(units),
        "scale": scale,
        "curve": [initial, *history.get("loss", [])],
        "units": units,
    }


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    for r, c in zip(runs, COLORS, strict=True):
        layers = np.arange(1, len(r["scale"]) + 1)
        scale = np.asarray(r["scale"])
        shown = np.where(scale > 0, scale, np.nan)  # zeros cannot be drawn on a log axis
        label = r["init"] + (" (all 0)" if not np.any(scale > 0) else "")
        axes[0].plot(layers, shown, "o-", color=c, label=label)
        curve = np.asarray(r["curve"], dtype=float)
        label = r["init"] + (" (diverged)" if r["diverged"] else "")
        axes[1].plot(np.arange(len(curve)), curve, "o-", ms=3, color=c, label=label)
        if r["diverged"]:
            axes[1].plot(len(curve) - 1, curve[-1], "x", color=c, ms=10, mew=2)
    axes[0].set_title("At initialization: size of each hidden layer's output")
    axes[0].set_xlabel("hidden layer (after its ReLU)")
    axes[0].set_ylabel("root-mean-square activation, log scale")
    axes[1].set_title("Training loss (epoch 0 = at initialization; x: diverged next)")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("training cross-entropy, log scale")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{DEPTH} Dense layers ({WIDTH} ReLU units each), SGD lr=0.01 momentum 0.9", y=1.02
    )
    save_figure(fig, out_dir, "initialization")


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    """Train the six initializations; write figures and summary; return the numbers."""
    out_dir = Path(out_dir)
    data = digits()
    epochs = 4 if fast else 40
    if fast:
        data["X_train"], data["y_train"] = data["X_train"][:400], data["y_train"][:400]
    runs = [train(label, data, epochs) for label in INITS]
    if plots:
        plot(runs, out_dir)
    keys = [
        "init",
        "rms_layer1",
        "rms_last_hidden",
        "initial_loss",
        "diverged",
        "final_train_loss",
        "test_accuracy",
        "min_distinct_units",
    ]
    rows = [{k: r[k] for k in keys} for r in runs]
    body = f"""
Digits, {len(data["X_train"])} training and {len(data["X_test"])} test images; {DEPTH} Dense
layers, {WIDTH} ReLU units per hidden layer; SGD lr=0.01, momentum 0.9, batch 32, {epochs}
epochs. `rms_*` is the root-mean-square output of the first and last hidden layers at
initialization; `min_distinct_units` is the smallest number of distinct hidden units (incoming
weights and bias) in any hidden layer after training, out of {WIDTH}.

{table(rows)}

![initialization](initialization.png)
"""
    results = {"runs": {r["init"]: r for r in rows}, "epochs": epochs, "fast": fast}
    for r in runs:
        results["runs"][r["init"]]["distinct_units_per_layer"] = r["units"]
    write_summary(out_dir, "Initialization", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
