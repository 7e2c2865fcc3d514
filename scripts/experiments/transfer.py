"""Experiment 7: transfer learning between digit classes.

A network is trained on the digits 0-4 (the source task, all of its training images). Its
hidden layers are then reused for the digits 5-9 (the target task), of which only a few
labelled images per class are available:

- ``frozen features``: copy the hidden layers, freeze them (``layer.trainable = False``) and
  train only a new output layer;
- ``fine-tuned``: copy the hidden layers and train everything;
- ``from scratch``: the same architecture, randomly initialized, trained on the same images;
- ``frozen random features``: a control: the hidden layers left at their random initial
  weights and frozen, only the output layer trained (what the head alone can do).

All three get the same optimizer, epochs and (for each draw) the same few target images; the
score is the accuracy on the target classes of the held-out test split. Each size is repeated
over several draws of the small training set.

Two data sets: sklearn's 8x8 digits (always there) and MNIST's 28x28 digits (when
``data/mnist.npz`` exists; ``python scripts/fetch_data.py mnist`` makes it). What they show:
on MNIST the features of digits 0-4 are much better than random ones, and with one or two
labelled images per class the frozen features beat a network trained from scratch; with more
images the advantage goes. On the 8x8 digits they are worse than random features: with 64
clean pixels a network trained from scratch on a handful of images already does well, and a
network trained to tell 0-4 apart has discarded what tells 5-9 apart. Transfer pays when the
source features are general for the target and labelled data is very scarce.

    python -m scripts.experiments.transfer                 # digits, and MNIST if present
    python -m scripts.experiments.transfer --fast          # digits only, a few seconds
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp
from backprop.app.datasets import load_mnist

from ._common import ROOT, SEED, accuracy, digits, main, save_figure, table, write_summary

NAME = "transfer"
HIDDEN = 128
MNIST_PATH = ROOT / "data" / "mnist.npz"
SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
COLORS = {
    "frozen features": "tab:blue",
    "fine-tuned": "tab:green",
    "from scratch": "tab:red",
    "frozen random features": "tab:gray",
}


def make_model(n_features: int, seed: int) -> bp.Sequential:
    """n_features -> 128 -> 128 -> 5; layers 0 and 2 are the hidden (feature) layers, 4 the
    head."""
    return bp.Sequential(
        [
            bp.Dense(n_features, HIDDEN),
            bp.ReLU(),
            bp.Dense(HIDDEN, HIDDEN),
            bp.ReLU(),
            bp.Dense(HIDDEN, 5),
        ],
        seed=seed,
    )


def mnist(max_source: int) -> dict[str, np.ndarray]:
    """MNIST scaled to [0, 1] as float32, with at most ``max_source`` training images of the
    source classes (the first ones, in the file's order) to keep the run short."""
    X_train, y_train, X_test, y_test = load_mnist(MNIST_PATH)
    source_rows = np.flatnonzero(np.isin(y_train, SOURCE))[:max_source]
    keep = np.sort(np.concatenate([source_rows, np.flatnonzero(np.isin(y_train, TARGET))]))
    return {
        "X_train": (X_train[keep] / 255.0).astype(np.float32),
        "y_train": y_train[keep],
        "X_test": (X_test / 255.0).astype(np.float32),
        "y_test": y_test,
    }


def task(X: np.ndarray, y: np.ndarray, classes: tuple[int, ...]):
    """The rows of the given classes, relabelled 0..len(classes)-1."""
    keep = np.isin(y, classes)
    return X[keep], np.searchsorted(np.array(classes), y[keep])


def train_source(data: dict, epochs: int) -> tuple[bp.Sequential, float]:
    X, y = task(data["X_train"], data["y_train"], SOURCE)
    model = make_model(X.shape[1], SEED)
    bp.Trainer(model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-3), epochs=epochs, seed=SEED).fit(
        X, y
    )
    return model, accuracy(model, *task(data["X_test"], data["y_test"], SOURCE))


def few_per_class(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n random rows of each class."""
    return np.concatenate([rng.choice(np.flatnonzero(y == k), n, replace=False) for k in range(5)])


def train_target(how: str, source: bp.Sequential, X, y, test, seed: int, epochs: int) -> float:
    model = make_model(X.shape[1], seed)
    if how in ("frozen features", "fine-tuned"):
        state = source.state_dict()
        for key, value in model.parameters().items():
            if not key.startswith("4."):  # the hidden layers: copy; the head stays new
                value[...] = state[key]
    if how in ("frozen features", "frozen random features"):
        for layer in model.layers[:4]:
            layer.trainable = False
    trainer = bp.Trainer(
        model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=1e-2), mode="batch", epochs=epochs, seed=seed
    )
    trainer.fit(X, y)
    return accuracy(model, *test)


def plot(sizes: list[int], scores: dict, source_acc: float, out_dir: Path, name: str) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for how, per_size in scores.items():
        mean = np.array([np.mean(per_size[n]) for n in sizes])
        lo = np.array([np.min(per_size[n]) for n in sizes])
        hi = np.array([np.max(per_size[n]) for n in sizes])
        ax.plot(sizes, mean, "o-", color=COLORS[how], label=how)
        ax.fill_between(sizes, lo, hi, color=COLORS[how], alpha=0.15)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("labelled training images per target class (digits 5-9), log scale")
    ax.set_ylabel("test accuracy on digits 5-9")
    ax.set_title(
        f"{name}: features learned on digits 0-4 (source test accuracy {source_acc:.3f})\n"
        "mean over draws of the small training set; band: min to max"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    save_figure(fig, out_dir, f"transfer_{name.split()[0].lower()}")


def study(
    data: dict,
    name: str,
    sizes: list[int],
    draws: int,
    epochs: tuple[int, int],
    out_dir: Path,
    plots: bool = True,
) -> tuple[dict, str]:
    """Source model, then the three target models per size and draw; returns the numbers and
    a markdown paragraph."""
    source_epochs, target_epochs = epochs
    source, source_acc = train_source(data, source_epochs)
    X_pool, y_pool = task(data["X_train"], data["y_train"], TARGET)
    test = task(data["X_test"], data["y_test"], TARGET)
    scores: dict[str, dict[int, list[float]]] = {how: {n: [] for n in sizes} for how in COLORS}
    for n in sizes:
        for draw in range(draws):
            idx = few_per_class(y_pool, n, np.random.default_rng([SEED, n, draw]))
            for how in COLORS:
                acc = train_target(
                    how, source, X_pool[idx], y_pool[idx], test, SEED + draw, target_epochs
                )
                scores[how][n].append(acc)
    if plots:
        plot(sizes, scores, source_acc, out_dir, name)
    rows = [
        {"per class": n, **{how: float(np.mean(scores[how][n])) for how in COLORS}} for n in sizes
    ]
    n_source = int(np.isin(data["y_train"], SOURCE).sum())
    key = name.split()[0].lower()
    body = f"""
## {name}

Source: digits 0-4, {n_source} training images, network {X_pool.shape[1]}-{HIDDEN}-{HIDDEN}-5
(ReLU), Adam lr=0.001, batch 32, {source_epochs} epochs; its test accuracy on digits 0-4:
{source_acc:.4f}. Target: digits 5-9, n labelled images per class drawn from the training split
({draws} draws per n); every target model is trained full-batch with Adam lr=0.01 for
{target_epochs} epochs. Mean test accuracy over the draws, on the {len(test[1])} test images of
digits 5-9:

{table(rows)}

![transfer](transfer_{key}.png)
"""
    results = {
        "source_test_accuracy": source_acc,
        "mean_accuracy": {str(r["per class"]): r for r in rows},
        "scores": {how: {str(n): v for n, v in per.items()} for how, per in scores.items()},
    }
    return results, body


def run(
    out_dir: Path, fast: bool = False, plots: bool = True, use_mnist: bool | None = None
) -> dict:
    """Run the study on digits (and on MNIST when ``use_mnist``, by default when its file
    exists and not ``fast``); write figures and summary; return the numbers."""
    out_dir = Path(out_dir)
    if use_mnist is None:
        use_mnist = MNIST_PATH.is_file() and not fast
    results: dict = {"fast": fast}
    bodies = []
    if fast:
        sizes, draws, epochs = [2, 10], 1, (10, 40)
    else:
        sizes, draws, epochs = [1, 2, 5, 10, 20, 50], 5, (40, 200)
    results["digits"], body = study(
        digits(), "8x8 digits (sklearn)", sizes, draws, epochs, out_dir, plots
    )
    bodies.append(body)
    if use_mnist:
        data = mnist(max_source=10_000)
        results["mnist"], body = study(data, "MNIST 28x28", sizes, draws, (5, 100), out_dir, plots)
        bodies.append(body)
    write_summary(out_dir, "Transfer learning", "\n".join(bodies), results)
    return results


if __name__ == "__main__":
    main(run, NAME)
