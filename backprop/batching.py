"""Where a Trainer's batches and validation rows come from.

* :class:`ValidationSplit`: ``validation_split`` is drawn once per Trainer, from the trainer's
  split stream, and kept: a second ``fit`` on the same data validates on the same rows (rows
  that validated never train), and checkpoints save the indices so a resumed run uses them too.
  A stratified split that would be empty is an error, never NaN metrics.
* :func:`array_batches`: one epoch of ``(X_batch, y_batch, w_batch)`` gathered by shuffled
  indices into a reused buffer (the training set is never copied).
* :func:`stream_batches`: one epoch of a user's iterable of ``(X, y[, w])`` tuples, validated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .data import gather, split_indices


def is_batch_stream(X: Any) -> bool:
    """True for an iterable of batches (not an array-like with a shape)."""
    return not hasattr(X, "shape") and hasattr(X, "__iter__") and not isinstance(X, str | bytes)


class ValidationSplit:
    """The validation rows of a Trainer's ``validation_split``, drawn once and kept.

    ``indices(n, fraction, labels)`` returns ``(train_idx, val_idx)``: drawn with ``rng`` on the
    first call, the same arrays on every later call with the same ``n`` and ``fraction``; other
    values are an error (a new split would send validated rows into training).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.n: int | None = None
        self.fraction: float | None = None
        self.val_idx: np.ndarray | None = None

    def indices(
        self, n: int, fraction: float, labels: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.val_idx is None:
            train_idx, val_idx = split_indices(n, fraction, self.rng, stratify=labels)
            if len(val_idx) == 0:
                n_classes = len(np.unique(labels)) if labels is not None else 1
                raise ValueError(
                    f"validation_split={fraction} of {n} samples in {n_classes} classes gives an "
                    "empty validation set (the split is stratified: each class gives "
                    "round(its count * fraction) rows); raise validation_split, or pass "
                    "validation_data"
                )
            self.n, self.fraction, self.val_idx = n, float(fraction), val_idx
            return train_idx, val_idx
        if n != self.n or float(fraction) != self.fraction:
            raise ValueError(
                f"this Trainer drew its validation split for {self.n} samples with "
                f"validation_split={self.fraction}; got {n} samples with {fraction}. The split "
                "is drawn once so that validation rows never train: use the same data and "
                "fraction, pass validation_data, or make a new Trainer"
            )
        mask = np.ones(n, bool)
        mask[self.val_idx] = False
        return np.flatnonzero(mask), self.val_idx

    def state_dict(self) -> dict[str, Any] | None:
        if self.val_idx is None:
            return None
        return {"n": self.n, "fraction": self.fraction, "val_idx": self.val_idx.copy()}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.n = self.fraction = self.val_idx = None
            return
        val_idx = np.asarray(state["val_idx"])
        n = int(state["n"])
        if val_idx.ndim != 1 or val_idx.dtype.kind not in "iu" or np.any(val_idx >= n):
            raise ValueError(f"a saved validation split must hold indices below {n}")
        self.n, self.fraction = n, float(state["fraction"])
        self.val_idx = val_idx.astype(np.intp)


def array_batches(
    X: Any,
    y: np.ndarray,
    w: np.ndarray | None,
    order: np.ndarray,
    bounds: Sequence[int],
    buffer: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """One epoch of (X_batch, y_batch, w_batch): batch ``b`` is ``order[bounds[b]:bounds[b+1]]``
    (rows sorted inside a batch for memmaps and HDF5, which read faster, or only, in increasing
    index order; the order of rows inside a batch does not change its gradient)."""
    sort = type(X) is not np.ndarray
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = np.sort(order[a:b]) if sort else order[a:b]
        yield gather(X, idx, buffer), y[idx], None if w is None else w[idx]


def stream_batches(
    source: Any, epoch: int, check: Callable[..., tuple]
) -> Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
    """One epoch of validated batches from a user's iterable of (X, y[, w]) tuples."""
    for b, item in enumerate(source):
        where = f"epoch {epoch + 1}, batch {b + 1}"
        if not isinstance(item, tuple | list) or len(item) not in (2, 3):
            raise ValueError(f"{where}: each batch must be a tuple (X, y) or (X, y, w)")
        try:
            yield check(*item, name="X_batch")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
