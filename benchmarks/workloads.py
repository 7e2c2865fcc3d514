"""Benchmark workloads: the data, architecture and training settings every system shares.

A workload fixes everything a system could otherwise choose differently: the training and test
arrays (float32 features), the hidden layer widths (ReLU everywhere, a linear output layer), the
solver (Adam with ``lr``, ``beta_1=0.9``, ``beta_2=0.999``, ``eps=1e-8``, or full-batch L-BFGS),
the batch size and the number of epochs (L-BFGS: iterations) one timed run trains for. No
weight penalty anywhere (scikit-learn's ``alpha=0``).

=============  ============================================================  ======  =========
name           data and network                                              batch   epochs
=============  ============================================================  ======  =========
mnist32        MNIST 60k/10k, pixels / 255, 784-256-128-10                   32      1
mnist128       the same                                                      128     1
mnist1024      the same                                                      1024    1
sgd128         MNIST as above, SGD with momentum 0.9, lr 0.01                 128     1
digits         scikit-learn digits 75/25 stratified, pixels / 16, 64-64-10   32      20
regression     Friedman #1 (10 features, 20k/5k, y standardized), 10-64-32-1  64      5
lbfgs          digits as above, 64-64-10, full-batch L-BFGS                  all     100 its
=============  ============================================================  ======  =========

``--epochs N`` trains the MNIST workloads for N epochs per timed run (the speed issue's targets
are measured over 3: optimizer state decays into the subnormal range only after a while).
``--quick`` shrinks them: MNIST 6,000/1,000 rows, digits 3 epochs, regression 2,000/500 rows and
1 epoch, L-BFGS 15 iterations.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

NAMES = ("mnist32", "mnist128", "mnist1024", "sgd128", "digits", "regression", "lbfgs")


@dataclass(frozen=True)
class Workload:
    """One benchmark problem; every system trains on exactly these arrays and settings."""

    name: str
    description: str
    task: str  # "classification" or "regression"
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    hidden: tuple[int, ...]
    batch_size: int | None  # None: full batch (L-BFGS)
    epochs: int  # per timed run; L-BFGS: iterations
    solver: str = "adam"  # "adam", "sgd" (with ``momentum``) or "lbfgs"
    lr: float = 1e-3
    momentum: float = 0.0

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.max()) + 1 if self.task == "classification" else 1

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.X_train.shape[1], *self.hidden, self.n_outputs)

    @property
    def n_parameters(self) -> int:
        sizes = self.layer_sizes
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer updates in one epoch (L-BFGS: one iteration is one epoch)."""
        if self.batch_size is None:
            return 1
        return math.ceil(self.X_train.shape[0] / self.batch_size)

    def batch_sizes(self) -> list[int]:
        """The batch sizes of one epoch, in order (the last batch may be smaller)."""
        n = self.X_train.shape[0]
        bs = n if self.batch_size is None else self.batch_size
        return [min(bs, n - start) for start in range(0, n, bs)]

    def subset(self, n_rows: int, epochs: int = 1) -> Workload:
        """The first ``n_rows`` training rows, for warm-up runs."""
        n = min(n_rows, self.X_train.shape[0])
        return replace(self, X_train=self.X_train[:n], y_train=self.y_train[:n], epochs=epochs)


@functools.lru_cache(maxsize=2)
def _mnist(data_dir: str, quick: bool):
    from backprop.app.datasets import load_mnist

    X_train, y_train, X_test, y_test = load_mnist(Path(data_dir) / "mnist.npz")
    if quick:
        X_train, y_train, X_test, y_test = (
            X_train[:6000],
            y_train[:6000],
            X_test[:1000],
            y_test[:1000],
        )

    def scale(X: np.ndarray) -> np.ndarray:
        out = X.astype(np.float32)
        out /= 255
        return out

    return scale(X_train), y_train.astype(np.int64), scale(X_test), y_test.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    return X_train, y_train.astype(np.int64), X_test, y_test.astype(np.int64)


def _friedman(quick: bool):
    from sklearn.datasets import make_friedman1

    n_train, n_test = (2000, 500) if quick else (20000, 5000)
    X, y = make_friedman1(n_samples=n_train + n_test, n_features=10, noise=1.0, random_state=0)
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    X, y = X.astype(np.float32), y.astype(np.float32)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def make(
    name: str, quick: bool = False, data_dir: str = "data", epochs: int | None = None
) -> Workload | str:
    """The workload called ``name``, or a string saying why it cannot run here. ``epochs``
    overrides the MNIST workloads' single epoch."""
    if name.startswith(("mnist", "sgd")):
        try:
            arrays = _mnist(str(data_dir), quick)
        except FileNotFoundError as exc:
            return f"skipped: {exc}"
        n_epochs = epochs or 1
        rows = "6k/1k rows" if quick else "60k/10k"
        ep = f"{n_epochs} epoch{'s' if n_epochs > 1 else ''}"
        if name.startswith("sgd"):
            batch = int(name[len("sgd") :])
            desc = (
                f"MNIST {rows}, 784-256-128-10 ReLU, SGD momentum 0.9 lr 0.01, batch {batch}, {ep}"
            )
            return Workload(
                name, desc, "classification", *arrays, (256, 128), batch, n_epochs, "sgd", 0.01, 0.9
            )
        batch = int(name[len("mnist") :])
        desc = f"MNIST {rows}, 784-256-128-10 ReLU, Adam, batch {batch}, {ep}"
        return Workload(name, desc, "classification", *arrays, (256, 128), batch, n_epochs)
    if name == "digits":
        epochs = 3 if quick else 20
        desc = f"digits 1347/450, 64-64-10 ReLU, Adam, batch 32, {epochs} epochs"
        return Workload(name, desc, "classification", *_digits(), (64,), 32, epochs)
    if name == "regression":
        arrays = _friedman(quick)
        epochs = 1 if quick else 5
        rows = f"{arrays[0].shape[0]}/{arrays[2].shape[0]}"
        desc = f"Friedman #1 {rows}, 10-64-32-1 ReLU, MSE, Adam, batch 64, {epochs} epochs"
        return Workload(name, desc, "regression", *arrays, (64, 32), 64, epochs)
    if name == "lbfgs":
        iters = 15 if quick else 100
        desc = f"digits 1347/450, 64-64-10 ReLU, full-batch L-BFGS, {iters} iterations"
        return Workload(name, desc, "classification", *_digits(), (64,), None, iters, "lbfgs")
    raise ValueError(f"unknown workload {name!r}; valid names: {', '.join(NAMES)}")
