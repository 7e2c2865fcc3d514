"""Data sources for configs and the command line: bundled sets, generators, files, MNIST.

``prepare(options)`` turns a config's ``[data]`` table into a :class:`Dataset`::

    load (X, y)  ->  test split (stratified for classification; MNIST keeps its official one)
                 ->  validation split from the rest
                 ->  standardization fitted on the training part only, applied to all parts

Splits draw from ``np.random.default_rng(seed)``; sklearn generators get the integer ``seed``.
Class labels become ``0..n_classes-1``; the original labels are kept in ``Dataset.classes``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import filecheck
from ..data import split_indices
from ..layers.preprocessing import mean_and_scale
from . import datasets, text

BUNDLED = ("digits", "iris", "wine", "breast_cancer", "diabetes")
# source -> {option: default}; the type of each default is the option's type (None: see TYPES)
SOURCE_OPTIONS: dict[str, dict[str, Any]] = {
    **{name: {} for name in BUNDLED},
    "moons": {"n_samples": 500, "noise": 0.2},
    "circles": {"n_samples": 500, "noise": 0.1, "factor": 0.5},
    "blobs": {"n_samples": 500, "n_features": 2, "centers": 3, "cluster_std": 1.0},
    "classification": {"n_samples": 500, "n_features": 20, "n_informative": 5, "n_classes": 2},
    "regression": {"n_samples": 500, "n_features": 10, "n_informative": 5, "noise": 10.0},
    "xor": {"n_samples": 4, "noise": 0.0},
    "file": {"path": "", "target": "y", "task": "auto"},
    "mnist": {"path": "", "n_train": 0, "as_sequence": False},
    "fashion_mnist": {"path": "", "n_train": 0, "as_sequence": False},
    # the adding problem (datasets.adding_problem): X (n, length, 2), y (n,), regression
    "adding": {"n_samples": 10000, "length": 100},
    "text": text.TEXT_OPTIONS,  # documents -> TF-IDF, a sparse X (see backprop.app.text)
}
COMMON_OPTIONS: dict[str, Any] = {
    "source": "digits",
    "test_size": 0.25,
    "validation_size": 0.1,
    "standardize": True,
    "standardize_target": True,
    "seed": 0,
}
REGRESSION_SOURCES = ("diabetes", "regression", "adding")


@dataclass
class Dataset:
    """Train / validation / test parts, already preprocessed, and how to preprocess new data."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    classes: list | None = None
    x_mean: np.ndarray | None = None
    x_scale: np.ndarray | None = None
    y_mean: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    image_shape: tuple[int, int] | None = None
    test_is_train: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes)
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])


def _bundled(name: str):
    from sklearn import datasets as skd

    loader = getattr(skd, f"load_{name}")
    X, y = loader(return_X_y=True)
    return X, y


def _generated(name: str, opts: dict[str, Any], seed: int):
    from sklearn import datasets as skd

    if name == "moons":
        return skd.make_moons(opts["n_samples"], noise=opts["noise"], random_state=seed)
    if name == "circles":
        return skd.make_circles(
            opts["n_samples"], noise=opts["noise"], factor=opts["factor"], random_state=seed
        )
    if name == "blobs":
        return skd.make_blobs(
            opts["n_samples"],
            n_features=opts["n_features"],
            centers=opts["centers"],
            cluster_std=opts["cluster_std"],
            random_state=seed,
        )
    if name == "classification":
        return skd.make_classification(
            opts["n_samples"],
            n_features=opts["n_features"],
            n_informative=opts["n_informative"],
            n_redundant=0,
            n_classes=opts["n_classes"],
            random_state=seed,
        )
    return skd.make_regression(
        opts["n_samples"],
        n_features=opts["n_features"],
        n_informative=opts["n_informative"],
        noise=opts["noise"],
        random_state=seed,
    )


def _xor(opts: dict[str, Any], seed: int):
    """The four corners of the unit square, labelled by XOR, repeated to ``n_samples``."""
    for key, low in (("n_samples", 1), ("noise", 0)):  # as sklearn's generators refuse them
        if opts[key] < low:
            raise ValueError(f"{key} must be at least {low}, got {opts[key]}")
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    idx = np.arange(opts["n_samples"]) % 4
    X = corners[idx] + opts["noise"] * np.random.default_rng(seed).standard_normal((len(idx), 2))
    return X, (corners[idx, 0] != corners[idx, 1]).astype(np.int64)


def read_table(path: str | Path, target: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` from ``.npz`` (arrays ``X`` and ``target``), ``.npy`` (a 2-D array and
    ``target`` a column index, or with ``target`` None any ``(n, ...)`` array) or ``.csv``
    (``target`` a column name or None; a file without a header row, see :func:`has_header`,
    names its columns "0", "1", ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        filecheck.check_array_file(path)  # sizes against the real file, before np.load
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f.files:
                raise ValueError(f"{path}: no array 'X' (arrays: {f.files})")
            if target is not None and target not in f.files:
                raise ValueError(f"{path}: no target array {target!r} (arrays: {f.files})")
            return f["X"], (None if target is None else f[target])
    if suffix == ".npy":
        A = np.load(path, allow_pickle=False)
        if A.ndim >= 2 and target is None:  # samples of any shape: images, sequences
            return A, None
        if A.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {A.shape}")
        if isinstance(target, str) and target.lstrip("-").isdigit():
            target = int(target)  # --target 3 on the command line arrives as the string "3"
        if not isinstance(target, int) or not -A.shape[1] <= target < A.shape[1]:
            raise ValueError(
                f"{path}: target must be a column index below {A.shape[1]}, got {target!r}"
            )
        return np.delete(A, target, axis=1), A[:, target]
    if suffix == ".csv":
        return _read_csv(path, target)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (use .npz, .npy or .csv)")


def _read_csv(path: Path, target: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A CSV's ``(X, y)`` (see :func:`read_table`). Every row must have the header's number of
    cells, every feature must be a number and every target present (not empty, not NaN): an
    error names the line and column, never a short row read as data or a blank label as a
    class."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, r) for r in reader if r]  # blank lines hold no row
    if not rows:
        raise ValueError(f"{path}: empty file")
    if has_header([r for _, r in rows]):
        header, body = rows[0][1], rows[1:]
    else:  # every row is data; columns are known by their 0-based index
        header, body = [str(i) for i in range(len(rows[0][1]))], rows
    if not body:
        raise ValueError(f"{path}: a header row and no data rows")
    if target is not None and str(target) not in header:
        raise ValueError(f"{path}: no column {target!r}; columns: {header}")
    for line, r in body:
        if len(r) != len(header):
            raise ValueError(f"{path}, line {line}: {len(r)} cells, but {len(header)} columns")
    t = None if target is None else header.index(str(target))
    X = np.empty((len(body), len(header) - (t is not None)), dtype=np.float64)
    for row, (line, r) in enumerate(body):
        try:
            X[row] = [float(v) for i, v in enumerate(r) if i != t]
        except ValueError:
            j = next(i for i, v in enumerate(r) if i != t and not _is_number(v))
            what = f"{r[j]!r}" if r[j].strip() else "a missing value"
            raise ValueError(f"{path}, line {line}: column {header[j]!r} holds {what}") from None
    if t is None:
        return X, None
    labels = [r[t] for _, r in body]
    for (line, _), v in zip(body, labels, strict=True):
        if not v.strip() or (_is_number(v) and np.isnan(float(v))):
            what = repr(v) if v.strip() else "no value"
            raise ValueError(f"{path}, line {line}: the target {header[t]!r} holds {what}")
    try:
        return X, np.array([float(v) for v in labels])
    except ValueError:
        return X, np.array(labels)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def has_header(rows: list[list[str]]) -> bool:
    """Whether a CSV's first row names its columns, decided by content: it does when one of its
    cells is not a number in a column whose other cells are all numbers (or when it is the only
    row and holds a non-number). An empty cell is a missing value, no name. A first row of
    numbers only is data, never a header."""
    first, rest = rows[0], rows[1:]
    for j, cell in enumerate(first):
        if (
            cell.strip()
            and not _is_number(cell)
            and all(_is_number(r[j]) for r in rest if j < len(r))
        ):
            return True
    return False


def _is_classification(y: np.ndarray) -> bool:
    if y.dtype.kind in "iubUSO":
        return True
    one_column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)  # (n,) or (n, 1) alike
    return one_column and bool(np.all(y == np.round(y))) and len(np.unique(y)) <= 50


def load_source(opts: dict[str, Any]):
    """``(X, y, task, test_part or None, image_shape)`` for the ``source`` in ``opts``."""
    name, seed = opts["source"], opts["seed"]
    test, image = None, None
    if name in BUNDLED:
        X, y = _bundled(name)
        image = (8, 8) if name == "digits" else None
    elif name == "xor":
        X, y = _xor(opts, seed)
    elif name in ("mnist", "fashion_mnist"):
        loader = datasets.load_mnist if name == "mnist" else datasets.load_fashion_mnist
        X, y, Xt, yt = loader(opts["path"] or None)
        if not 0 <= opts["n_train"] <= len(X):  # X[:-5] would quietly drop the last 5 images,
            raise ValueError(  # X[:100000] quietly give the 60,000 there are
                f"n_train must be in [0, {len(X)}] (0: every image), got {opts['n_train']}"
            )
        if opts["n_train"]:
            X, y = X[: opts["n_train"]], y[: opts["n_train"]]
        # pixels 0..255 -> [0, 1]: the usual input scale for MNIST
        X, Xt = X / np.float32(255), Xt / np.float32(255)
        test, image = (Xt, yt), (28, 28)
        if opts["as_sequence"]:  # each image a sequence of 28 rows of 28 pixels: (n, 28, 28)
            X, Xt = X.reshape(-1, 28, 28), Xt.reshape(-1, 28, 28)
            test, image = (Xt, yt), None
    elif name == "adding":
        X, y = datasets.adding_problem(
            opts["n_samples"], opts["length"], np.random.default_rng(seed)
        )
    elif name == "text":
        X, y = text.read_fortunes(opts["path"], opts["categories"], opts["min_documents"])
        return X, y, "classification", None, None
    elif name == "file":
        if not opts["path"]:
            raise ValueError("data.path is required for source = 'file'")
        X, y = read_table(opts["path"], opts["target"])
        check_file_data(opts, X, y)
    else:
        X, y = _generated(name, opts, seed)
    if name == "file" and opts["task"] != "auto":
        task = opts["task"]
    elif name in BUNDLED + ("mnist", "fashion_mnist", "xor", "file"):
        task = "regression" if name in REGRESSION_SOURCES else None
        task = task or ("classification" if _is_classification(np.asarray(y)) else "regression")
    else:
        task = "regression" if name in REGRESSION_SOURCES else "classification"
    return np.asarray(X), np.asarray(y), task, test, image


def check_file_data(opts: dict[str, Any], X: Any, y: Any) -> None:
    """What a data file must hold: a task we know, as many targets as rows, finite features."""
    path, X = opts["path"], np.asarray(X)
    if opts["task"] not in ("auto", "classification", "regression"):
        raise ValueError(f"data.task must be auto, classification or regression: {opts['task']!r}")
    if y is not None and len(y) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but the target {len(y)}")
    if X.dtype.kind in "fc" and not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X.reshape(len(X), -1)))[0]
        raise ValueError(f"{path}: X holds {X.reshape(len(X), -1)[row, col]} at row {row + 1}")
    y = None if y is None else np.asarray(y)
    if y is not None and y.dtype.kind in "fc" and not np.isfinite(y).all():
        row = np.argwhere(~np.isfinite(y.reshape(len(y), -1)))[0, 0]
        raise ValueError(f"{path}: the target holds {y.reshape(len(y), -1)[row]} at row {row + 1}")


def prepare(opts: dict[str, Any], dtype: Any = np.float32) -> Dataset:
    """Load, split and standardize the data described by a config's ``[data]`` table."""
    X, y, task, test, image = load_source(opts)
    if opts["standardize"] and opts["source"] != "text" and np.ndim(X) > 2:
        # The model file's Standardize layer holds one mean and scale per feature of flat rows;
        # refused here, not after training when the model is saved.
        raise ValueError(
            f"standardize = true needs flat rows (n, features), but X has shape {np.shape(X)} "
            "(sequences or images): set standardize = false"
        )
    classes = None
    rng = np.random.default_rng(opts["seed"])
    if task == "classification":
        if np.ndim(y) == 2 and np.shape(y)[1] > 1:  # (np.unique would label each cell)
            raise ValueError(
                f"a classification target is one label per row, not y of shape {np.shape(y)} "
                "(multi-label rows: bp.MLPClassifier, or a Trainer with binary_cross_entropy)"
            )
        all_y = y if test is None else np.concatenate([y, test[1]])
        classes, codes = np.unique(all_y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"classification needs 2 classes or more in y, got only {classes}")
        y, test = codes[: len(y)], (None if test is None else (test[0], codes[len(y) :]))
    strat = y if task == "classification" else None
    test_is_train = False
    if test is not None:
        X_test, y_test = test
    elif opts["test_size"] > 0:
        tr, te = _split(len(X), opts, "test_size", rng, strat)
        X, y, X_test, y_test = X[tr], y[tr], X[te], y[te]
    else:
        X_test, y_test, test_is_train = X, y, True
    X_val = y_val = None
    if opts["validation_size"] > 0:
        strat = y if task == "classification" else None
        tr, va = _split(len(X), opts, "validation_size", rng, strat)
        X, y, X_val, y_val = X[tr], y[tr], X[va], y[va]
    ds = Dataset(X, y, X_val, y_val, X_test, y_test, task, image_shape=image)
    ds.test_is_train = test_is_train
    ds.classes = None if classes is None else classes.tolist()
    if opts["source"] == "text":  # sparse TF-IDF rows: unit length already, never centered
        text.vectorize(ds, opts, dtype)
    elif opts["standardize"]:
        ds.x_mean, ds.x_scale = mean_and_scale(X)
    if task == "regression" and opts["standardize_target"]:
        ds.y_mean = np.atleast_1d(y.mean(axis=0))
        ds.y_scale = np.atleast_1d(np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0))
    if opts["source"] != "text":
        ds.X_train, ds.X_test = (transform_X(ds, part, dtype) for part in (ds.X_train, ds.X_test))
        ds.X_val = None if X_val is None else transform_X(ds, X_val, dtype)
    if task == "regression":
        ds.y_train, ds.y_test = (transform_y(ds, part, dtype) for part in (ds.y_train, ds.y_test))
        ds.y_val = None if y_val is None else transform_y(ds, y_val, dtype)
    ds.info.update(source=opts["source"], n_train=ds.X_train.shape[0], n_test=ds.X_test.shape[0])
    ds.info["n_val"] = 0 if X_val is None else X_val.shape[0]
    return ds


def _split(n: int, opts: dict[str, Any], key: str, rng: Any, strat: Any) -> tuple[Any, Any]:
    """:func:`~backprop.data.split_indices` with its error naming the config's key."""
    train, held_out = split_indices(n, opts[key], rng, stratify=strat, name=key)
    if len(held_out) == 0:  # stratified: every class rounded its share down to 0 rows
        raise ValueError(
            f"{key}={opts[key]} of {n} samples in {len(np.unique(strat))} classes gives no row "
            f"(the split is stratified: each class gives round(its count * {key}) rows); "
            f"raise {key} or set it to 0"
        )
    return train, held_out


def transform_X(ds: Any, X: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """New inputs preprocessed as the training part was (standardized in float64)."""
    if ds.x_mean is None:
        return np.asarray(X).astype(dtype, copy=False)
    return ((np.asarray(X, dtype=np.float64) - ds.x_mean) / ds.x_scale).astype(dtype)


def transform_y(ds: Any, y: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if ds.y_mean is not None:
        y = (y - ds.y_mean) / ds.y_scale
    return y.astype(dtype)


def inverse_y(ds: Any, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y if ds.y_mean is None else y * ds.y_scale + ds.y_mean
