"""Experiment 8: convolution. A gradient check of a small CNN, then an MLP against a CNN with the
same number of parameters.

1. ``bp.check_gradients`` on a float64 CNN that uses every new layer kind with awkward settings
   (stride 2 with "same" padding, dilation, an even kernel, overlapping padded max pooling,
   average pooling, a 1x1 convolution, GlobalAvgPool): every analytic gradient against central
   finite differences.
2. Three parameter budgets (about 5k, 20k and 50k). At each, an MLP (784-h-10) and a CNN
   (conv 3x3 c1 -> ReLU -> max pool 2 -> conv 3x3 c2 -> ReLU -> max pool 2 -> dense 10, "same"
   padding) with as close a parameter count as the widths allow, trained the same way (Adam
   lr 1e-3, batch 64, the same epochs and seed), scored on the test set.

What it shows: at every budget the CNN is more accurate. A convolution spends its parameters
on small local filters shared over every image position, so a few thousand weights buy many
feature detectors applied everywhere; the MLP must learn each detector separately per position
and, at a small budget, can afford only a handful of hidden units.

    python -m scripts.experiments.convolution            # MNIST (data/mnist.npz)
    python -m scripts.experiments.convolution --fast     # 8x8 digits, seconds (the tests)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp
from backprop.app.datasets import load_mnist

from ._common import ROOT, SEED, accuracy, digits, main, save_figure, table, write_summary

NAME = "convolution"
MNIST_PATH = ROOT / "data" / "mnist.npz"
# (MLP hidden width, CNN channels c1, c2) per budget, on 28x28 inputs: parameter counts match
# to within a few percent (printed in the table).
BUDGETS_28 = [(6, 4, 9), (25, 14, 32), (63, 32, 64)]
BUDGETS_8 = [(8, 4, 8), (24, 8, 16), (64, 16, 24)]  # the fast form, on 8x8 digits


def mlp(side: int, hidden: int, seed: int) -> bp.Sequential:
    return bp.Sequential(
        [bp.Dense(hidden), bp.ReLU(), bp.Dense(10)], input_shape=(side * side,), seed=seed
    )


def cnn(side: int, c1: int, c2: int, seed: int) -> bp.Sequential:
    layers = [
        bp.Reshape((side, side, 1)),
        bp.Conv2D(c1, 3, padding="same"),
        bp.ReLU(),
        bp.MaxPool2D(2),
        bp.Conv2D(c2, 3, padding="same"),
        bp.ReLU(),
        bp.MaxPool2D(2),
        bp.Flatten(),
        bp.Dense(10),
    ]
    return bp.Sequential(layers, input_shape=(side * side,), seed=seed)


def gradient_model() -> bp.Sequential:
    """The small float64 CNN of the gradient check: every new layer, with awkward settings
    (the page lists them, with the shape each pooling layer reads)."""
    layers = [
        bp.Conv2D(3, 3, stride=2, padding="same"),
        bp.Tanh(),
        bp.Conv2D(4, (2, 3), dilation=(1, 2), padding=1),
        bp.MaxPool2D(3, stride=2, padding=1),
        bp.AvgPool2D(2),
        bp.Conv2D(5, 1),
        bp.GlobalAvgPool2D(),
        bp.Dense(3),
    ]
    return bp.Sequential(layers, input_shape=(11, 10, 2), dtype="float64", seed=SEED)


def gradient_report() -> bp.GradientReport:
    """check_gradients of :func:`gradient_model` on 4 random images."""
    model = gradient_model()
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((4, 11, 10, 2))
    y = rng.integers(0, 3, size=4)
    return bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, y)


def compare(data: dict, side: int, budgets: list, epochs: int) -> list[dict]:
    rows = []
    for hidden, c1, c2 in budgets:
        for kind, model in (("MLP", mlp(side, hidden, SEED)), ("CNN", cnn(side, c1, c2, SEED))):
            trainer = bp.Trainer(
                model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3), batch_size=64,
                epochs=epochs, seed=SEED,
            )  # fmt: skip
            history = trainer.fit(data["X_train"], data["y_train"])
            arch = f"784-{hidden}-10" if kind == "MLP" else f"conv{c1}-conv{c2}-dense10"
            rows.append(
                {
                    "model": kind,
                    "architecture": arch if side == 28 else arch.replace("784", str(side * side)),
                    "parameters": model.n_parameters,
                    "train_loss": float(history["loss"][-1]),
                    "test_accuracy": accuracy(model, data["X_test"], data["y_test"]),
                }
            )
    return rows


def figure(rows: list[dict], where: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, color in (("MLP", "tab:red"), ("CNN", "tab:blue")):
        pts = [(r["parameters"], r["test_accuracy"]) for r in rows if r["model"] == kind]
        ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=kind)
    ax.set(xscale="log", xlabel="parameters", ylabel="test accuracy", title=where)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def run(out_dir: Path, fast: bool = False, plots: bool = True) -> dict:
    out_dir = Path(out_dir)
    report = gradient_report()
    if fast or not MNIST_PATH.is_file():
        data, side, budgets, epochs = digits(), 8, BUDGETS_8, 30
        where = "sklearn 8x8 digits (1347 train / 450 test)"
    else:
        X_train, y_train, X_test, y_test = load_mnist(MNIST_PATH)
        n = 10000  # the first 10,000 training images: six trainings in well under an hour here
        data = {
            "X_train": (X_train[:n] / 255.0).astype(np.float32),
            "y_train": y_train[:n],
            "X_test": (X_test / 255.0).astype(np.float32),
            "y_test": y_test,
        }
        side, budgets, epochs = 28, BUDGETS_28, 3
        where = f"MNIST ({n} train / {len(y_test)} test), {epochs} epochs"
    rows = compare(data, side, budgets, epochs)
    results = {
        "fast": fast,
        "gradient_check": {
            "passed": report.passed,
            "max_rel_error": max(c.max_rel_error for c in report.checks),
            "report": str(report),
        },
        "data": where,
        "epochs": epochs,
        "comparison": rows,
    }
    if plots:
        save_figure(figure(rows, where), out_dir, "mlp_vs_cnn")
    body = f"## check_gradients\n\n```\n{report}\n```\n\n## MLP against CNN, {where}\n\n" + table(
        rows, ["model", "architecture", "parameters", "train_loss", "test_accuracy"]
    )
    write_summary(out_dir, "Convolution", body, results)
    return results


if __name__ == "__main__":
    main(run, NAME)
