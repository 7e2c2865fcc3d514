"""Where a Trainer's batches and validation rows come from.

* :func:`feed`: ``Trainer.fit``'s data, checked, as ``(batches, validation)``: ``batches(epoch)``
  gives one epoch of ``(X_batch, y_batch, w_batch)``; ``validation`` is ``(X, y, w)`` or None.
  The mode's batch size comes from ``trainer.resolve_batch_size``; a last batch of a single row
  joins the previous batch when the model normalizes with batch statistics (BatchNorm), whose
  variance over one row is 0; L-BFGS gets the whole training set as its one batch.

* :class:`ValidationSplit`: ``validation_split`` is drawn once per Trainer, from the trainer's
  split stream, and kept: a second ``fit`` on the same data validates on the same rows (rows
  that validated never train), and checkpoints save the indices so a resumed run uses them too.
  A stratified split that would be empty is an error, never NaN metrics.
* :func:`array_batches`: one epoch of ``(X_batch, y_batch, w_batch)`` gathered by shuffled
  indices into a reused buffer (the training set is never copied).
* :func:`stream_batches`: one epoch of a user's iterable of ``(X, y[, w])`` tuples, validated.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import checks
from .data import check_sample_weight, check_targets, check_X, gather, split_indices
from .sparse import checked_view, is_sparse
from .training_checks import needs_pairs


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
        n = checks.positive_int("n", state["n"])
        bad = val_idx.ndim != 1 or val_idx.dtype.kind not in "iu" or len(val_idx) == 0
        if bad or val_idx.min() < 0 or val_idx.max() >= n:
            raise ValueError(f"a saved validation split must hold indices in [0, {n})")
        self.n, self.fraction = n, float(state["fraction"])
        self.val_idx = val_idx.astype(np.intp)


def check_data(model: Any, X: Any, y: Any, sample_weight: Any = None, name: str = "X"):
    """``(X, y, w)`` checked against each other and against the model's input shape (an
    unbuilt model is built from the first data it sees)."""
    X = check_X(X, name, dtype=model.dtype)
    if not model.built:
        model.build(X.shape[1:])  # the first data fixes the input shape
    expected = model.in_shape
    if tuple(X.shape[1:]) != expected:
        if len(X.shape) == 2 and len(expected) == 1:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but the model expects {expected[0]}"
            )
        raise ValueError(
            f"{name} has samples of shape {tuple(X.shape[1:])}, but the model expects {expected}"
        )
    y = check_targets(y, X.shape[0])
    return X, y, check_sample_weight(sample_weight, X.shape[0])


def feed(trainer: Any, X, y, sample_weight, validation_data, validation_split):
    """``(batches, validation)`` for ``trainer.fit`` (see the module docstring); sets
    ``trainer.steps_per_epoch``."""
    if y is None:
        return _stream(trainer, X, validation_data, validation_split, sample_weight)
    X, y, w = check_data(trainer.model, X, y, sample_weight)
    train_idx, val = _validation(trainer, X, y, w, validation_data, validation_split)
    keep_ints = trainer.model.integer_input and X.dtype.kind in "iu"  # Embedding indices
    dtype = X.dtype if keep_ints else trainer.model.dtype
    if not trainer.has_learning_rate:  # L-BFGS: one batch, the whole training set, gathered once
        full = len(train_idx) == X.shape[0]
        Xt = X if full else gather(X, train_idx)
        if is_sparse(Xt):  # CSR stays CSR, cast once (L-BFGS reads the whole set anyway),
            Xt = checked_view(Xt, dtype)  # not re-checked at every evaluation
        else:
            Xt = np.asarray(Xt, dtype=dtype)
        batch = (Xt, y[train_idx], None if w is None else w[train_idx])
        trainer.steps_per_epoch = 1
        return (lambda epoch: iter([batch])), val
    batch_size = trainer.resolve_batch_size(len(train_idx))
    if batch_size == 1 and w is not None:
        _warn_weights_cancel(w[train_idx])
    pairs = needs_pairs(trainer.model) and len(train_idx) > 1
    n_batches = -(-len(train_idx) // batch_size)
    if pairs and len(train_idx) % batch_size == 1:
        n_batches -= 1  # the last row joins the previous batch
    trainer.steps_per_epoch = n_batches
    rows = 0 if is_sparse(X) else batch_size + pairs  # a sparse batch is gathered as CSR
    buffer = np.empty((rows, *X.shape[1:]), dtype=dtype)

    def batches(epoch: int):
        order = _epoch_order(trainer, train_idx)
        bounds = [min(b * batch_size, len(order)) for b in range(n_batches)] + [len(order)]
        return array_batches(X, y, w, order, bounds, buffer)

    return batches, val


def _warn_weights_cancel(w: np.ndarray) -> None:
    """Warn when batches of one row meet unequal positive sample weights: a batch's loss is
    ``sum_i w_i l_i / sum_i w_i``, which for one row is ``l_i`` whatever ``w_i`` (as in
    scikit-learn's MLP with ``batch_size=1``); only a zero weight (the row is skipped) acts."""
    positive = w[w > 0]
    if positive.size and positive.min() != positive.max():
        warnings.warn(
            "sample_weight does not weight the rows' losses with one row per batch "
            "(mode='stochastic' or batch_size=1): each batch's loss is the weighted mean over "
            "its rows, so a row's weight cancels (only zero-weight rows, which are skipped, the "
            "logged loss and a per_sample penalty see the weights); use mode='minibatch' or "
            "'batch', or repeat rows by weight",
            RuntimeWarning,
            stacklevel=4,
        )


def _stream(trainer, X, validation_data, validation_split, sample_weight):
    if not is_batch_stream(X):
        raise ValueError("y is required unless X is an iterable of (X, y) batches")
    if validation_split is not None or sample_weight is not None:
        raise ValueError(
            "with an iterable of batches, pass validation_data (not validation_split) "
            "and put weights in the batches as (X, y, w)"
        )
    if not trainer.has_learning_rate:
        raise ValueError("L-BFGS needs the whole training set as arrays, not batches")
    val = None if validation_data is None else _check_val(trainer, validation_data)
    if not trainer.model.built:  # the first batch fixes the input shape
        source = iter(X)
        first = next(source, None)
        if isinstance(first, tuple | list) and first and np.ndim(first[0]) >= 2:
            trainer.model.build(np.shape(first[0])[1:])  # else the batch check names the fault
        if source is X and first is not None:  # a one-shot generator: put the batch back
            X = itertools.chain([first], source)
    trainer.steps_per_epoch = 0  # unknown until the first pass

    def check(*item, name):
        return check_data(trainer.model, *item, name=name)

    return (lambda epoch: stream_batches(X, epoch, check)), val


def _validation(trainer, X, y, w, validation_data, validation_split):
    n = X.shape[0]
    if validation_data is not None and validation_split is not None:
        raise ValueError("pass validation_data or validation_split, not both")
    if validation_data is not None:
        return np.arange(n), _check_val(trainer, validation_data)
    if validation_split is None:
        return np.arange(n), None
    labels = None  # stratified by class for argmax losses: labels, a column of them, or the
    if trainer.loss.decision == "argmax":  # argmax of one-hot / probability rows
        labels = y.reshape(n) if y.ndim == 1 or y.shape[1] == 1 else y.argmax(axis=1)
    train_idx, val_idx = trainer.validation_rows.indices(n, validation_split, labels)
    wv = None if w is None else _scorable(w[val_idx], "the validation_split rows' weights")
    return train_idx, (gather(X, val_idx), y[val_idx], wv)


def _scorable(w: np.ndarray | None, what: str) -> np.ndarray | None:
    """Validation weights that can score: a total of 0 makes every val_ metric 0/0 = NaN."""
    if w is not None and not np.any(w > 0):
        raise ValueError(
            f"{what} are all 0: the validation loss and metrics would be NaN at every epoch; "
            "give the validation rows some weight"
        )
    return w


def _check_val(trainer, validation_data):
    if not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, w_val)")
    Xv, yv = validation_data[0], validation_data[1]
    wv = validation_data[2] if len(validation_data) == 3 else None
    Xv, yv, wv = check_data(trainer.model, Xv, yv, wv, name="X_val")
    return Xv, yv, _scorable(wv, "validation_data's sample weights")


def _epoch_order(trainer, train_idx: np.ndarray) -> np.ndarray:
    if not trainer.shuffle:
        return train_idx
    if trainer.sampler is not None:
        order = np.asarray(trainer.sampler(train_idx))
        if order.shape != train_idx.shape:
            raise ValueError(
                f"sampler returned {order.shape[0]} indices for {train_idx.shape[0]} samples"
            )
        if order.dtype.kind not in "iu":
            raise ValueError(f"sampler must return integer indices, got dtype {order.dtype}")
        if not np.array_equal(np.sort(order), np.sort(train_idx)):  # else validation rows train
            extra = np.setdiff1d(order, train_idx)
            what = (
                f"index {extra[0]}, which is not one of them (a validation row, out of range, or "
                "a position instead of an index)"
                if extra.size
                else "an index twice"
            )
            raise ValueError(
                f"sampler must return a permutation of the training indices it is given; it "
                f"returned {what}"
            )
        return order
    return trainer.shuffle_rng.permutation(train_idx)


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
    index order; that changes the gradient only through what goes by position, Dropout's
    masks). A sparse ``X`` takes its rows in the epoch's order, as an ndarray does: a CSR
    gathers any order alike, and its results then equal those on the dense data."""
    sort = type(X) is not np.ndarray and not is_sparse(X)
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
