"""Trainer: the one training loop of the project.

Three modes resolve to one batch size in one place (:meth:`Trainer.resolve_batch_size`)::

    "stochastic" -> 1          "batch" -> n_samples          "minibatch" -> batch_size

Every epoch is one pass over the training indices in a fresh random order (never a copy of X,
never sampling with replacement); the last, smaller batch is used, not dropped. Each update is
:meth:`Trainer.train_step`::

    forward -> loss -> backward -> + L1/L2 -> clip (record the pre-clip norm) -> finite? -> step

A non-finite loss or gradient raises :class:`TrainingDivergedError` naming the epoch and batch,
before the step, so the model keeps the last good weights. L-BFGS (:class:`backprop.LBFGS`) is
full-batch: the trainer hands SciPy the same loss-and-gradient function the step uses.

Randomness: ``seed`` is split into a shuffling stream and a validation-split stream, independent
of the model's initialization and dropout streams.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import inference
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import schedules as schedules_mod
from .callbacks import Callback, History
from .data import (
    METRICS,
    R2,
    Accuracy,
    batch_indices,
    check_sample_weight,
    check_targets,
    check_X,
    gather,
    split_indices,
)
from .lbfgs import LBFGS
from .model import Sequential, spawn_generators
from .regularization import (
    add_penalty_gradient,
    clip_adaptive,
    clip_by_global_norm,
    clip_by_param_norm,
    clip_by_value,
    global_norm,
    penalty,
)
from .sparse import is_sparse

MODES = ("stochastic", "batch", "minibatch")


def is_batch_stream(X: Any) -> bool:
    """True for an iterable of batches (not an array-like with a shape)."""
    return not hasattr(X, "shape") and hasattr(X, "__iter__") and not isinstance(X, str | bytes)


class TrainingDivergedError(FloatingPointError):
    """A non-finite loss or gradient; the model keeps the weights from before that batch."""


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _optional_positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Trainer:
    """Trains a :class:`~backprop.Sequential` with a loss and an optimizer.

    Parameters
    ----------
    model : Sequential
        the model (updated in place).
    loss : losses_mod.Loss | str
        a Loss or its name ("cross_entropy", "mse", ...).
    optimizer : optimizers_mod.Optimizer | LBFGS | str
        an Optimizer, ``LBFGS``, or a name ("adam", "sgd", "lbfgs", ...).
    mode : str, default 'minibatch'
        "stochastic" (1 sample per update), "batch" (all) or "minibatch" (``batch_size``).
    batch_size : int, default 32
        samples per update in minibatch mode.
    epochs : int, default 10
        epochs per call to :meth:`fit` (L-BFGS: iterations).
    shuffle : bool, default True
        draw each epoch's batches in a new random order.
    l1, l2 : float, default 0.0
        penalties ``l1 * sum|W| + l2/2 * sum W^2`` on weights (not biases).
    clip_norm : float | None, default None
        clip the global gradient norm to this bound.
    clip_value : float | None, default None
        clamp each gradient entry to ``[-clip_value, clip_value]``.
    clip_param_norm : float | None, default None
        clip each parameter's gradient norm separately.
    clip_mode : str | None, default None
        None, or "agc" for adaptive gradient clipping (Brock et al. 2021): each unit's
        gradient norm is bounded by ``clip_factor`` times its weight norm (see
        :func:`backprop.regularization.clip_adaptive`). Applied after the other clips.
    clip_factor : float, default 0.01
        the AGC bound ``lambda`` (0.01 by default).
    schedule : schedules_mod.Schedule | str | None, default None
        a learning-rate Schedule (or name), stepped per epoch or per update.
    callbacks : Sequence[Callback] | None, default None
        Callback instances, called in order.
    metrics : str | Sequence[str], default 'auto'
        "auto" (accuracy for cross-entropies, r2 for regression losses), or a list of
        names from ``("accuracy", "r2")``, or ``[]``.
    seed : int | np.random.Generator | None, default None
        int, Generator or None: batch order and validation split.
    sampler : Callable[[np.ndarray], np.ndarray] | None, default None
        ``sampler(indices) -> order``, called once per epoch with the training indices,
        returns the epoch's order (a permutation of them). Default: a permutation drawn
        from the trainer's shuffle stream (or the indices as they are with shuffle=False).
    penalty_scale : str, default 'constant'
        "constant" applies ``l1``/``l2`` as given; "per_sample" divides them by
        the batch's total sample weight (its size without weights), as scikit-learn's
        ``alpha`` is defined.

    """

    def __init__(
        self,
        model: Sequential,
        loss: losses_mod.Loss | str,
        optimizer: optimizers_mod.Optimizer | LBFGS | str,
        mode: str = "minibatch",
        batch_size: int = 32,
        epochs: int = 10,
        shuffle: bool = True,
        l1: float = 0.0,
        l2: float = 0.0,
        clip_norm: float | None = None,
        clip_value: float | None = None,
        clip_param_norm: float | None = None,
        clip_mode: str | None = None,
        clip_factor: float = 0.01,
        schedule: schedules_mod.Schedule | str | None = None,
        callbacks: Sequence[Callback] | None = None,
        metrics: str | Sequence[str] = "auto",
        seed: int | np.random.Generator | None = None,
        sampler: Callable[[np.ndarray], np.ndarray] | None = None,
        penalty_scale: str = "constant",
    ) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a backprop Sequential, got {type(model).__name__}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model = model
        self.loss = losses_mod.get(loss)
        self.optimizer = optimizers_mod.get(optimizer)
        self.mode = mode
        self.batch_size = _positive_int("batch_size", batch_size)
        self.epochs = _positive_int("epochs", epochs)
        self.shuffle = bool(shuffle)
        self.l1 = _non_negative("l1", l1)
        self.l2 = _non_negative("l2", l2)
        self.clip_norm = _optional_positive("clip_norm", clip_norm)
        self.clip_value = _optional_positive("clip_value", clip_value)
        self.clip_param_norm = _optional_positive("clip_param_norm", clip_param_norm)
        if clip_mode not in (None, "agc"):
            raise ValueError(f"clip_mode must be None or 'agc', got {clip_mode!r}")
        self.clip_mode = clip_mode
        self.clip_factor = _optional_positive("clip_factor", clip_factor)
        self.schedule = schedules_mod.get(schedule)
        if self.schedule is not None and isinstance(self.optimizer, LBFGS):
            raise ValueError("learning-rate schedules do not apply to L-BFGS")
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {cb!r}")
        self.metric_names = self._resolve_metrics(metrics)
        self.shuffle_rng, self.split_rng = spawn_generators(seed, 2)
        if sampler is not None and not callable(sampler):
            raise TypeError(f"sampler must be callable, got {sampler!r}")
        self.sampler = sampler
        if penalty_scale not in ("constant", "per_sample"):
            raise ValueError(
                f"penalty_scale must be 'constant' or 'per_sample', got {penalty_scale!r}"
            )
        self.penalty_scale = penalty_scale
        self.history = History()
        self.epoch = 0  # epochs completed, across calls to fit
        self.step_count = 0  # optimizer updates taken
        self.stop_training = False
        self.has_validation = False
        self.steps_per_epoch = 0
        self.initial_epoch = 0
        self.end_epoch = 0

    # -- set-up ---------------------------------------------------------------------------------
    def _resolve_metrics(self, metrics: str | Sequence[str]) -> list[str]:
        if metrics == "auto":
            if isinstance(
                self.loss, losses_mod.SoftmaxCrossEntropy | losses_mod.BinaryCrossEntropy
            ):
                return ["accuracy"]
            if isinstance(
                self.loss,
                losses_mod.MeanSquaredError | losses_mod.MeanAbsoluteError | losses_mod.Huber,
            ):
                return ["r2"]
            return []
        names = list(metrics)
        for name in names:
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}; valid names: {', '.join(METRICS)}")
        return names

    def resolve_batch_size(self, n_samples: int) -> int:
        """The one place where a mode becomes a batch size."""
        if self.mode == "stochastic":
            return 1
        if self.mode == "batch":
            return n_samples
        return min(self.batch_size, n_samples)

    def _check_data(self, X: Any, y: Any, sample_weight: Any = None, name: str = "X"):
        X = check_X(X, name, dtype=self.model.dtype)
        if not self.model.built:
            self.model.build(X.shape[1:])  # the first data fixes the input shape
        expected = self.model.in_shape
        if tuple(X.shape[1:]) != expected:
            if len(X.shape) == 2 and len(expected) == 1:
                raise ValueError(
                    f"{name} has {X.shape[1]} features, but the model expects {expected[0]}"
                )
            raise ValueError(
                f"{name} has samples of shape {tuple(X.shape[1:])}, but the model expects "
                f"{expected}"
            )
        y = check_targets(y, X.shape[0])
        return X, y, check_sample_weight(sample_weight, X.shape[0])

    def _frozen_mask(self) -> np.ndarray | None:
        """Boolean mask of flat entries belonging to frozen layers (None when nothing is frozen)."""
        slices = self.model.trainable_slices()
        if slices == [slice(0, self.model.n_parameters)]:
            return None
        mask = np.ones(self.model.n_parameters, bool)
        for s in slices:
            mask[s] = False
        return mask

    # -- the maths of one update ----------------------------------------------------------------
    def loss_and_gradients(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """Forward, loss, backward and penalties for one batch: returns (loss, output) and leaves
        dL/dparams in ``model.flat_gradients``. Shared by the step and by L-BFGS."""
        m = self.model
        out = m.forward(Xb, training=True)
        loss = self.loss.forward(out, yb, wb)
        m.backward(self.loss.backward(), need_input_grad=False)
        if self.l1 or self.l2:
            l1, l2 = self.l1, self.l2
            if self.penalty_scale == "per_sample":
                total = Xb.shape[0] if wb is None else float(np.sum(wb))
                l1, l2 = l1 / total, l2 / total
            w = m.flat_parameters[: m.n_weights]
            loss += penalty(w, l1, l2)
            add_penalty_gradient(w, m.flat_gradients[: m.n_weights], l1, l2)
        if self._frozen is not None:
            m.flat_gradients[self._frozen] = 0
        return loss, out

    def train_step(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """One update on one batch; returns (loss, output, pre-clip gradient norm)."""
        loss, out = self.loss_and_gradients(Xb, yb, wb)
        grads = self.model.flat_gradients
        norm = global_norm(grads)  # before any clipping: the norm the history records
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self._diverged(loss, norm)
        clipped = False
        if self.clip_value is not None:
            clip_by_value(grads, self.clip_value)
            clipped = True
        if self.clip_param_norm is not None:
            clip_by_param_norm(self.model.gradients().values(), self.clip_param_norm)
            clipped = True
        if self.clip_norm is not None:
            clip_by_global_norm(grads, self.clip_norm, None if clipped else norm)
        if self.clip_mode == "agc":
            m = self.model
            clip_adaptive(m.parameters().values(), m.gradients().values(), self.clip_factor)
        self.optimizer.step(self.model.flat_parameters, grads, self._slices)
        self.step_count += 1
        return loss, out, norm

    def _diverged(self, loss: float, norm: float) -> TrainingDivergedError:
        epoch, batch = self._position
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {norm}"
        return TrainingDivergedError(
            f"non-finite {what} at epoch {epoch + 1}, batch {batch + 1}: training stopped and the "
            "model keeps the weights from before this batch (lower the learning rate, clip the "
            "gradients, or check the data for extreme values)"
        )

    # -- fitting --------------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        validation_data: tuple | None = None,
        validation_split: float | None = None,
        sample_weight: Any = None,
        epochs: int | None = None,
    ) -> History:
        """Train for ``epochs`` more epochs (default ``self.epochs``) and return the history.

        Parameters
        ----------
        X : Any
            ``(n_samples, n_features)``: an ndarray, a ``np.memmap`` or any array-like with
            ``shape``, ``dtype`` and sorted fancy indexing (an HDF5 dataset): batches are
            gathered row by row, so a memmap is never read whole into memory. Or, with
            ``y=None``, an iterable of ``(X_batch, y_batch)`` or ``(X_batch, y_batch,
            w_batch)`` tuples, used as given (its own batch sizes and order); for several
            epochs it must be re-iterable (a list, or an object whose ``__iter__`` starts
            over), not a one-shot generator.
        y : Any, default None
            labels ``(n_samples,)`` or targets ``(n, k)``; None for an iterable of batches.
        validation_data : tuple | None, default None
            ``(X_val, y_val)`` or ``(X_val, y_val, w_val)``.
        validation_split : float | None, default None
            fraction of (X, y) held out for validation instead (stratified
            for classification losses). Its rows are gathered once; the rest are not copied.
        sample_weight : Any, default None
            ``(n_samples,)`` non-negative weights.

        Returns
        -------
        History
            The trainer's :class:`History`: one list per logged quantity (``loss``, ``val_loss``, metrics, ``lr``), one entry per epoch.
        """
        epochs = self.epochs if epochs is None else _positive_int("epochs", epochs)
        if y is None:
            if not is_batch_stream(X):
                raise ValueError("y is required unless X is an iterable of (X, y) batches")
            if validation_split is not None or sample_weight is not None:
                raise ValueError(
                    "with an iterable of batches, pass validation_data (not validation_split) "
                    "and put weights in the batches as (X, y, w)"
                )
            if isinstance(self.optimizer, LBFGS):
                raise ValueError("L-BFGS needs the whole training set as arrays, not batches")
            val = None if validation_data is None else self._check_val(validation_data)
            if not self.model.built:  # the first batch fixes the input shape
                first = next(iter(X), None)
                if isinstance(first, tuple | list) and first:
                    self.model.build(np.shape(first[0])[1:])
            self.steps_per_epoch = 0  # unknown until the first pass

            def batches():
                return self._stream_batches(X)
        else:
            X, y, w = self._check_data(X, y, sample_weight)
            train_idx, val = self._validation(X, y, w, validation_data, validation_split)
            batch_size = self.resolve_batch_size(len(train_idx))
            self.steps_per_epoch = math.ceil(len(train_idx) / batch_size)
            keep_ints = self.model.integer_input and X.dtype.kind in "iu"
            rows = 0 if is_sparse(X) else batch_size  # a sparse batch is gathered as CSR
            buffer = np.empty(
                (rows, *X.shape[1:]), dtype=X.dtype if keep_ints else self.model.dtype
            )

            def batches():
                return self._array_batches(X, y, w, train_idx, batch_size, buffer)

        self.has_validation = val is not None
        self._slices = self.model.trainable_slices()
        self._frozen = self._frozen_mask()
        self.stop_training = False
        self.initial_epoch, self.end_epoch = self.epoch, self.epoch + epochs
        callbacks = [*self.callbacks, self.history]
        for cb in callbacks:
            cb.on_train_begin(self)
        if self.schedule is not None:
            self.schedule.start(self.optimizer.lr)
        self.error: BaseException | None = None
        try:
            if isinstance(self.optimizer, LBFGS):
                self.optimizer.fit(self, X, y, w, train_idx, val, callbacks)
            else:
                self._fit_epochs(batches, val, callbacks)
        except KeyboardInterrupt:
            epoch, batch = getattr(self, "_position", (self.epoch, 0))
            warnings.warn(
                f"training interrupted at epoch {epoch + 1}, batch {batch + 1}; the model keeps "
                f"the weights reached so far ({self.epoch} complete epochs in the history)",
                RuntimeWarning,
                stacklevel=2,
            )
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            for cb in callbacks:
                cb.on_train_end(self)
        return self.history

    def _validation(self, X, y, w, validation_data, validation_split):
        n = X.shape[0]
        if validation_data is not None and validation_split is not None:
            raise ValueError("pass validation_data or validation_split, not both")
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (X_val, y_val) or (X_val, y_val, w_val)")
            return np.arange(n), self._check_val(validation_data)
        if validation_split is None:
            return np.arange(n), None
        classify = isinstance(self.loss, losses_mod.SoftmaxCrossEntropy) and y.ndim == 1
        train_idx, val_idx = split_indices(
            n, validation_split, self.split_rng, stratify=y if classify else None
        )
        wv = None if w is None else w[val_idx]
        return train_idx, (gather(X, val_idx), y[val_idx], wv)

    def _check_val(self, validation_data):
        Xv, yv = validation_data[0], validation_data[1]
        wv = validation_data[2] if len(validation_data) == 3 else None
        return self._check_data(Xv, yv, wv, name="X_val")

    def _array_batches(self, X, y, w, train_idx, batch_size, buffer):
        """One epoch of (X_batch, y_batch, w_batch) gathered from arrays by shuffled indices."""
        sort = type(X) is not np.ndarray  # memmaps and HDF5 read in increasing index order
        for idx in batch_indices(self._epoch_order(train_idx), batch_size, sort):
            yield gather(X, idx, buffer), y[idx], None if w is None else w[idx]

    def _stream_batches(self, source):
        """One epoch of validated batches from a user's iterable of (X, y[, w]) tuples."""
        for b, item in enumerate(source):
            where = f"epoch {self._position[0] + 1}, batch {b + 1}"
            if not isinstance(item, tuple | list) or len(item) not in (2, 3):
                raise ValueError(f"{where}: each batch must be a tuple (X, y) or (X, y, w)")
            try:
                yield self._check_data(*item, name="X_batch")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None

    def _fit_epochs(self, batches, val, callbacks):
        metrics = [METRICS[name]() for name in self.metric_names]
        for epoch in range(self.initial_epoch, self.end_epoch):
            if self.stop_training:
                break
            start = time.perf_counter()
            for cb in callbacks:
                cb.on_epoch_begin(self, epoch)
            if self.schedule is not None and self.schedule.interval == "epoch":
                self.optimizer.lr = self.schedule(epoch)
            for metric in metrics:
                metric.reset()
            total = weight_total = norm_sum = 0.0
            norm_max = 0.0
            n_batches = 0
            self._position = (epoch, 0)
            for b, (Xb, yb, wb) in enumerate(batches()):
                self._position = (epoch, b)
                for cb in callbacks:
                    cb.on_batch_begin(self, b)
                if self.schedule is not None and self.schedule.interval == "update":
                    self.optimizer.lr = self.schedule(self.step_count)
                loss, out, norm = self.train_step(Xb, yb, wb)
                bw = Xb.shape[0] if wb is None else float(wb.sum())
                total += loss * bw
                weight_total += bw
                norm_sum += norm
                norm_max = max(norm_max, norm)
                n_batches += 1
                for metric in metrics:
                    metric.update(out, yb, wb)
                for cb in callbacks:
                    cb.on_batch_end(self, b, {"loss": loss, "grad_norm": norm})
            if n_batches == 0:
                raise ValueError(
                    f"no training batches in epoch {epoch + 1}: an iterable of batches must be "
                    "re-iterable for several epochs (a list, or an object whose __iter__ starts "
                    "over), not a one-shot generator"
                )
            self.steps_per_epoch = n_batches
            logs: dict[str, float] = {"epoch": epoch + 1, "loss": total / max(weight_total, 1e-300)}
            logs.update({m.name: m.result() for m in metrics})
            logs["grad_norm"] = norm_sum / n_batches
            logs["grad_norm_max"] = norm_max
            self._finish_epoch(epoch, logs, val, callbacks, start)

    def _epoch_order(self, train_idx: np.ndarray) -> np.ndarray:
        if not self.shuffle:
            return train_idx
        if self.sampler is not None:
            order = np.asarray(self.sampler(train_idx))
            if order.shape != train_idx.shape:
                raise ValueError(
                    f"sampler returned {order.shape[0]} indices for {train_idx.shape[0]} samples"
                )
            return order
        return self.shuffle_rng.permutation(train_idx)

    def _finish_epoch(self, epoch, logs, val, callbacks, start):
        if val is not None:
            logs.update(self._evaluate(*val, prefix="val_"))
        logs["lr"] = float(getattr(self.optimizer, "lr", math.nan))
        if self.schedule is not None:
            self.schedule.observe(logs)
        self.epoch = epoch + 1
        logs["time"] = time.perf_counter() - start
        for cb in callbacks:
            cb.on_epoch_end(self, epoch, logs)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the model's weights: epoch and update counts,
        both random streams, optimizer and schedule state, and the history (copies).

        Returns
        -------
        dict[str, Any]
            JSON values and arrays, as :func:`save_checkpoint` writes them.
        """
        return {
            "epoch": self.epoch,
            "step_count": self.step_count,
            "shuffle_rng": copy.deepcopy(self.shuffle_rng.bit_generator.state),
            "split_rng": copy.deepcopy(self.split_rng.bit_generator.state),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next ``fit`` continues the run."""
        self.epoch = int(state["epoch"])
        self.step_count = int(state["step_count"])
        self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
        self.split_rng.bit_generator.state = state["split_rng"]
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.history.clear()
        self.history.update({k: list(v) for k, v in state["history"].items()})

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        batch_size: int = 1024,
        prefix: str = "",
    ) -> dict[str, float]:
        """Loss (with the L1/L2 penalty, like the training loss) and metrics over (X, y), in
        chunks of ``batch_size`` rows, in inference mode.

        Parameters
        ----------
        X : Any
            Input rows.
        y : Any
            Labels or targets.
        sample_weight : Any, default None
            Optional ``(n_samples,)`` weights.
        batch_size : int, default 1024
            Rows per chunk.
        prefix : str, default ''
            Prepended to every key (``"val_"`` gives ``val_loss``).

        Returns
        -------
        dict[str, float]
            ``{"loss": ..., <metric>: ...}`` as Python floats.
        """
        X, y, w = self._check_data(X, y, sample_weight)
        return self._evaluate(X, y, w, batch_size, prefix)

    def _evaluate(self, X, y, w, batch_size: int = 1024, prefix: str = "") -> dict[str, float]:
        metrics = [METRICS[name]() for name in self.metric_names]
        for metric in metrics:
            metric.reset()
        total = weight_total = 0.0
        for start in range(0, X.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            out = self.model.forward(X[sl])
            wb = None if w is None else w[sl]
            bw = out.shape[0] if wb is None else float(wb.sum())
            if bw > 0:
                total += self.loss.forward(out, y[sl], wb) * bw
                weight_total += bw
            for metric in metrics:
                metric.update(out, y[sl], wb)
        loss = total / weight_total if weight_total else math.nan
        loss += penalty(self.model.flat_parameters[: self.model.n_weights], self.l1, self.l2)
        result = {f"{prefix}loss": loss}
        result.update({f"{prefix}{m.name}": m.result() for m in metrics})
        return result

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """The model's outputs (logits for classification losses) in chunks.

        Parameters
        ----------
        X : Any
            Input rows.
        batch_size : int, default 1024
            Rows per chunk.

        Returns
        -------
        np.ndarray
            The model's outputs ``(n, *out_shape)``.
        """
        X = check_X(X)
        return self.model.predict(X, batch_size=batch_size)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, k)``: softmax of the logits for SoftmaxCrossEntropy,
        sigmoid for BinaryCrossEntropy (see :mod:`backprop.inference`)."""
        return inference.proba_from_outputs(self.predict(X), self.loss)

    def predict_classes(self, X: Any) -> np.ndarray:
        """Class codes ``(n,)`` in ``0..k-1``: argmax of the logits (``z > 0`` for one output)."""
        return inference.classes_from_outputs(self.predict(X), self.loss)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy for the cross-entropies, R^2 for the regression losses."""
        return inference.score_outputs(self.predict(X), y, self.loss)


__all__ = ["Trainer", "TrainingDivergedError", "MODES", "Accuracy", "R2"]
