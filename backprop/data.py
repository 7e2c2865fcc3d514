"""Data plumbing: validation, index-shuffled batches, splits, one-hot, and metrics.

Batches are drawn from *indices*: each epoch permutes the training indices (never the data) and
gathers the rows of each batch into a reused buffer, so the training set is never copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import sparse as sparse_mod


def check_X(X: Any, name: str = "X", allow_nan: bool = False, dtype: Any = None) -> Any:
    """An array of real numbers of shape ``(n_samples, *sample_shape)``, at least 2-D, with at
    least one sample and no empty axis; NaN/inf rejected, and, with ``dtype`` (the model's),
    values that casting to it would turn into infinity.

    ndarrays (memmaps included) are returned as they are, never copied. Other array-likes with
    ``shape``, ``dtype`` and ``__getitem__`` (an HDF5 dataset) are kept as they are too, so
    that training reads them batch by batch, if their ``dtype`` is a NumPy dtype; anything
    else (a list, a DataFrame, a torch tensor) goes through ``np.asarray``. The
    finite check reads the rows in blocks of about 16 MB. A scipy.sparse ``X`` comes back as
    CSR, never dense (:func:`backprop.sparse.check_sparse_X`).
    """
    if sparse_mod.is_sparse(X):
        X = sparse_mod.check_sparse_X(X, name, allow_nan)
        if (
            dtype is not None
            and X.dtype.kind == "f"
            and X.dtype.itemsize > np.dtype(dtype).itemsize
        ):
            check_range(X.data[:, None], name, np.dtype(dtype))  # the stored values
        return X
    if not isinstance(X, np.ndarray):
        array_like = all(hasattr(X, a) for a in ("shape", "dtype", "__getitem__"))
        array_like = array_like and isinstance(X.dtype, np.dtype)  # not a torch tensor's dtype
        if not (array_like and len(X.shape) >= 2):
            X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if len(X.shape) < 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features) or more, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; at least 1 is required")
    if 0 in X.shape[1:]:
        what = "features" if len(X.shape) == 2 else f"entries per sample (shape {X.shape})"
        raise ValueError(f"{name} has 0 {what}; at least 1 is required")
    if not allow_nan and X.dtype.kind == "f" and not _all_finite(X):
        raise ValueError(f"{name} contains NaN or infinity")
    if dtype is not None and X.dtype.kind == "f" and X.dtype.itemsize > np.dtype(dtype).itemsize:
        check_range(X, name, np.dtype(dtype))
    return X


def _blocks(X: Any, block_bytes: int = 1 << 24) -> Iterator[np.ndarray]:
    """Row blocks of about ``block_bytes``, so a memmap or an HDF5 dataset is never read whole."""
    row_bytes = int(np.prod(X.shape[1:])) * X.dtype.itemsize
    rows = max(1, block_bytes // max(1, row_bytes))
    for start in range(0, X.shape[0], rows):
        yield np.asarray(X[start : start + rows])


def _all_finite(X: Any) -> bool:
    for block in _blocks(X):
        if not np.isfinite(block.sum(dtype=np.float64)) and not np.all(np.isfinite(block)):
            return False
    return True


def check_range(X: Any, name: str, dtype: np.dtype) -> None:
    """Refuse finite values that become infinite in ``dtype`` (float64 data, float32 model)."""
    limit = float(np.finfo(dtype).max)
    for block in _blocks(X):  # max and min over the finite values: no copy of the block
        finite = np.isfinite(block)
        top = float(np.max(block, where=finite, initial=-np.inf))
        big = max(top, -float(np.min(block, where=finite, initial=np.inf)))
        if big > limit:
            raise ValueError(
                f"{name} holds a value of magnitude {big:.4g}, beyond the range of the model's {dtype} "
                f"(largest {limit:.4g}); scale the data, or use a float64 model"
            )


def check_targets(y: Any, n_samples: int) -> np.ndarray:
    """``y`` as an array of numbers, ``(n_samples,)`` or ``(n_samples, k)``, finite. An object
    array whose entries are all real numbers (a pandas column of mixed ints and floats) is
    converted; strings are refused with a hint to encode them, scipy.sparse targets with a hint
    to make them dense (they would be ``(n, k)`` rows of outputs the model computes densely)."""
    _refuse_sparse(y, "y")
    y = np.asarray(y)
    if y.dtype.kind == "O" and y.size and all(_is_real(v) for v in y.flat):
        y = np.asarray(y.tolist())
    if y.dtype.kind in "USO":
        shown = ", ".join(repr(str(v)) for v in np.unique(y.astype(str))[:3])
        raise ValueError(
            f"y holds labels that are not numbers ({shown}, ...): the Trainer takes class codes "
            "0..k-1; encode them with `classes, codes = np.unique(y, return_inverse=True)`, or "
            "use bp.MLPClassifier / bp.NeuralNetClassifier, which accept any labels"
        )
    if y.dtype.kind not in "fiub":
        raise ValueError(f"y must hold numbers, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity")
    return y


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating | np.bool_)


def _refuse_sparse(a: Any, name: str) -> None:
    """np.asarray makes a 0-D object array of a scipy.sparse matrix, and the checks after it
    then fail with NumPy's "setting an array element with a sequence"."""
    if sparse_mod.is_sparse(a):
        raise ValueError(
            f"{name} is a scipy.sparse matrix {a.shape}; only X may be sparse: pass "
            f"{name}.toarray()"
        )


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    _refuse_sparse(sample_weight, "sample_weight")
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    return w


def gather(X: Any, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``X[idx]``, written into (and cast to the dtype of) ``out[:len(idx)]`` when given.
    A sparse ``X`` gives a CSR of those rows alone (cast to ``out``'s dtype; ``out`` may then
    be a 0-row array that only carries the dtype)."""
    if sparse_mod.is_sparse(X):
        return sparse_mod.gather_rows(X, idx, None if out is None else out.dtype)
    if out is None:
        return np.asarray(X[idx])
    buf = out[: len(idx)]
    if type(X) is np.ndarray and X.dtype == buf.dtype and X.flags.c_contiguous:
        np.take(X, idx, axis=0, out=buf, mode="clip")  # indices are valid; "clip" avoids a copy
    else:  # memmaps, other array-likes, dtype casts, and Fortran-ordered or strided arrays,
        buf[...] = X[idx]  # which np.take would first copy whole, at every batch
    return buf


def split_indices(
    n: int,
    fraction: float,
    rng: np.random.Generator,
    stratify: np.ndarray | None = None,
    name: str = "validation_split",
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, validation) index arrays with ``n_val = round(fraction * n)`` validation
    rows (at least 1; errors name the option ``name``); stratified by class when ``stratify``
    holds labels: ``round(n_c * n_val / n)`` rows of each class of ``n_c`` members, but never all
    of them, so that every class keeps a training row. The stratified total can differ from
    ``n_val`` by a few rows, and is 0 when every class rounds down (the callers refuse that,
    naming their setting). A split that leaves no training row is refused."""
    real = isinstance(fraction, int | float | np.integer | np.floating)
    if isinstance(fraction, bool) or not real or not 0.0 < fraction < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {fraction!r}")
    n_val = max(1, int(round(fraction * n)))
    if n_val >= n:
        raise ValueError(f"{name}={fraction} leaves no training samples out of {n}")
    if stratify is None:
        perm = rng.permutation(n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val: list[np.ndarray] = []
    classes, inverse = np.unique(stratify, return_inverse=True)
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        k = min(int(round(len(members) * n_val / n)), len(members) - 1)
        val.append(members[:k])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def one_hot(labels: Any, n_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """``(n,)`` integer labels in ``[0, n_classes)`` to ``(n, n_classes)`` rows of 0/1."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


# -- metrics: accumulate over batches, read once per epoch ------------------------------------
class Accuracy:
    """Fraction of samples classified right, the rule chosen by the loss (never by the values
    of the targets):

    * ``decision="argmax"`` (SoftmaxCrossEntropy): the class is the row's argmax; targets are
      labels ``(n,)`` or probability rows ``(n, k)``, whose argmax is the true class;
    * ``decision="threshold"`` (BinaryCrossEntropy): each output is a label, on when its logit
      is > 0 and its target > 0.5; a sample counts only if every label is right.
    """

    name = "accuracy"

    def __init__(self, decision: str = "argmax") -> None:
        if decision not in ("argmax", "threshold"):
            raise ValueError(f"decision must be 'argmax' or 'threshold', got {decision!r}")
        self.decision = decision
        self.reset()

    def reset(self) -> None:
        self.correct = 0.0
        self.total = 0.0

    def update(self, out: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> None:
        if self.decision == "threshold":
            hit = np.all((out > 0) == (y.reshape(out.shape) > 0.5), axis=1)
        elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and out.shape[1] > 1):
            hit = out.argmax(axis=1) == y.reshape(-1)
        else:
            hit = out.argmax(axis=1) == y.argmax(axis=1)
        if w is None:
            self.correct += float(np.count_nonzero(hit))
            self.total += float(len(hit))
        else:
            self.correct += float(np.dot(hit, w))
            self.total += float(w.sum())

    def result(self) -> float:
        return self.correct / self.total if self.total else float("nan")


class R2:
    """Coefficient of determination, averaged uniformly over outputs (scikit-learn's r2_score),
    accumulated chunk by chunk so it needs no second pass over the data. Each chunk's weighted
    mean and centered sum of squares are merged (Chan et al.'s update), never ``sum y^2 -
    (sum y)^2 / n``, which cancels; an output that is constant over the data has no spread and
    counts out of the average.

    ``rates=True`` scores ``exp(out)`` instead of ``out``: the Poisson loss's outputs are
    log-rates, and its R^2 is that of the predicted rates (as ``score`` reports it)."""

    name = "r2"

    def __init__(self, rates: bool = False) -> None:
        self.rates = bool(rates)
        self.reset()

    def reset(self) -> None:
        self.n = 0.0
        self.mean = self.sst = self.sse = 0.0

    def update(self, out: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> None:
        y = y.reshape(out.shape).astype(np.float64)
        if self.rates:
            out = np.exp(out.astype(np.float64))  # log-rates -> the predicted rates
        r = out - y
        # The chunk's mean as y0 + mean(y - y0), y0 one of its (weighted) rows: on an output
        # that is constant the differences are exactly 0, so its mean is exact and its sst stays
        # exactly 0 through every merge (the mean of n copies of 0.1 is not 0.1, and would
        # leave a rounding-sized spread that R^2 divides by).
        if w is None:  # the common case, per training batch: plain sums
            n_b = float(len(y))
            if not n_b:
                return
            y0 = y[0]
            mean_b = y0 + (y - y0).sum(axis=0) / n_b
            d = y - mean_b
            sst_b, sse_b = (d * d).sum(axis=0), (r * r).sum(axis=0)
        else:
            weights = np.asarray(w, np.float64)
            n_b = float(weights.sum())
            if n_b <= 0:
                return
            y0 = y[np.argmax(weights > 0)]
            mean_b = y0 + weights @ (y - y0) / n_b
            sst_b, sse_b = weights @ ((y - mean_b) ** 2), weights @ (r * r)
        delta, n = mean_b - self.mean, self.n + n_b
        self.sst = self.sst + sst_b + delta**2 * (self.n * n_b / n)
        self.mean = self.mean + delta * (n_b / n)
        self.n = n
        self.sse = self.sse + sse_b

    def result(self) -> float:
        if not self.n:
            return float("nan")
        sst = np.where(self.sst > 0, self.sst, np.nan)  # a constant output: exactly 0
        return float(np.nanmean(1 - self.sse / sst)) if np.any(np.isfinite(sst)) else float("nan")


METRICS = {"accuracy": Accuracy, "r2": R2}
