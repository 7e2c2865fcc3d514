"""Experiment: sequential MNIST, row by row: each image is a sequence of 28 steps of 28 pixels.

Two models read the rows in order:

- **LSTM**: ``LSTM(128)`` (state after the last row) -> ``Dense(10)``.
- **transformer**: ``Dense(64)`` on each row, learned positional encodings, two pre-norm encoder
  blocks ``x + MHSA(LayerNorm(x))`` then ``x + FFN(LayerNorm(x))`` (4 heads of 16, FFN 128
  wide with GELU), a final LayerNorm, the mean over the 28 steps, ``Dense(10)``.

Both train with Adam (lr 1e-3, batch 128, clip_norm 1) on the 60,000 training images; the
10,000 test images are scored after every epoch and never used to choose anything.

    python -m scripts.experiments.sequential_mnist [--model LSTM|transformer] [--epochs N]
    python -m scripts.experiments.sequential_mnist --fast     # seconds: what the tests run
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
from backprop.app.datasets import load_mnist

from ._common import DOCS, FAST, SEED, save_figure, table, write_summary

NAME = "sequential_mnist"
BATCH = 128
LR = 1e-3
CLIP = 1.0
D_MODEL, HEADS, FFN = 64, 4, 128


def encoder_block() -> list[bp.Layer]:
    """A pre-norm transformer encoder block over ``(n, t, D_MODEL)``."""
    return [
        bp.Residual([bp.LayerNorm(D_MODEL), bp.MultiHeadSelfAttention(HEADS, D_MODEL // HEADS)]),
        bp.Residual([bp.LayerNorm(D_MODEL), bp.Dense(FFN), bp.GELU(), bp.Dense(D_MODEL)]),
    ]


def make_model(name: str) -> bp.Sequential:
    if name == "LSTM":
        layers = [bp.LSTM(128), bp.Dense(10)]
    else:
        layers = [bp.Dense(D_MODEL), bp.LearnedPositionalEncoding()]
        layers += encoder_block() + encoder_block()
        layers += [bp.LayerNorm(D_MODEL), bp.SequencePool("mean"), bp.Dense(10)]
    return bp.Sequential(layers, input_shape=(28, 28), seed=SEED)


def mnist_rows(fast: bool) -> dict:
    """MNIST as float32 sequences ``(n, 28, 28)`` in [0, 1] (row s of an image is step s)."""
    X, y, Xt, yt = load_mnist()
    if fast:
        X, y, Xt, yt = X[:600], y[:600], Xt[:300], yt[:300]
    rows = lambda A: (A.reshape(-1, 28, 28) / np.float32(255)).astype(np.float32)  # noqa: E731
    return {"X_train": rows(X), "y_train": y.astype(np.int64), "X_test": rows(Xt), "y_test": yt}


class TestAccuracy(bp.Callback):
    """Test accuracy after every epoch; then ``on_epoch(record)`` (which writes the files, so a
    run cut short still leaves consistent results)."""

    def __init__(self, name, X, y, on_epoch):
        self.name, self.X, self.y, self.on_epoch = name, X, y, on_epoch
        self.curve, self.times, self.losses = [], [], []

    def on_train_begin(self, trainer):
        self._start = time.perf_counter()

    def on_epoch_end(self, trainer, epoch, logs):
        self.curve.append(float(np.mean(trainer.model.predict(self.X).argmax(axis=1) == self.y)))
        self.times.append(time.perf_counter() - self._start)
        self.losses.append(float(logs["loss"]))
        print(
            f"{self.name} epoch {epoch + 1}: test accuracy {self.curve[-1]:.4f}, "
            f"loss {self.losses[-1]:.4f}, {self.times[-1]:.0f} s",
            flush=True,
        )
        self.on_epoch(
            {
                "model": self.name,
                "parameters": trainer.model.n_parameters,
                "epochs": len(self.curve),
                "test_accuracy": self.curve[-1],
                "best_test_accuracy": max(self.curve),
                "seconds_per_epoch": self.times[-1] / len(self.times),
                "curve": list(self.curve),
                "train_loss": list(self.losses),
            }
        )


def train(name: str, data: dict, epochs: int, on_epoch) -> dict:
    model = make_model(name)
    recorder = TestAccuracy(name, data["X_test"], data["y_test"], on_epoch)
    trainer = bp.Trainer(
        model,
        bp.SoftmaxCrossEntropy(),
        bp.Adam(lr=LR),
        batch_size=BATCH,
        epochs=epochs,
        clip_norm=CLIP,
        callbacks=[recorder],
        seed=SEED,
    )
    trainer.fit(data["X_train"], data["y_train"])


def plot(runs: list[dict], out_dir: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in runs:
        epochs = np.arange(1, len(r["curve"]) + 1)
        axes[0].plot(epochs, r["curve"], marker="o", label=r["model"])
        axes[1].plot(epochs, r["train_loss"], marker="o", label=r["model"])
    axes[0].set_title("test accuracy")
    axes[1].set_title("training loss (mean over the epoch's batches)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    save_figure(fig, out_dir, "sequential_mnist")


def run(
    out_dir: Path,
    fast: bool = False,
    plots: bool = True,
    models: tuple[str, ...] = ("LSTM", "transformer"),
    epochs: int | None = None,
) -> dict:
    out_dir = Path(out_dir)
    data = mnist_rows(fast)
    epochs = epochs or (1 if fast else 10)
    results: dict = {}
    merged: dict = {}

    def write(record: dict) -> None:
        # Runs of one model at a time (they take long) merge with earlier results in out_dir.
        old = out_dir / "results.json"
        if old.is_file() and not fast:
            merged.update(json.loads(old.read_text())["runs"])
        merged[record["model"]] = record
        runs = list(merged.values())
        if plots:
            plot(runs, out_dir)
        keys = ["model", "parameters", "epochs", "test_accuracy", "best_test_accuracy"]
        keys.append("seconds_per_epoch")
        body = f"""
MNIST rows: {len(data["X_train"])} training and {len(data["X_test"])} test images, each a
sequence of 28 rows of 28 pixels in [0, 1]. Adam lr={LR}, batch {BATCH}, clip_norm={CLIP}.
`test_accuracy` is after the last epoch run; the test set is scored after every epoch and
chooses nothing. Seconds per epoch include scoring the test set, on a shared 2-core machine.

{table([{k: r[k] for k in keys} for r in runs])}

![sequential MNIST](sequential_mnist.png)
"""
        results.clear()
        results.update({"runs": merged, "fast": fast})
        write_summary(out_dir, "Sequential MNIST", body, results)

    for name in models:
        train(name, data, epochs, write)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--model", choices=["LSTM", "transformer"], action="append")
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    out = args.out or (FAST if args.fast else DOCS) / NAME
    models = tuple(args.model or ["LSTM", "transformer"])
    with threadpool_limits(limits=1):
        run(out, fast=args.fast, models=models, epochs=args.epochs)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
