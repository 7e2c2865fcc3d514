"""The Trainer's rules: which metrics a loss gets, what L-BFGS refuses, how gradients are
clipped, how a data set is evaluated (penalty included, scaled as in training), which models
need training batches of at least two rows, and how saved callback states find their callbacks.

L-BFGS and the options that cannot apply to it::

    clip_norm, clip_value, clip_param_norm   refused: SciPy's line search needs the true
                                             gradient, a clipped one breaks it
    l1_method="proximal"                     refused: a step after the step; L-BFGS would
                                             see the L1 term in the loss, not in the gradient
    schedule, ReduceLROnPlateau              refused: L-BFGS has no learning rate
    Dropout (rate > 0)                       refused: each evaluation draws new masks, a noisy
                                             objective on which the line search stops early
    RandomShift2D (max_shift > 0)            refused: new shifts each evaluation, likewise
    BatchNorm                                warned: its running statistics move once per loss
                                             evaluation (a few dozen per fit), so they may still
                                             carry their initial values; inference uses them
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import checks
from . import losses as losses_mod
from .callbacks import Callback
from .data import METRICS, R2, Accuracy
from .regularization import (
    clip_adaptive,
    clip_by_global_norm,
    clip_by_param_norm,
    clip_by_value,
    penalty,
)
from .schedules import ReduceLROnPlateau


def _walk(layers: Sequence[Any]):
    for layer in layers:
        yield layer
        yield from _walk(getattr(layer, "layers", ()))


def needs_pairs(model: Any) -> bool:
    """Whether a layer of ``model`` normalizes with batch statistics (BatchNorm)."""
    return any(getattr(layer, "batch_statistics", False) for layer in _walk(model.layers))


def make_metrics(loss: losses_mod.Loss, metrics: str | Sequence[str], names_only: bool = False):
    """Metric names for ``metrics`` ("auto" or a list), or fresh metric objects for them.

    "auto" is accuracy for a loss that classifies (``loss.decision``), r2 for the regression
    losses, nothing otherwise. Accuracy takes its rule from the loss; asking for it with a loss
    that does not classify is an error."""
    if isinstance(metrics, str):
        if metrics != "auto":
            raise ValueError(f"metrics must be 'auto' or a list of names, got {metrics!r}")
        regression = (losses_mod.MeanSquaredError, losses_mod.MeanAbsoluteError, losses_mod.Huber)
        if loss.decision is not None:
            names = ["accuracy"]
        elif isinstance(loss, regression):
            names = ["r2"]
        else:
            names = []
    else:
        names = list(metrics)
    for name in names:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; valid names: {', '.join(METRICS)}")
        if name == "accuracy" and loss.decision is None:
            raise ValueError(
                f"the accuracy metric needs a classification loss (one with a decision rule); "
                f"{type(loss).__name__} has none"
            )
        if name == "r2" and (
            loss.decision is not None or isinstance(loss, losses_mod.SequenceCrossEntropy)
        ):
            raise ValueError(
                f"the r2 metric needs a regression loss on (n, k) outputs; {type(loss).__name__} "
                "classifies (use accuracy)"
            )
    if names_only:
        return names
    rates = loss.link == "exp"  # Poisson: r2 of the rates exp(z), as score reports
    metrics = [
        Accuracy(loss.decision) if n == "accuracy" else R2(rates) if n == "r2" else METRICS[n]()
        for n in names
    ]
    for metric in metrics:
        metric.reset()
    return metrics


def check_options(trainer: Any, fitting: bool = False) -> None:
    """The checks that span several options, run at construction and again by ``fit`` (the
    estimators set ``callbacks`` and the penalties after construction): the penalty and clipping
    options are valid (numbers made floats); callbacks are Callbacks; a plateau does not share a run with another
    schedule; L-BFGS gets only what applies to it."""
    for name in ("l1", "l2"):
        setattr(trainer, name, checks.non_negative(name, getattr(trainer, name)))
    for name in ("clip_norm", "clip_value", "clip_param_norm"):
        setattr(trainer, name, checks.optional_positive(name, getattr(trainer, name)))
    trainer.clip_factor = checks.positive("clip_factor", trainer.clip_factor)
    trainer.clip_mode = checks.one_of("clip_mode", trainer.clip_mode, (None, "agc"))
    scales = ("constant", "per_sample")
    trainer.penalty_scale = checks.one_of("penalty_scale", trainer.penalty_scale, scales)
    methods = ("subgradient", "proximal")
    trainer.l1_method = checks.one_of("l1_method", trainer.l1_method, methods)
    for cb in trainer.callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be Callback instances, got {cb!r}")
    hooks = [trainer.schedule, *trainer.callbacks]
    plateaus = [cb for cb in hooks if isinstance(cb, ReduceLROnPlateau)]
    if plateaus and trainer.schedule is not None and trainer.schedule not in plateaus:
        raise ValueError(
            f"ReduceLROnPlateau cannot share a run with schedule={trainer.schedule!r}: the "
            "schedule sets the learning rate every epoch and would undo its reductions; "
            "use one of them"
        )
    if not trainer.has_learning_rate:
        check_lbfgs_options(trainer, plateaus, warn=fitting)
    check_checkpoint_last(trainer.callbacks)


def check_checkpoint_last(callbacks: Sequence[Any]) -> None:
    """Refuse a callback with state after a Checkpoint: the Checkpoint saves in its
    ``on_epoch_end``, before that callback has taken in the epoch, so every file would hold
    its state one epoch behind, and a resumed run would differ. Stateless callbacks (a
    ProgressBar, a CSVLogger) may follow it."""
    from .checkpoint import Checkpoint  # (it imports this module's importers)

    first = next((i for i, cb in enumerate(callbacks) if isinstance(cb, Checkpoint)), None)
    for cb in [] if first is None else callbacks[first + 1 :]:
        if not isinstance(cb, Checkpoint) and cb.state_dict():
            raise ValueError(
                f"{type(cb).__name__} comes after Checkpoint in callbacks: the checkpoint is "
                f"written before {type(cb).__name__} takes in each epoch, so it would hold that "
                "state one epoch behind and a resumed run would differ; put Checkpoint last"
            )


def evaluate_arrays(trainer: Any, X, y, w, batch_size: int, prefix: str) -> dict[str, float]:
    """``Trainer.evaluate`` on checked arrays: the loss plus the penalty, scaled by the
    evaluated data's total weight as the training loss is (``trainer.penalty_terms``), and the
    metrics, in chunks of ``batch_size`` rows in inference mode. Each chunk's loss counts with
    the weight the loss divides by (``loss.total_weight``: its rows or summed sample weights,
    a sequence loss's real steps), so the result does not depend on ``batch_size``. Weights
    that are all 0 are refused: every weighted mean would be 0/0."""
    if w is not None and not np.any(w > 0):
        raise ValueError(
            "sample_weight is all 0: the weighted loss and metrics over these rows are 0/0 "
            "(NaN); give some rows weight"
        )
    metrics = make_metrics(trainer.loss, trainer.metric_names)
    total = loss_weight = weight_total = 0.0
    for start in range(0, X.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        out = trainer.model.forward(X[sl])
        wb = None if w is None else w[sl]
        weight_total += out.shape[0] if wb is None else float(wb.sum())
        lw = trainer.loss.total_weight(y[sl], wb, out.shape[0])
        if lw > 0:
            total += trainer.loss.forward(out, y[sl], wb) * lw
            loss_weight += lw
        for metric in metrics:
            metric.update(out, y[sl], wb)
    loss = total / loss_weight if loss_weight else math.nan
    l1, l2 = trainer.penalty_terms(weight_total)
    loss += penalty(trainer.model.flat_parameters[: trainer.model.n_weights], l1, l2)
    result = {f"{prefix}loss": loss}
    result.update({f"{prefix}{m.name}": m.result() for m in metrics})
    return result


def check_lbfgs_options(trainer: Any, plateaus: Sequence[Any], warn: bool) -> None:
    """Refuse (or, with ``warn``, warn about) what cannot apply to L-BFGS; see the module
    docstring."""
    clips = [
        name
        for name in ("clip_norm", "clip_value", "clip_param_norm", "clip_mode")
        if getattr(trainer, name) is not None
    ]
    if clips:
        raise ValueError(
            f"{', '.join(clips)} cannot apply to L-BFGS: its line search needs the true gradient; "
            "use a first-order optimizer to clip gradients"
        )
    if trainer.schedule is not None or plateaus:
        raise ValueError("learning-rate schedules do not apply to L-BFGS: it has no learning rate")
    if trainer.l1_method == "proximal":
        raise ValueError("l1_method='proximal' needs a first-order optimizer, not L-BFGS")
    layers = list(_walk(trainer.model.layers))
    if any(getattr(layer, "drop_rate", 0) > 0 for layer in layers):
        raise ValueError(
            "L-BFGS cannot train a model with Dropout: every loss evaluation draws new masks, "
            "and on that noisy objective the line search stops early; remove the Dropout "
            "layers or use a first-order optimizer"
        )
    shifts = [layer for layer in layers if getattr(layer, "max_shift", 0) > 0]
    if shifts:
        raise ValueError(
            f"L-BFGS cannot train a model with {type(shifts[0]).__name__}(max_shift="
            f"{shifts[0].max_shift}): every loss evaluation draws new random shifts, and on "
            "that noisy objective the line search stops early; use max_shift=0 or a "
            "first-order optimizer"
        )
    if warn and needs_pairs(trainer.model):
        warnings.warn(
            "L-BFGS with BatchNorm: the running statistics move once per loss evaluation, "
            "not per epoch, and after a short fit may still be near their initial values "
            "(inference uses them); prefer LayerNorm or a first-order optimizer",
            RuntimeWarning,
            stacklevel=4,
        )


def clip_gradients(trainer: Any, grads: np.ndarray, norm: float) -> None:
    """The trainer's clipping, in place: by value, per parameter, by global norm (``norm`` is
    the pre-clip global norm, reused when nothing was clipped before), then adaptive (AGC)."""
    clipped = False
    if trainer.clip_value is not None:
        clip_by_value(grads, trainer.clip_value)
        clipped = True
    if trainer.clip_param_norm is not None:
        clip_by_param_norm(trainer.model.gradients().values(), trainer.clip_param_norm)
        clipped = True
    if trainer.clip_norm is not None:
        clip_by_global_norm(grads, trainer.clip_norm, None if clipped else norm)
    if trainer.clip_mode == "agc":
        m = trainer.model
        clip_adaptive(m.parameters().values(), m.gradients().values(), trainer.clip_factor)


def match_callback_states(callbacks: Sequence[Any], saved: Sequence[Any]) -> list[tuple]:
    """Pair saved callback states with ``callbacks``: the j-th callback of a type gets the j-th
    saved state of that type. A stateless callback may come or go between save and load; saved
    state that no callback takes is an error (it would be lost silently)."""
    by_type: dict[str, list[dict]] = {}
    for entry in saved:
        if not (isinstance(entry, dict) and isinstance(entry.get("type"), str)):
            raise ValueError(f"a saved callback state must be {{'type', 'state'}}, got {entry!r}")
        if not isinstance(entry.get("state"), dict):
            raise ValueError(f"the saved state of a {entry['type']} must be a dict")
        by_type.setdefault(entry["type"], []).append(entry["state"])
    pairs = []
    for cb in callbacks:
        queue = by_type.get(type(cb).__name__)
        if queue:
            pairs.append((cb, queue.pop(0)))
    left = [name for name, states in by_type.items() for state in states if state]
    if left:
        raise ValueError(
            f"the saved state holds callbacks this trainer lacks: {', '.join(left)}; build it "
            "with the same callbacks"
        )
    return pairs
