"""SklearnMonitor: the Trainer callback that keeps scikit-learn's per-epoch bookkeeping.

The Trainer runs the epochs; this callback only watches and steers them, in scikit-learn's order
at the end of every epoch::

    loss_ = sum_b (batch loss_b * batch size_b) / n_train     (penalty included, as scikit-learn)
    t_ += n_train;  n_iter_ += 1;  loss_curve_.append(loss_)
    early stopping:  score = accuracy / r2 on the validation set -> validation_scores_
                     no-improvement count += 1  if score < best_validation_score_ + tol
                     keep a copy of the weights when score > best_validation_score_
    otherwise:       no-improvement count += 1  if loss_ > best_loss_ - tol
    'invscaling':    lr = learning_rate_init / (t_ + 1) ** power_t
    count > n_iter_no_change:  'adaptive' sgd divides lr by 5 (stops once lr <= 1e-6),
                               everything else stops the Trainer

('invscaling' and 'adaptive' with the learning_rate, learning_rate_init and power_t the trainer's
optimizer was made with: :func:`rate_rule`) and, at the end of training with early stopping, puts
back the best weights. The state it updates lives on the estimator (``loss_curve_``,
``best_loss_``, ``_no_improvement_count``, ...), so it carries over ``warm_start`` and
``partial_fit`` as in scikit-learn. With L-BFGS it only records the loss of every iteration.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..callbacks import Callback

#: The per-epoch lists the monitor appends to (and nothing else changes them during a fit).
CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")


class SklearnMonitor(Callback):
    """Args:
    est: the estimator being fitted (its attributes are updated in place).
    n_train, batch_size: size of the training set and of a full batch.
    validation: ``(X_val, y_val, Y_val, w_val)`` (raw labels/targets for the score, encoded
        targets for the loss) or None.
    incremental: a ``partial_fit`` call (one epoch, no max_iter warning).
    """

    def __init__(
        self,
        est: Any,
        n_train: int,
        batch_size: int,
        validation: tuple | None,
        incremental: bool = False,
    ) -> None:
        self.est = est
        self.n_train = n_train
        self.batch_size = batch_size
        self.validation = validation
        self.incremental = incremental
        self.max_iter_reached = False
        # Validation is ours: declared so that later callbacks may monitor "val_loss".
        self.provides_validation = validation is not None
        self._accumulated = 0.0

    def on_train_begin(self, trainer):
        # partial_fit goes on at the rate of the samples seen, t_, which a saved estimator
        # keeps: also with the new optimizer of one loaded from a file (the same trainer's
        # optimizer has that rate already)
        if self.incremental and self.est.t_ and (rate := self._invscaling()) is not None:
            trainer.lr = rate

    def _invscaling(self) -> float | None:
        """'invscaling''s rate after ``t_`` samples, or None for another rate rule (the rule
        the trainer's optimizer was made with: :meth:`_rule`)."""
        rule, lr_init, power_t = self._rule()
        return lr_init / (self.est.t_ + 1) ** power_t if rule == "invscaling" else None

    def on_epoch_begin(self, trainer, epoch):
        self._accumulated = 0.0

    def on_batch_end(self, trainer, batch, logs):
        self._accumulated += logs["loss"] * logs["batch_size"]

    def on_epoch_end(self, trainer, epoch, logs):
        est = self.est
        if est.solver == "lbfgs":
            est.loss_curve_.append(float(logs["loss"]))
            if self.validation is not None:
                self._validate(trainer, logs)
            return
        est.loss_ = self._accumulated / self.n_train
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        logs["sklearn_loss"] = est.loss_
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        if self.validation is not None:
            self._validate(trainer, logs)
        self._count_no_improvement(trainer)
        if (rate := self._invscaling()) is not None:
            trainer.lr = rate
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if est.early_stopping else "Training loss"
            msg = (
                f"{what} did not improve more than tol={est.tol:f} for "
                f"{est.n_iter_no_change} consecutive epochs."
            )
            if self._adapt_or_stop(trainer, msg):
                trainer.stop_training = True
            else:
                est._no_improvement_count = 0
        if self.incremental:
            trainer.stop_training = True
        elif est.n_iter_ == est.max_iter and not trainer.stop_training:
            # the estimator warns once fit returns; a tol stop in this epoch has converged
            self.max_iter_reached = True

    def _rule(self) -> tuple[str, float, float]:
        """The rate rule the trainer's optimizer was made with (:func:`rate_rule`)."""
        return vars(self.est).get("_rate_rule") or rate_rule(self.est)

    def _validate(self, trainer, logs):
        est = self.est
        Xv, yv, Yv, wv = self.validation
        z = trainer.model.predict(Xv)
        score = est._score_raw(z, yv, wv)
        val_loss = trainer.loss.forward(z, Yv, wv) if np.all(np.isfinite(z)) else math.nan
        est.validation_loss_curve_.append(float(val_loss))
        logs["val_loss"], logs["val_score"] = float(val_loss), float(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        if est.validation_scores_ is not None:
            est.validation_scores_.append(score)

    def _count_no_improvement(self, trainer):
        est = self.est
        if est.early_stopping:
            last = est.validation_scores_[-1]
            if last < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if last > est.best_validation_score_:
                est.best_validation_score_ = last
                est._best_params = trainer.model.flat_parameters.copy()
                est._best_buffers = {k: v.copy() for k, v in trainer.model.buffers().items()}
        else:
            if est.loss_curve_[-1] > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]

    def _adapt_or_stop(self, trainer, msg: str) -> bool:
        """True to stop; 'adaptive' sgd divides the rate by 5 instead while it is > 1e-6."""
        est = self.est
        if self._rule()[0] != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return True
        if trainer.lr <= 1e-6:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        trainer.lr /= 5.0
        if est.verbose:
            print(msg + f" Setting learning rate to {trainer.lr:f}")
        return False

    def on_train_end(self, trainer):
        est = self.est
        if est.early_stopping and est.solver != "lbfgs" and est._best_params is not None:
            trainer.model.flat_parameters[...] = est._best_params
            for k, v in trainer.model.buffers().items():
                v[...] = est._best_buffers[k]


def rate_rule(est: Any) -> tuple[str, float, float]:
    """``(learning_rate, learning_rate_init, power_t)`` by which the monitor sets the rate of
    solver 'sgd' without a ``schedule`` (``("constant", 0, 0)`` otherwise: nothing to set). Taken
    when the trainer and its optimizer are made and kept with them, as scikit-learn's optimizer
    keeps them: a partial_fit that continues them ignores a set_params of these, as there."""
    if est.solver != "sgd" or est.schedule is not None:
        return ("constant", 0.0, 0.0)
    return (est.learning_rate, float(est.learning_rate_init), float(est.power_t))


def resume_bookkeeping(est: Any) -> None:
    """Before a ``warm_start`` fit or ``partial_fit`` continues a fitted ``est``: the state
    :class:`SklearnMonitor` updates, as the current ``early_stopping`` and ``solver`` need it.

    A first fit with early stopping leaves ``best_loss_`` None; one without leaves
    ``best_validation_score_`` None; L-BFGS leaves both None. Switching either setting between
    fits then made the monitor compute ``None - tol`` (scikit-learn crashes alike). The new
    quantity is tracked from this fit on: ``best_loss_ = inf`` or ``best_validation_score_ =
    -inf`` with ``validation_scores_ = []`` (``best_loss_`` None, as early stopping has it), and
    the no-improvement count restarts at 0. A fit without early stopping ends the best
    validation score (None): switched on again, early stopping must not put back weights from
    before the fits in between."""
    if est.solver == "lbfgs":
        return
    if est.early_stopping and est.best_validation_score_ is None:
        est.validation_scores_ = [] if est.validation_scores_ is None else est.validation_scores_
        est.best_validation_score_, est.best_loss_ = -np.inf, None
        est._no_improvement_count = 0
    elif not est.early_stopping and est.best_loss_ is None:
        est.best_loss_, est.best_validation_score_ = np.inf, None
        est._no_improvement_count = 0


def record_divergence(est: Any, exc: BaseException) -> None:
    """End a diverging fit with early stopping as scikit-learn does (its issue #29504): no error,
    NaN recorded as the epoch's loss and validation score, and the best weights so far (which
    :meth:`SklearnMonitor.on_train_end` put back), with a warning that says so."""
    est.n_iter_ += 1
    for curve in (est.loss_curve_, est.validation_scores_, est.validation_loss_curve_):
        curve.append(float("nan"))
    warnings.warn(
        f"{exc}. With early_stopping=True the fit ends here without an error: NaN is recorded "
        "as this epoch's loss and validation score, and the model keeps the weights of the "
        f"best validation score ({est.best_validation_score_}).",
        ConvergenceWarning,
        stacklevel=4,
    )
