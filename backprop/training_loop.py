"""TrainingLoop: the epochs a :class:`~backprop.Trainer` runs once ``fit`` has its data.

``Trainer.fit`` checks its arguments and resolves its data into ``batches(epoch)`` and the
validation arrays (:func:`~backprop.batching.feed`); this mixin then runs the hooks around the
epochs, in this order::

    on_train_begin -> (callback states restored) -> per epoch:
        on_epoch_begin -> lr from an "epoch" schedule -> per batch:
            on_batch_begin -> lr from an "update" schedule -> step -> on_batch_end
        -> epoch logs (loss, metrics, grad_norm, grad_norm_max, val_*, lr, time) -> on_epoch_end
    -> on_train_end (always, also after Ctrl-C or an error; when an on_train_begin raises,
       for the callbacks whose on_train_begin had returned)

The epoch loss is the weighted mean of the batch losses, ``sum_b w_b loss_b / sum_b w_b`` with
``w_b`` the weight the loss divides the batch by (``loss.total_weight``: its row count, or its
summed sample weights, or a sequence loss's weighted real steps), so its rows count as in
``evaluate``. But each batch's loss (and its metrics and gradient norm) is taken in training mode
(Dropout on, BatchNorm on batch statistics) at the weights *before* that batch's update: one
full batch gives the loss at the weights the epoch began with, while ``val_*`` are measured after
the epoch; L-BFGS logs the loss at the point its iteration reached. With
``penalty_scale="per_sample"`` each batch adds the penalty divided by its own weight, so with
several batches the logged penalty is that many times ``evaluate``'s (scikit-learn's
``loss_curve_`` counts it so too). A batch of weight 0 (zero sample weights, all labels padded)
is skipped: no step, no hooks. ``grad_norm`` is the mean of the batches' pre-clip
gradient norms. The step is ``Trainer.train_step`` for first-order optimizers, one L-BFGS
iteration per epoch for L-BFGS (:func:`~backprop.lbfgs.iteration_step`), whose run is closed
at the end. A step that raises StopIteration (L-BFGS converged) ends training; an epoch
without batches is an error.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

from . import pruning
from .callbacks import Callback, History
from .lbfgs import iteration_step
from .training_checks import make_metrics
from .view import TrainingView


class TrainingLoop:
    """Mixin of :class:`~backprop.Trainer`: the epoch loop of ``fit`` (see the module docstring)."""

    # the epoch begun and not completed, its end hooks included (Ctrl-C, an error, a batch
    # hook): its weights, moments and random streams, or its callbacks' states and history, are
    # part-way through it, which no checkpoint may hold (None: between epochs)
    _unfinished: int | None = None

    def _run(self, batches: Callable, val: tuple | None, epochs: int, interrupt: str) -> History:
        """Run ``epochs`` epochs over ``batches(epoch)``, validating on ``val`` (or None) after
        each; Ctrl-C warns or re-raises as ``interrupt`` says. Returns the history."""
        hooks = self._hooks()
        self.has_validation = val is not None or any(cb.provides_validation for cb in hooks)
        self.stop_training = self.interrupted = False
        self.notes = []
        pruning.enforce(self.model, self.optimizer)  # pruning hook: a mask set before fit
        self.initial_epoch, self.end_epoch = self.epoch, self.epoch + epochs
        view = TrainingView(self)
        self._position = (self.initial_epoch, 0)
        run, begun = None, []  # only a callback that began is ended (its file, its bar)
        try:
            for cb in hooks:
                cb.on_train_begin(view)
                begun.append(cb)
            self._apply_pending_callback_states()
            if (schedule := self._stepped_schedule()) is not None:
                schedule.start(self.optimizer.lr, owner=self)
            if not self.has_learning_rate:
                run, step = iteration_step(self, batches)
            else:
                step = self.train_step
            self._fit_epochs(batches, step, val, hooks, view)
        except KeyboardInterrupt:
            self.interrupted = True
            if interrupt == "raise":
                raise
            epoch, batch = self._position
            kept = restored_weights(hooks) or "the model keeps the weights reached so far"
            warnings.warn(
                f"training interrupted at epoch {epoch + 1}, batch {batch + 1}; {kept} "
                f"({self.epoch} complete epochs in the history)",
                RuntimeWarning,
                stacklevel=3,
            )
        finally:
            if run is not None:
                run.close()
            self.model._held = None  # the last step's arrays (see Sequential.backward)
            for cb in begun:
                cb.on_train_end(view)
            pruning.enforce(self.model, self.optimizer)  # pruning hook: restored weights too
        return self.history

    def _fit_epochs(
        self, batches: Callable, step: Callable, val: tuple | None, hooks: list[Callback], view
    ) -> None:
        """The epochs themselves: each one's batches, steps and logs (see the module docstring)."""
        metrics = make_metrics(self.loss, self.metric_names)
        lr_schedule = self._stepped_schedule()
        for epoch in range(self.initial_epoch, self.end_epoch):
            if self.stop_training:
                break
            self._unfinished = epoch  # until its end: no checkpoint of a part-way state
            start = time.perf_counter()
            self._position = (epoch, 0)
            for cb in hooks:
                cb.on_epoch_begin(view, epoch)
            if lr_schedule is not None and lr_schedule.interval == "epoch":
                self.optimizer.lr = _scheduled(lr_schedule, epoch)
            for metric in metrics:
                metric.reset()
            total = weight_total = norm_sum = norm_max = 0.0
            n_batches = skipped = 0
            for b, (Xb, yb, wb) in enumerate(batches(epoch)):
                self._position = (epoch, b)
                bw = self.loss.total_weight(yb, wb, Xb.shape[0])
                if bw <= 0:  # no real step, or zero weights: nothing to learn, no update
                    skipped += 1
                    continue
                for cb in hooks:
                    cb.on_batch_begin(view, b)
                if lr_schedule is not None and lr_schedule.interval == "update":
                    self.optimizer.lr = _scheduled(lr_schedule, self.step_count)
                try:
                    loss, out, norm = step(Xb, yb, wb)
                except StopIteration:
                    self.stop_training = True
                    break
                total += loss * bw
                weight_total += bw
                norm_sum += norm
                norm_max = max(norm_max, norm)
                n_batches += 1
                for metric in metrics:
                    metric.update(out, yb, wb)
                logs = {"loss": loss, "grad_norm": norm, "batch_size": Xb.shape[0]}
                for cb in hooks:
                    cb.on_batch_end(view, b, logs)
            if self.stop_training and n_batches == 0:
                self._unfinished = None
                break  # L-BFGS had converged: no iteration, no epoch
            if n_batches == 0 and skipped:
                raise ValueError(
                    f"no real step in any training batch of epoch {epoch + 1}: every batch has "
                    "zero total weight (zero sample weights, or all labels ignore_index)"
                )
            if n_batches == 0:
                raise ValueError(
                    f"no training batches in epoch {epoch + 1}: the iterable of batches gave "
                    "none (it is empty, or a one-shot generator already used up: for several "
                    "epochs it must be re-iterable, a list or an object whose __iter__ starts "
                    "over)"
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
            self._unfinished = None  # (after History: the epoch is in the history now)


def _scheduled(schedule, t: int) -> float:
    """``schedule(t)``, refused unless a finite rate >= 0 (a negative one would climb the loss,
    NaN would fill the weights with NaN)."""
    lr = schedule(t)
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"{schedule!r} gave lr {lr} at step {t}: a rate must be finite and >= 0")
    return lr


def restored_weights(hooks: list[Callback]) -> str | None:
    """What a run that ends early (Ctrl-C, divergence) leaves in the model when a callback
    puts other weights back in ``on_train_end`` (EarlyStopping's best epoch), or None."""
    for cb in hooks:
        if (
            getattr(cb, "restore_best_weights", False)
            and getattr(cb, "best_params", None) is not None
        ):
            return f"{type(cb).__name__} puts back the weights of epoch {cb.best_epoch + 1}"
    return None
