"""Sparse input: scipy.sparse matrices through the model, the Trainer and the estimators.

A sparse ``X`` ``(n_samples, n_features)`` is held as CSR (a CSC or any other format is
converted once, on entry) and is never made dense. Only the first layer sees it, and only a
layer that declares ``accepts_sparse = True`` (:class:`~backprop.Dense`) may be first::

    forward    y  = X @ W + b        CSR (n, d) times dense (d, k): a sparse-dense product
    backward   dW = X.T @ g          CSC view (d, n) times dense (n, k): no dense copy of X
               db = sum_i g[i]
               dX = (none)           nothing upstream needs it

Batches are row slices of the CSR gathered by index (``X[idx]`` copies only the rows of the
batch), so memory is bounded by one batch even when ``X.data``/``X.indices``/``X.indptr`` are
memmaps. Values keep their dtype unless the model's dtype differs, in which case each batch is
cast on its own (the data set is never cast whole, except for L-BFGS, whose one batch is the
whole training set: cast once, still sparse).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def is_sparse(X: Any) -> bool:
    """True for any scipy.sparse matrix or array.

    A NumPy array answers at once: this runs several times per training step, and
    ``scipy.sparse.issparse`` goes through an ``isinstance`` against an abstract base class.
    """
    return type(X) is not np.ndarray and sp.issparse(X)


def check_sparse_X(X: Any, name: str = "X", allow_nan: bool = False) -> Any:
    """``X`` as CSR (converted once when it has another format), checked like a dense ``X``:
    2-D, real values, at least one row and one column, finite stored values.

    A CSR is returned as it is (no copy), so memmapped ``data``/``indices``/``indptr`` stay on
    disk; the finite check reads ``X.data`` in blocks of about 16 MB.
    """
    X = _real_csr(X, name)
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; at least 1 is required")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; at least 1 is required")
    if not allow_nan and X.dtype.kind == "f" and not _data_finite(X.data):
        raise ValueError(f"{name} contains NaN or infinity")
    return X


def _real_csr(X: Any, name: str) -> Any:
    """``X`` as a 2-D CSR of real numbers (converted once when it has another format), whose
    index arrays point inside it (:func:`_check_indices`)."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.format != "csr":
        X = X.tocsr()
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if not getattr(X, _CHECKED, False):  # a batch gather_rows made from a checked X is sound
        _check_indices(X, name)
    return X


#: Set on the batches :func:`gather_rows` slices from a checked CSR, whose indices SciPy's row
#: slicing keeps sound: re-checking them at every batch cost ~10 us, 5-10 % of a small step.
_CHECKED = "_backprop_indices_checked"


def _check_indices(X: Any, name: str, block: int = 1 << 22) -> None:
    """Refuse a CSR whose column indices fall outside ``[0, n_features)`` or whose ``indptr``
    decreases. SciPy checks neither when a CSR is built from ``(data, indices, indptr)``, and
    its products then read and write outside ``W`` and ``dW`` (garbage, or a crash). Read in
    blocks, so memmapped index arrays are not loaded whole."""
    indptr, n_cols = X.indptr, X.shape[1]
    nnz = int(indptr[-1])
    for start in range(0, nnz, block):
        chunk = X.indices[start : min(start + block, nnz)]
        low, high = int(chunk.min()), int(chunk.max())
        if low < 0 or high >= n_cols:
            bad = low if low < 0 else high
            raise ValueError(
                f"{name} is a malformed sparse matrix: column index {bad} is outside "
                f"[0, {n_cols}) (X.check_format(full_check=True) says more)"
            )
    rows = 1 << 16  # np.diff allocates: at most 0.5 MB at a time, whatever the row count
    for start in range(0, indptr.shape[0] - 1, rows):
        if np.any(np.diff(indptr[start : start + rows + 1]) < 0):
            raise ValueError(f"{name} is a malformed sparse matrix: its indptr decreases")


def _data_finite(data: np.ndarray, block: int = 1 << 22) -> bool:
    for start in range(0, data.shape[0], block):
        chunk = data[start : start + block]
        if not np.isfinite(chunk.sum(dtype=np.float64)) and not np.all(np.isfinite(chunk)):
            return False
    return True


def checked_view(X: Any, dtype: Any) -> Any:
    """A CSR checked by :func:`check_sparse_X`, cast to ``dtype`` (else a new matrix object on
    the same arrays, never the caller's), marked as checked like :func:`gather_rows`' batches."""
    view = X.astype(dtype) if X.dtype != dtype else type(X)(X, copy=False)
    setattr(view, _CHECKED, True)
    return view


def gather_rows(X: Any, idx: np.ndarray | slice, dtype: Any = None) -> Any:
    """Rows ``X[idx]`` of a CSR as a new CSR holding only those rows, cast to ``dtype``.
    ``X`` must have passed :func:`check_sparse_X` (the batch is marked as checked)."""
    rows = X[idx]
    if dtype is not None and rows.dtype != dtype:
        rows = rows.astype(dtype)
    setattr(rows, _CHECKED, True)
    return rows


def as_model_input(X: Any, dtype: np.dtype, first_layer: Any, name: str = "X") -> Any:
    """A sparse batch ready for ``first_layer``: CSR of ``dtype``. Raises a TypeError naming
    the layer when it cannot take sparse input."""
    if not getattr(first_layer, "accepts_sparse", False):
        raise TypeError(
            f"{name} is a scipy.sparse matrix, but the first layer, "
            f"{type(first_layer).__name__}, cannot take sparse input; only a first Dense layer "
            "can. Put a Dense layer first, or pass X.toarray() if it fits in memory."
        )
    X = _real_csr(X, name)
    if X.dtype.kind == "f" and X.dtype.itemsize > np.dtype(dtype).itemsize:
        from .data import check_range  # data imports this module

        check_range(X.data[:, None], name, np.dtype(dtype))  # the stored values, as one column
    return X if X.dtype == dtype else X.astype(dtype)


def matmul(X: Any, W: np.ndarray) -> np.ndarray:
    """``X @ W`` for a sparse ``X`` ``(n, d)`` and dense ``W`` ``(d, k)``: a dense ``(n, k)``
    ndarray (never an ``np.matrix``) of the common dtype."""
    return np.asarray(X @ W)


def transpose_matmul(X: Any, g: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = X.T @ g`` for a sparse ``X`` ``(n, d)`` and dense ``g`` ``(n, k)``, without
    making ``X`` dense (``X.T`` is a CSC view of the CSR)."""
    out[...] = X.T @ g
