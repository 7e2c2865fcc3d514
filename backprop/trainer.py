"""Trainer: the one training loop of the project.

Three modes resolve to one batch size in one place (:meth:`Trainer.resolve_batch_size`)::

    "stochastic" -> 1          "batch" -> n_samples          "minibatch" -> batch_size

Every epoch is one pass over the training indices in a fresh random order (never a copy of X,
never sampling with replacement); the last, smaller batch is used, not dropped, except that a
last batch of a single row joins the previous batch when the model has a BatchNorm (whose
variance over one row is 0). Each update is :meth:`Trainer.train_step`::

    forward -> loss -> backward -> + L1/L2 -> clip (record the pre-clip norm) -> finite? -> step

A non-finite loss or gradient raises :class:`TrainingDivergedError` naming the epoch and batch,
before the step, so the model keeps the last good weights. L-BFGS (:class:`backprop.LBFGS`) is
full-batch: each epoch is one "batch", the whole training set, whose step is one L-BFGS
iteration (see :mod:`backprop.lbfgs`); the hooks and logs are the same as for any optimizer.

Penalties (:meth:`Trainer.penalty_terms`) are computed in one place for the training loss, the
validation loss and :meth:`Trainer.evaluate`, so all three agree under every ``penalty_scale``.

Callbacks see a :class:`~backprop.view.TrainingView`, not the Trainer. Randomness: ``seed`` is
split into a shuffling stream and a validation-split stream, independent of the model's
initialization and dropout streams.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from . import checks
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import schedules as schedules_mod
from .batching import ValidationSplit, array_batches, is_batch_stream, stream_batches
from .callbacks import Callback, History
from .data import METRICS, R2, Accuracy, check_sample_weight, check_targets, check_X, gather
from .lbfgs import LBFGS
from .model import Sequential, spawn_generators
from .regularization import add_penalty_gradient, global_norm, penalty
from .training_checks import (
    check_lbfgs_options,
    clip_gradients,
    make_metrics,
    match_callback_states,
    needs_pairs,
)
from .view import TrainingView

MODES = ("stochastic", "batch", "minibatch")


class TrainingDivergedError(FloatingPointError):
    """A non-finite loss or gradient; the model keeps the weights from before that batch."""


class Trainer:
    """Trains a :class:`~backprop.Sequential` with a loss and an optimizer.

    Args:
        model: the model (updated in place).
        loss: a Loss or its name ("cross_entropy", "mse", ...).
        optimizer: an Optimizer, ``LBFGS``, or a name ("adam", "sgd", "lbfgs", ...).
        mode: "stochastic" (1 sample per update), "batch" (all) or "minibatch" (``batch_size``).
            L-BFGS is full-batch whatever the mode.
        batch_size: samples per update in minibatch mode.
        epochs: epochs per call to :meth:`fit` (L-BFGS: iterations).
        shuffle: draw each epoch's batches in a new random order.
        l1, l2: penalties ``l1 * sum|W| + l2/2 * sum W^2`` on weights (not biases).
        clip_norm: clip the global gradient norm to this bound.
        clip_value: clamp each gradient entry to ``[-clip_value, clip_value]``.
        clip_param_norm: clip each parameter's gradient norm separately.
        schedule: a learning-rate Schedule (or name), stepped per epoch or per update; or a
            ReduceLROnPlateau, which then runs as the first callback.
        callbacks: Callback instances, called in order.
        metrics: "auto" (accuracy for cross-entropies, r2 for regression losses), or a list of
            names from ``("accuracy", "r2")``, or ``[]``. Accuracy follows the loss: argmax
            for SoftmaxCrossEntropy, logit > 0 for BinaryCrossEntropy.
        seed: int, Generator or None: batch order and validation split.
        sampler: ``sampler(indices) -> order``, called once per epoch with the training indices,
            returns the epoch's order (a permutation of them). Default: a permutation drawn
            from the trainer's shuffle stream (or the indices as they are with shuffle=False).
        penalty_scale: "constant" applies ``l1``/``l2`` as given; "per_sample" divides them by
            the total sample weight of the data they are measured on (a training batch, the
            validation set, the data given to ``evaluate``), as scikit-learn's ``alpha`` is.
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
        schedule: schedules_mod.Schedule | schedules_mod.ReduceLROnPlateau | str | None = None,
        callbacks: Sequence[Callback] | None = None,
        metrics: str | Sequence[str] = "auto",
        seed: int | np.random.Generator | None = None,
        sampler: Callable[[np.ndarray], np.ndarray] | None = None,
        penalty_scale: str = "constant",
    ) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(f"model must be a backprop Sequential, got {type(model).__name__}")
        self.model = model
        self.loss = losses_mod.get(loss)
        self.optimizer = optimizers_mod.get(optimizer)
        self.mode = checks.one_of("mode", mode, MODES)
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self.epochs = checks.positive_int("epochs", epochs)
        self.shuffle = checks.boolean("shuffle", shuffle)
        self.l1 = checks.non_negative("l1", l1)
        self.l2 = checks.non_negative("l2", l2)
        self.clip_norm = checks.optional_positive("clip_norm", clip_norm)
        self.clip_value = checks.optional_positive("clip_value", clip_value)
        self.clip_param_norm = checks.optional_positive("clip_param_norm", clip_param_norm)
        self.schedule = schedules_mod.get(schedule)
        self.callbacks = list(callbacks or [])
        self.metric_names = make_metrics(self.loss, metrics, names_only=True)
        self.shuffle_rng, split_rng = spawn_generators(seed, 2)
        self.validation_split = ValidationSplit(split_rng)
        if sampler is not None and not callable(sampler):
            raise TypeError(f"sampler must be callable, got {sampler!r}")
        self.sampler = sampler
        self.penalty_scale = checks.one_of(
            "penalty_scale", penalty_scale, ("constant", "per_sample")
        )
        self.history = History()
        self.epoch = 0  # epochs completed, across calls to fit
        self.step_count = 0  # optimizer updates taken (L-BFGS: iterations)
        self.stop_training = False
        self.interrupted = False  # the last fit ended by Ctrl-C
        self.has_validation = False
        self.steps_per_epoch = 0
        self.initial_epoch = self.end_epoch = 0
        self._position = (0, 0)  # (epoch, batch) of the current update, for error messages
        self._trainable: tuple | None = None  # the layers' trainable flags the masks are for
        self._slices: list[slice] = []
        self._frozen: np.ndarray | None = None
        self._pending_callback_states: list[tuple[Callback, dict]] | None = None
        self._check_options()

    @property
    def has_learning_rate(self) -> bool:
        return not isinstance(self.optimizer, LBFGS)

    def _hooks(self) -> list[Callback]:
        """Who hears the hooks, in order: a plateau given as schedule, the callbacks, History."""
        plateau = isinstance(self.schedule, schedules_mod.ReduceLROnPlateau)
        return [*([self.schedule] if plateau else []), *self.callbacks, self.history]

    def _stepped_schedule(self) -> schedules_mod.Schedule | None:
        return self.schedule if isinstance(self.schedule, schedules_mod.Schedule) else None

    def _check_options(self, fitting: bool = False) -> None:
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {cb!r}")
        plateaus = [cb for cb in self._hooks() if isinstance(cb, schedules_mod.ReduceLROnPlateau)]
        if plateaus and self._stepped_schedule() is not None:
            raise ValueError(
                f"ReduceLROnPlateau cannot share a run with schedule={self.schedule!r}: the "
                "schedule sets the learning rate every epoch and would undo its reductions; "
                "use one of them"
            )
        if not self.has_learning_rate:
            check_lbfgs_options(self, plateaus, warn=fitting)

    def resolve_batch_size(self, n_samples: int) -> int:
        """The one place where a mode becomes a batch size."""
        if self.mode == "stochastic":
            return 1
        if self.mode == "batch":
            return n_samples
        return min(self.batch_size, n_samples)

    def _check_data(self, X: Any, y: Any, sample_weight: Any = None, name: str = "X"):
        X = check_X(X, name)
        expected = self.model.n_features_in
        if expected is not None and X.shape[1] != expected:
            raise ValueError(f"{name} has {X.shape[1]} features, but the model expects {expected}")
        y = check_targets(y, X.shape[0])
        return X, y, check_sample_weight(sample_weight, X.shape[0])

    def _refresh_masks(self) -> None:
        """Trainable slices and the frozen mask, recomputed when a layer's flag changed."""
        key = tuple(layer.trainable for layer in self.model.layers)
        if key == self._trainable:
            return
        self._trainable = key
        self._slices = self.model.trainable_slices()
        self._frozen = None
        if self._slices != [slice(0, self.model.n_parameters)]:
            self._frozen = np.ones(self.model.n_parameters, bool)
            for s in self._slices:
                self._frozen[s] = False

    # -- the maths of one update ----------------------------------------------------------------
    def penalty_terms(self, total_weight: float) -> tuple[float, float]:
        """``(l1, l2)`` as applied to data of this total sample weight (its row count without
        weights): as given, or divided by it with ``penalty_scale="per_sample"``."""
        if self.penalty_scale == "per_sample" and total_weight > 0:
            return self.l1 / total_weight, self.l2 / total_weight
        return self.l1, self.l2

    def _penalty(self, total_weight: float) -> float:
        l1, l2 = self.penalty_terms(total_weight)
        return penalty(self.model.flat_parameters[: self.model.n_weights], l1, l2)

    def loss_and_gradients(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """Forward, loss, backward and penalties for one batch: returns (loss, output) and leaves
        dL/dparams in ``model.flat_gradients``. Shared by the step and by L-BFGS."""
        m = self.model
        self._refresh_masks()
        out = m.forward(Xb, training=True)
        loss = self.loss.forward(out, yb, wb)
        m.backward(self.loss.backward(), need_input_grad=False)
        if self.l1 or self.l2:
            l1, l2 = self.penalty_terms(len(Xb) if wb is None else float(np.sum(wb)))
            w = m.flat_parameters[: m.n_weights]
            loss += penalty(w, l1, l2)
            add_penalty_gradient(w, m.flat_gradients[: m.n_weights], l1, l2)
        if self._frozen is not None:
            m.flat_gradients[self._frozen] = 0
        return loss, out

    def train_step(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """One update on one batch; returns (loss, output, pre-clip gradient norm)."""
        if not self.has_learning_rate:
            raise ValueError("train_step takes one gradient step; L-BFGS steps through fit")
        loss, out = self.loss_and_gradients(Xb, yb, wb)
        grads = self.model.flat_gradients
        norm = global_norm(grads)  # before any clipping: the norm the history records
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self._diverged(loss, norm)
        clip_gradients(self, grads, norm)
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
        interrupt: str = "warn",
    ) -> History:
        """Train for ``epochs`` more epochs (default ``self.epochs``) and return the history.

        Args:
            X: ``(n_samples, n_features)``: an ndarray, a ``np.memmap`` or any array-like with
                ``shape``, ``dtype`` and sorted fancy indexing (an HDF5 dataset): batches are
                gathered row by row, so a memmap is never read whole into memory. Or, with
                ``y=None``, an iterable of ``(X_batch, y_batch)`` or ``(X_batch, y_batch,
                w_batch)`` tuples, used as given (its own batch sizes and order); for several
                epochs it must be re-iterable (a list, or an object whose ``__iter__`` starts
                over), not a one-shot generator.
            y: labels ``(n_samples,)`` or targets ``(n, k)``; None for an iterable of batches.
            validation_data: ``(X_val, y_val)`` or ``(X_val, y_val, w_val)``.
            validation_split: fraction of (X, y) held out for validation instead (stratified
                for classification losses). Drawn once per Trainer and kept (in checkpoints
                too): later fits on the same data validate on the same rows.
            sample_weight: ``(n_samples,)`` non-negative weights.
            interrupt: what Ctrl-C does: "warn" ends training with a warning, keeping the
                weights reached so far (``self.interrupted`` is then True); "raise" re-raises
                the KeyboardInterrupt after the callbacks' ``on_train_end``.
        """
        epochs = self.epochs if epochs is None else checks.positive_int("epochs", epochs)
        checks.one_of("interrupt", interrupt, ("warn", "raise"))
        self._check_options(fitting=True)
        if y is None:
            batches, val = self._stream(X, validation_data, validation_split, sample_weight)
        else:
            batches, val = self._arrays(X, y, sample_weight, validation_data, validation_split)
        hooks = self._hooks()
        self.has_validation = val is not None or any(cb.provides_validation for cb in hooks)
        self.stop_training = self.interrupted = False
        self.initial_epoch, self.end_epoch = self.epoch, self.epoch + epochs
        view = TrainingView(self)
        run = None
        try:
            for cb in hooks:
                cb.on_train_begin(view)
            self._apply_pending_callback_states()
            if (schedule := self._stepped_schedule()) is not None:
                schedule.start(self.optimizer.lr)
            if not self.has_learning_rate:
                run, step = self._lbfgs_run(batches)
            else:
                step = self.train_step
            self._fit_epochs(batches, step, val, hooks, view)
        except KeyboardInterrupt:
            self.interrupted = True
            if interrupt == "raise":
                raise
            epoch, batch = self._position
            warnings.warn(
                f"training interrupted at epoch {epoch + 1}, batch {batch + 1}; the model keeps "
                f"the weights reached so far ({self.epoch} complete epochs in the history)",
                RuntimeWarning,
                stacklevel=2,
            )
        finally:
            if run is not None:
                run.close()
            for cb in hooks:
                cb.on_train_end(view)
        return self.history

    def _stream(self, X, validation_data, validation_split, sample_weight):
        if not is_batch_stream(X):
            raise ValueError("y is required unless X is an iterable of (X, y) batches")
        if validation_split is not None or sample_weight is not None:
            raise ValueError(
                "with an iterable of batches, pass validation_data (not validation_split) "
                "and put weights in the batches as (X, y, w)"
            )
        if not self.has_learning_rate:
            raise ValueError("L-BFGS needs the whole training set as arrays, not batches")
        val = None if validation_data is None else self._check_val(validation_data)
        self.steps_per_epoch = 0  # unknown until the first pass
        return (lambda epoch: stream_batches(X, epoch, self._check_data)), val

    def _arrays(self, X, y, sample_weight, validation_data, validation_split):
        X, y, w = self._check_data(X, y, sample_weight)
        train_idx, val = self._validation(X, y, w, validation_data, validation_split)
        if not self.has_learning_rate:  # one batch: the whole training set, gathered once
            full = len(train_idx) == X.shape[0]
            Xt = np.asarray(X if full else gather(X, train_idx), dtype=self.model.dtype)
            batch = (Xt, y[train_idx], None if w is None else w[train_idx])
            self.steps_per_epoch = 1
            return (lambda epoch: iter([batch])), val
        batch_size = self.resolve_batch_size(len(train_idx))
        pairs = needs_pairs(self.model) and len(train_idx) > 1
        n_batches = math.ceil(len(train_idx) / batch_size)
        if pairs and len(train_idx) % batch_size == 1:
            n_batches -= 1  # the last row joins the previous batch (see the module docstring)
        self.steps_per_epoch = n_batches
        buffer = np.empty((batch_size + pairs, X.shape[1]), dtype=self.model.dtype)

        def batches(epoch: int):
            order = self._epoch_order(train_idx)
            sizes = _batch_bounds(len(order), batch_size, n_batches)
            return array_batches(X, y, w, order, sizes, buffer)

        return batches, val

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
        train_idx, val_idx = self.validation_split.indices(
            n, validation_split, y if classify else None
        )
        wv = None if w is None else w[val_idx]
        return train_idx, (gather(X, val_idx), y[val_idx], wv)

    def _check_val(self, validation_data):
        Xv, yv = validation_data[0], validation_data[1]
        wv = validation_data[2] if len(validation_data) == 3 else None
        return self._check_data(Xv, yv, wv, name="X_val")

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

    def _lbfgs_run(self, batches):
        """Start L-BFGS on the one full batch; the epoch loop's step is one of its iterations."""
        ((Xt, yt, wt),) = list(batches(self.epoch))
        last = {}

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            loss, last["out"] = self.loss_and_gradients(Xt, yt, wt)
            norm = global_norm(self.model.flat_gradients)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise self._diverged(loss, norm)
            return loss, self.model.flat_gradients

        run = self.optimizer.start(objective, self.model.flat_parameters, self.epochs_left())

        def step(Xb, yb, wb):
            loss = run.next_iteration()
            if loss is None:  # SciPy stopped on its own (converged, or max_fun)
                raise StopIteration
            if not np.array_equal(run.last_x, self.model.flat_parameters):
                # the last evaluation was not at the accepted point: measure there
                objective(self.model.flat_parameters.astype(np.float64))
            self.step_count += 1
            return loss, last["out"], global_norm(self.model.flat_gradients)

        return run, step

    def epochs_left(self) -> int:
        return self.end_epoch - self.epoch

    def _fit_epochs(self, batches, step, val, hooks, view):
        metrics = make_metrics(self.loss, self.metric_names)
        lr_schedule = self._stepped_schedule()
        for epoch in range(self.initial_epoch, self.end_epoch):
            if self.stop_training:
                break
            start = time.perf_counter()
            self._position = (epoch, 0)
            for cb in hooks:
                cb.on_epoch_begin(view, epoch)
            if lr_schedule is not None and lr_schedule.interval == "epoch":
                self.optimizer.lr = lr_schedule(epoch)
            for metric in metrics:
                metric.reset()
            total = weight_total = norm_sum = norm_max = 0.0
            n_batches = 0
            for b, (Xb, yb, wb) in enumerate(batches(epoch)):
                self._position = (epoch, b)
                for cb in hooks:
                    cb.on_batch_begin(view, b)
                if lr_schedule is not None and lr_schedule.interval == "update":
                    self.optimizer.lr = lr_schedule(self.step_count)
                try:
                    loss, out, norm = step(Xb, yb, wb)
                except StopIteration:
                    self.stop_training = True
                    break
                bw = len(Xb) if wb is None else float(wb.sum())
                total += loss * bw
                weight_total += bw
                norm_sum += norm
                norm_max = max(norm_max, norm)
                n_batches += 1
                for metric in metrics:
                    metric.update(out, yb, wb)
                logs = {"loss": loss, "grad_norm": norm, "batch_size": len(Xb)}
                for cb in hooks:
                    cb.on_batch_end(view, b, logs)
            if self.stop_training and n_batches == 0:
                break  # L-BFGS had converged: no iteration, no epoch
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
            if val is not None:
                logs.update(self._evaluate(*val, prefix="val_"))
            logs["lr"] = float(getattr(self.optimizer, "lr", math.nan))
            self.epoch = epoch + 1
            logs["time"] = time.perf_counter() - start
            for cb in hooks:
                cb.on_epoch_end(view, epoch, logs)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the model's weights: epoch and update counts,
        both random streams, the validation split, optimizer and schedule state, every
        callback's state (in order), and the history (copies). Values are numbers, strings,
        lists, dicts and NumPy arrays."""
        stepped = self._stepped_schedule()
        return {
            "epoch": self.epoch,
            "step_count": self.step_count,
            "shuffle_rng": copy.deepcopy(self.shuffle_rng.bit_generator.state),
            "split_rng": copy.deepcopy(self.validation_split.rng.bit_generator.state),
            "validation_split": self.validation_split.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if stepped is None else stepped.state_dict(),
            "callbacks": [
                {"type": type(cb).__name__, "state": cb.state_dict()} for cb in self._hooks()[:-1]
            ],
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next ``fit`` continues the run. The
        callbacks get their state right after their ``on_train_begin`` in that fit (which may
        reset them for a fresh run), or at once through :meth:`restore_callbacks`."""
        self.epoch = int(state["epoch"])
        self.step_count = int(state["step_count"])
        self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
        self.validation_split.rng.bit_generator.state = state["split_rng"]
        self.validation_split.load_state_dict(state.get("validation_split"))
        self.optimizer.load_state_dict(state["optimizer"])
        stepped = self._stepped_schedule()
        if stepped is not None and state.get("schedule") is not None:
            stepped.load_state_dict(state["schedule"])
        self._pending_callback_states = match_callback_states(
            self._hooks()[:-1], state.get("callbacks", [])
        )
        self.history.clear()
        self.history.update({k: list(v) for k, v in state["history"].items()})

    def restore_callbacks(self) -> None:
        """Give the callbacks the state loaded by :meth:`load_state_dict` now (a finished run
        that is not fitted again, say)."""
        self._apply_pending_callback_states()

    def _apply_pending_callback_states(self) -> None:
        saved, self._pending_callback_states = self._pending_callback_states, None
        for cb, state in saved or []:
            cb.load_state_dict(state)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        batch_size: int = 1024,
        prefix: str = "",
    ) -> dict[str, float]:
        """Loss (with the L1/L2 penalty, scaled as the training loss's) and metrics over
        (X, y), in chunks of ``batch_size`` rows, in inference mode."""
        X, y, w = self._check_data(X, y, sample_weight)
        return self._evaluate(X, y, w, checks.positive_int("batch_size", batch_size), prefix)

    def _evaluate(self, X, y, w, batch_size: int = 1024, prefix: str = "") -> dict[str, float]:
        metrics = make_metrics(self.loss, self.metric_names)
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
        loss += self._penalty(weight_total)
        result = {f"{prefix}loss": loss}
        result.update({f"{prefix}{m.name}": m.result() for m in metrics})
        return result

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """The model's outputs (logits for classification losses) in chunks."""
        X = check_X(X)
        return self.model.predict(X, batch_size=batch_size)


def _batch_bounds(n: int, batch_size: int, n_batches: int) -> Iterable[int]:
    """The start of each batch: ``n_batches`` batches of ``batch_size``, the last taking the
    rest (one row more than ``batch_size`` when a single row would be left over)."""
    return [min(b * batch_size, n) for b in range(n_batches)] + [n]


__all__ = ["Trainer", "TrainingDivergedError", "MODES", "Accuracy", "R2", "METRICS"]
