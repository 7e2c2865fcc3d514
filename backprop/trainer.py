"""Trainer: the one training loop of the project.

Three modes resolve to one batch size in one place (:meth:`Trainer.resolve_batch_size`)::

    "stochastic" -> 1          "batch" -> n_samples          "minibatch" -> batch_size

Every epoch is one pass over the training indices in a fresh random order (never a copy of X,
never sampling with replacement); the last, smaller batch is used, not dropped, except that a
last batch of a single row joins the previous batch when the model has a BatchNorm (whose
variance over one row is 0). Each update is :meth:`Trainer.train_step`::

    forward -> loss -> backward -> + L1/L2 -> masks -> norm, finite? -> clip -> step

(masks: frozen and pruned gradients zeroed; the history records the norm taken there, before
clipping). A non-finite loss or norm raises :class:`TrainingDivergedError` naming the epoch and
batch, before clipping (which would hide an infinite entry) and the step, so the model keeps the
last good weights (and running statistics). L-BFGS is full-batch: each epoch is one batch, the
whole training set, whose step is one L-BFGS iteration (:mod:`backprop.lbfgs`). Penalties
(:meth:`Trainer.penalty_terms`) are computed in one place for the training loss, the validation
loss and :meth:`Trainer.evaluate`, so all three apply one rule per ``penalty_scale``. Callbacks see
a :class:`~backprop.view.TrainingView`. ``seed`` gives a shuffle and a split stream as the model's
seed gives its init and dropout ones: one int for both gives them the same bits.

The Trainer is this module (options, the maths of one update, evaluation) and three mixins: the
epoch loop (:mod:`backprop.training_loop`), the checkpoint state (:mod:`backprop.training_state`)
and the predictions that know the loss (:class:`backprop.inference.Predictions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import checks, pruning
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from . import schedules as schedules_mod
from .batching import ValidationSplit, check_data, feed
from .callbacks import Callback, History
from .inference import Predictions
from .layers.containers import named_layers
from .lbfgs import LBFGS
from .model import Sequential, spawn_generators
from .regularization import add_penalty_gradient, global_norm, penalty, soft_threshold
from .training_checks import (
    check_options,
    clip_gradients,
    evaluate_arrays,
    make_metrics,
)
from .training_loop import TrainingLoop, restored_weights
from .training_state import TrainerState

MODES = ("stochastic", "batch", "minibatch")


class TrainingDivergedError(FloatingPointError):
    """A non-finite loss or gradient; the model keeps its weights and buffers (running
    statistics) from before that batch."""


class Trainer(Predictions, TrainingLoop, TrainerState):
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
        L-BFGS is full-batch whatever the mode.
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
    schedule : schedules_mod.Schedule | schedules_mod.ReduceLROnPlateau | str | None, default None
        a learning-rate Schedule, stepped per epoch or per update; or a
        ReduceLROnPlateau, which then runs as the first callback; or the name of one
        that needs no arguments ("constant", "invscaling", "plateau": "step",
        "exponential" and "cosine" need an instance).
    callbacks : Sequence[Callback] | None, default None
        Callback instances, called in order.
    metrics : str | Sequence[str], default 'auto'
        "auto" (accuracy for cross-entropies, r2 for MSE, MAE and Huber), or a list of
        names from ``("accuracy", "r2")``, or ``[]``. Accuracy follows the loss: argmax
        for SoftmaxCrossEntropy, logit > 0 for BinaryCrossEntropy; r2 needs a regression
        loss (with Poisson, the R^2 of the rates ``exp(z)``).
    seed : int | np.random.Generator | None, default None
        int, Generator or None: batch order and validation split.
    sampler : Callable[[np.ndarray], np.ndarray] | None, default None
        ``sampler(indices) -> order``, called once per epoch with the training indices,
        returns the epoch's order (a permutation of them). Default: a permutation drawn
        from the trainer's shuffle stream. shuffle=False never calls it (increasing order).
    penalty_scale : str, default 'constant'
        "constant" applies ``l1``/``l2`` as given; "per_sample" divides them by
        the total sample weight of the data they are measured on (a training batch, the
        validation set, the data given to ``evaluate``), as scikit-learn's ``alpha`` is.
    l1_method : str, default 'subgradient'
        "subgradient" adds ``l1 * sign(w)`` to the gradient; "proximal" soft-thresholds the
        weights after each step, ``w <- sign(w) max(|w| - lr l1, 0)``, which gives exact zeros
        (not with L-BFGS).

    Notes
    -----
    Pruning: when ``model.weight_mask`` is set (:mod:`backprop.pruning`), pruned weights get no
    gradient and are zeroed, with the optimizer's state on them, after every step and at the end
    of ``fit``.
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
        schedule: schedules_mod.Schedule | schedules_mod.ReduceLROnPlateau | str | None = None,
        callbacks: Sequence[Callback] | None = None,
        metrics: str | Sequence[str] = "auto",
        seed: int | np.random.Generator | None = None,
        sampler: Callable[[np.ndarray], np.ndarray] | None = None,
        penalty_scale: str = "constant",
        l1_method: str = "subgradient",
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
        # penalties and clipping: checked (and made floats) by _check_options, here and in fit
        self.l1, self.l2, self.l1_method, self.penalty_scale = l1, l2, l1_method, penalty_scale
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.clip_param_norm = clip_param_norm
        self.clip_mode, self.clip_factor = clip_mode, clip_factor
        self.schedule = schedules_mod.get(schedule)
        self.callbacks = list(callbacks or [])
        self.metric_names = make_metrics(self.loss, metrics, names_only=True)
        self.shuffle_rng, split_rng = spawn_generators(seed, 2)
        self.validation_rows = ValidationSplit(split_rng)
        if sampler is not None and not callable(sampler):
            raise TypeError(f"sampler must be callable, got {sampler!r}")
        self.sampler = sampler
        self.history = History()
        self.epoch = 0  # epochs completed, across calls to fit
        self.step_count = 0  # optimizer updates taken (L-BFGS: iterations)
        self.stop_training = False
        self.interrupted = False  # the last fit ended by Ctrl-C
        self.notes: list[str] = []  # lines callbacks left for the user during the last fit
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
        check_options(self, fitting)

    def resolve_batch_size(self, n_samples: int) -> int:
        """The one place where a mode becomes a batch size."""
        if self.mode == "stochastic":
            return 1
        if self.mode == "batch":
            return n_samples
        return min(self.batch_size, n_samples)

    def _refresh_masks(self) -> None:
        """Trainable slices and the frozen mask, recomputed when a layer's trainable flag (nested
        ones too) or the parameter count (a first forward builds the model) changed."""
        key = (self.model.n_parameters, *(t for _, _, t in named_layers(self.model.layers)))
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

    def loss_and_gradients(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """Forward, loss, backward and penalties for one batch: returns (loss, output) and leaves
        dL/dparams in ``model.flat_gradients``. Shared by the step and by L-BFGS."""
        m = self.model
        out = m.forward(Xb, training=True)
        self._refresh_masks()  # after the forward, which builds an unbuilt model
        loss = self.loss.forward(out, yb, wb)
        m.backward(self.loss.backward(), need_input_grad=False)
        if self.l1 or self.l2:
            l1, l2 = self.penalty_terms(Xb.shape[0] if wb is None else float(np.sum(wb)))
            w = m.flat_parameters[: m.n_weights]
            loss += penalty(w, l1, l2)
            l1_grad = 0.0 if self.l1_method == "proximal" else l1
            add_penalty_gradient(w, m.flat_gradients[: m.n_weights], l1_grad, l2)
        if self._frozen is not None:
            m.flat_gradients[self._frozen] = 0
        pruning.mask_gradients(m)  # pruning hook (issue 15): pruned weights get no gradient
        return loss, out

    def checked_loss_and_gradients(self, Xb, yb, wb=None) -> tuple[float, np.ndarray, float]:
        """:meth:`loss_and_gradients`, then ``(loss, output, gradient norm)``; a non-finite loss
        or norm raises :class:`TrainingDivergedError` naming the epoch and batch, with the
        buffers (BatchNorm's running statistics, which the batch's forward moved) put back."""
        buffers = self.model.buffers()
        before = {k: v.copy() for k, v in buffers.items()}
        loss, out = self.loss_and_gradients(Xb, yb, wb)
        norm = global_norm(self.model.flat_gradients)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            for k, v in before.items():
                buffers[k][...] = v
            epoch, batch = self._position
            what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {norm}"
            lbfgs = not self.has_learning_rate  # a line-search trial point, not a step
            kept = restored_weights(self._hooks()) or (
                "the model keeps its weights and running statistics from "
                + ("the last iteration" if lbfgs else "before this batch")
            )
            advice = "lower the learning rate, clip the gradients,"
            advice = "rescale the inputs, add an l2 penalty," if lbfgs else advice
            raise TrainingDivergedError(
                f"non-finite {what} at epoch {epoch + 1}, batch {batch + 1}: training stopped;"
                f" {kept} ({advice} or check the data for extreme values)"
            )
        return loss, out, norm

    def train_step(self, Xb: np.ndarray, yb: np.ndarray, wb: np.ndarray | None = None):
        """One update on one batch; returns (loss, output, pre-clip gradient norm)."""
        if not self.has_learning_rate:
            raise ValueError("train_step takes one gradient step; L-BFGS steps through fit")
        loss, out, norm = self.checked_loss_and_gradients(Xb, yb, wb)
        grads = self.model.flat_gradients  # norm: before any clipping, as the history records
        clip_gradients(self, grads, norm)
        self.optimizer.step(self.model.flat_parameters, grads, self._slices)
        # Proximal L1 and pruning masks (issue 15): both act on the weights after the step.
        if self.l1 and self.l1_method == "proximal":
            total = Xb.shape[0] if wb is None else float(np.sum(wb))  # sparse X has no len
            t = self.optimizer.lr * self.penalty_terms(total)[0]
            for s in self._slices:  # trainable weights only
                soft_threshold(
                    self.model.flat_parameters[s.start : min(s.stop, self.model.n_weights)], t
                )
        pruning.after_step(self.model, self.optimizer)
        self.step_count += 1
        return loss, out, norm

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
            for classification losses). Drawn once per Trainer and kept (in checkpoints
            too): later fits on the same data validate on the same rows.
        sample_weight : Any, default None
            ``(n_samples,)`` non-negative weights; each batch's loss is their weighted mean
            over its rows (with one row per batch a weight cancels: a warning says so).
        interrupt : str, default 'warn'
            what Ctrl-C does: "warn" ends training with a warning, keeping the
            weights reached so far (``self.interrupted`` is then True); "raise" re-raises
            the KeyboardInterrupt after the callbacks' ``on_train_end``.

        Returns
        -------
        History
            The trainer's :class:`History`: one list per logged quantity (``loss``, ``val_loss``, metrics, ``lr``), one entry per epoch.
        """
        epochs = self.epochs if epochs is None else checks.positive_int("epochs", epochs)
        checks.one_of("interrupt", interrupt, ("warn", "raise"))
        self._check_options(fitting=True)
        batches, val = feed(self, X, y, sample_weight, validation_data, validation_split)
        return self._run(batches, val, epochs, interrupt)

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
        (X, y), in chunks of ``batch_size`` rows, in inference mode.

        Parameters
        ----------
        X : Any
            Input rows.
        y : Any
            Labels or targets.
        sample_weight : Any, default None
            Optional ``(n_samples,)`` weights, not all 0 (the means would be 0/0).
        batch_size : int, default 1024
            Rows per chunk.
        prefix : str, default ''
            Prepended to every key (``"val_"`` gives ``val_loss``).

        Returns
        -------
        dict[str, float]
            ``{"loss": ..., <metric>: ...}`` as Python floats.
        """
        X, y, w = check_data(self.model, X, y, sample_weight)
        return self._evaluate(X, y, w, checks.positive_int("batch_size", batch_size), prefix)

    def _evaluate(self, X, y, w, batch_size: int = 1024, prefix: str = "") -> dict[str, float]:
        return evaluate_arrays(self, X, y, w, batch_size, prefix)


__all__ = ["Trainer", "TrainingDivergedError", "MODES"]
