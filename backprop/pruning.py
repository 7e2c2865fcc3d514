"""Unstructured pruning: one boolean mask over every weight, and the schedules that set it.

Every parameter of kind ``"weight"`` lives in ``model.flat_parameters[:model.n_weights]``, so a
mask is one boolean vector ``model.weight_mask`` of shape ``(n_weights,)`` (``None``: nothing is
pruned). ``True`` keeps a weight, ``False`` prunes it. The invariant::

    w[~mask] == 0   and   every optimizer state array s[:n_weights][~mask] == 0

holds for the weights after :func:`set_mask` (for the state too when it is given the optimizer),
and for both after every training step. The trainer zeroes the pruned gradients before each
step (:func:`mask_gradients`), zeroes the pruned weights after it and, whenever the mask has
changed, the optimizer's state on them (:func:`after_step`), so neither momentum, moment
estimates, weight decay nor a user's optimizer can revive a pruned weight. It also calls
:func:`enforce` when ``fit`` begins (a mask set before) and ends (EarlyStopping may restore
weights from before a later pruning step). L-BFGS sees zero gradients on pruned weights.
Replace ``model.weight_mask`` (as :func:`set_mask` does) rather than editing it in place.

Masks (``scope="global"``: one threshold over all weights; ``"layer"``: the same fraction in each
weight parameter; weights already pruned stay pruned)::

    magnitude:  prune the k = round(s * n) weights of smallest |w|
    random:     prune k weights drawn uniformly (the control of the lottery-ticket paper)

Schedules:

* one shot: :func:`prune` once, then (optionally) fine-tune;
* iterative prune-then-retrain (Han et al. 2015) and lottery tickets (Frankle & Carbin 2019):
  :func:`iterative_pruning`, which prunes ``1 - (1 - s)^(r / rounds)`` after round ``r`` and
  either keeps training (Han) or rewinds the surviving weights to a snapshot (``rewind``);
* gradual polynomial sparsity (Zhu & Gupta 2017), the :class:`GradualPruning` callback::

      s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0))^power     for t_0 <= t <= t_1

* rewinding: :class:`WeightSnapshot` (defined in :mod:`backprop.rewinding`) records the weights
  at update ``k`` (0 = initialization); :func:`rewind` puts them back on the surviving weights;
  :func:`reinitialize` draws fresh random weights under the same mask (the lottery ticket's
  control).

Structured pruning (whole units, a smaller model) is in :mod:`backprop.structured`.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .callbacks import Callback
from .rewinding import WeightSnapshot

SCOPES = ("global", "layer")
METHODS = ("magnitude", "random")


# -- masks ---------------------------------------------------------------------------------------
def weight_slices(model: Any) -> dict[str, slice]:
    """Where each weight parameter (kind ``"weight"``) lives in ``flat_parameters[:n_weights]``."""
    return {k: s for k, s in model.param_slices().items() if s.stop <= model.n_weights}


def get_mask(model: Any) -> np.ndarray:
    """The model's mask, or all True when nothing is pruned (a new array either way)."""
    mask = model.weight_mask
    return np.ones(model.n_weights, bool) if mask is None else mask.copy()


def set_mask(model: Any, mask: np.ndarray | None, optimizer: Any = None) -> None:
    """Install ``mask`` (bool ``(n_weights,)``; None removes it) and zero what it prunes: the
    weights, and the optimizer's state on them when ``optimizer`` is given."""
    if mask is None:
        model.weight_mask = None
        return
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (model.n_weights,):
        raise ValueError(
            f"a weight mask must be a boolean array of shape ({model.n_weights},), "
            f"got {mask.dtype} {mask.shape}"
        )
    model.weight_mask = mask.copy()
    enforce(model, optimizer)


def _multiplier(model: Any) -> np.ndarray:
    """The mask as 0/1 in the model's dtype (multiplying is ~10x faster than ``copyto(where=)``),
    cached per model."""
    mask = model.weight_mask
    entry = _CACHE.get(model)
    if entry is not None and entry[0] is mask:
        return entry[1]
    factor = mask.astype(model.dtype)
    _CACHE[model] = (mask, factor)
    return factor


# model -> (the mask array it was made from, its 0/1 multiplier); see the module docstring.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# model -> (the mask, id of the optimizer) whose state enforce last zeroed under that mask
_CLEARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def enforce(model: Any, optimizer: Any = None) -> None:
    """Zero the pruned weights and, given an optimizer, its state on them (in place)."""
    if model.weight_mask is None:
        return
    factor = _multiplier(model)
    model.flat_parameters[: model.n_weights] *= factor
    if optimizer is None:  # (the state, if any, is cleared at the next after_step)
        return
    for arr in getattr(optimizer, "state", {}).values():
        if isinstance(arr, np.ndarray) and arr.shape == model.flat_parameters.shape:
            arr[: model.n_weights] *= factor.astype(arr.dtype, copy=False)
    _CLEARED[model] = (model.weight_mask, id(optimizer))


def after_step(model: Any, optimizer: Any) -> None:
    """The trainer's hook after each update: zero the pruned weights; the optimizer's state on
    them too unless it was zeroed under this mask already (it stays zero then, since the
    pruned gradients are zero: see :func:`mask_gradients`)."""
    mask = model.weight_mask
    if mask is None:
        return
    cleared = _CLEARED.get(model)
    if cleared is None or cleared[0] is not mask or cleared[1] != id(optimizer):
        enforce(model, optimizer)
    else:
        model.flat_parameters[: model.n_weights] *= _multiplier(model)


def mask_gradients(model: Any) -> None:
    """Zero the gradients of pruned weights in ``model.flat_gradients`` (in place)."""
    if model.weight_mask is not None:
        model.flat_gradients[: model.n_weights] *= _multiplier(model)


def sparsity(model: Any) -> dict[str, float]:
    """Fraction of weights that are exactly zero, per weight parameter (``"0.W"``...) and in
    ``"total"``. Pruned weights are always zero; L1 and plain training may add more zeros."""
    w = model.flat_parameters[: model.n_weights]
    out = {
        k: float(np.count_nonzero(w[s] == 0)) / (s.stop - s.start)
        for k, s in weight_slices(model).items()
    }
    out["total"] = float(np.count_nonzero(w == 0)) / max(w.size, 1)
    return out


def _check_sparsity(value: Any, name: str = "sparsity") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def _targets(model: Any, sparsity: float | dict[str, float], scope: str) -> dict[str, float]:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not model.built:  # it has no weights yet: pruning it would silently do nothing
        raise ValueError("the model is not built: give it input_shape= or fit it before pruning")
    names = list(weight_slices(model))
    if isinstance(sparsity, dict):
        if scope != "layer":
            raise ValueError("a per-parameter sparsity dict needs scope='layer'")
        unknown = sorted(set(sparsity) - set(names))
        if unknown:
            raise ValueError(f"unknown weight parameters {unknown}; weights are {names}")
        return {k: _check_sparsity(sparsity.get(k, 0.0), f"sparsity[{k!r}]") for k in names}
    return {k: _check_sparsity(sparsity) for k in names}


def _prune_lowest(score: np.ndarray, keep: np.ndarray, fraction: float) -> None:
    """Set ``keep`` False on the ``round(fraction * n)`` lowest scores (pruned entries count)."""
    k = int(round(fraction * score.size))
    if k <= 0:
        return
    score = np.where(keep, score, -np.inf)  # already pruned: lowest of all, stay pruned
    lowest = np.argpartition(score, k - 1)[:k]
    keep[lowest] = False


def compute_mask(
    model: Any,
    sparsity: float | dict[str, float],
    method: str = "magnitude",
    scope: str = "global",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A new mask pruning ``sparsity`` of the weights (of each parameter with ``scope="layer"``,
    or a dict ``{"0.W": 0.9, ...}``), on top of the current mask. Does not change the model.

    ``method="magnitude"`` prunes the smallest ``|w|``; ``"random"`` draws from ``rng``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "random" and not isinstance(rng, np.random.Generator):
        raise ValueError(f"random pruning needs rng=np.random.Generator, got {rng!r}")
    targets = _targets(model, sparsity, scope)
    w = model.flat_parameters[: model.n_weights]
    score = np.abs(w) if method == "magnitude" else rng.random(w.size)
    mask = get_mask(model)
    if scope == "global":
        _prune_lowest(score, mask, next(iter(targets.values()), 0.0))
        return mask
    for name, s in weight_slices(model).items():
        _prune_lowest(score[s], mask[s], targets[name])  # views: writes reach mask
    return mask


def prune(
    model: Any,
    sparsity: float | dict[str, float],
    method: str = "magnitude",
    scope: str = "global",
    rng: np.random.Generator | None = None,
    optimizer: Any = None,
) -> np.ndarray:
    """One-shot pruning: compute the mask (:func:`compute_mask`), install it and zero what it
    prunes (and the ``optimizer``'s state on it). Returns the mask.

    Example::

        bp.pruning.prune(model, 0.9)            # keep the 10% largest weights, globally
        model.sparsity()["total"]               # 0.9
    """
    mask = compute_mask(model, sparsity, method, scope, rng)
    set_mask(model, mask, optimizer)
    return mask


# -- gradual pruning (Zhu & Gupta 2017) ----------------------------------------------------------
def polynomial_sparsity(
    step: int, final: float, begin: int, end: int, initial: float = 0.0, power: float = 3.0
) -> float:
    """``s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^power``, clamped to [t0, t1]: ``s_f``
    from ``t1`` on (also when ``t0 = t1``), ``s_i`` before."""
    if step >= end >= begin:
        return final
    if step <= begin:
        return initial
    progress = 1.0 if end <= begin else min(1.0, (step - begin) / (end - begin))
    return final + (initial - final) * (1.0 - progress) ** power


class GradualPruning(Callback):
    """Raise the sparsity from ``initial`` to ``final`` along Zhu & Gupta's cubic curve.

    Args:
        final: target sparsity ``s_f`` in [0, 1).
        begin_step, end_step: update counts ``t0`` and ``t1`` (``trainer.step_count``) between
            which pruning happens; after ``end_step`` the mask stays at ``final``.
        frequency: prune every ``frequency`` updates (``Δt``), and at ``end_step``; a fit that
            starts at or after ``end_step`` prunes to ``final`` as it begins.
        initial: sparsity ``s_i`` at ``begin_step``.
        power: exponent of the curve (3 in the paper).
        scope: "global" or "layer" (see :func:`compute_mask`).
    """

    def __init__(
        self,
        final: float,
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        initial: float = 0.0,
        power: float = 3.0,
        scope: str = "global",
    ) -> None:
        self.final = _check_sparsity(final, "final")
        self.initial = _check_sparsity(initial, "initial")
        for name, v in (("begin_step", begin_step), ("end_step", end_step)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if end_step < begin_step:
            raise ValueError(f"end_step ({end_step}) must be >= begin_step ({begin_step})")
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"frequency must be a positive integer, got {frequency!r}")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
        self.power, self.scope = float(power), scope

    def target(self, step: int) -> float:
        """The scheduled sparsity after ``step`` updates."""
        return polynomial_sparsity(
            step, self.final, self.begin_step, self.end_step, self.initial, self.power
        )

    def on_train_begin(self, trainer):
        # A fit that begins at or past end_step (end_step=0, or a trainer that already took
        # more updates) would see no step of the schedule: its sparsity is `final` now.
        if trainer.step >= self.end_step:
            prune(trainer.model, self.final, scope=self.scope)

    def on_batch_end(self, trainer, batch, logs):
        t = trainer.step
        due = (t - self.begin_step) % self.frequency == 0 or t == self.end_step
        if self.begin_step <= t <= self.end_step and due:
            # The trainer zeroes the optimizer state of pruned weights after every step
            # (after_step), so the callback needs only the model (callbacks see no optimizer).
            prune(trainer.model, self.target(t), scope=self.scope)

    def on_epoch_end(self, trainer, epoch, logs):
        logs["sparsity"] = sparsity(trainer.model)["total"]


# -- rewinding and lottery tickets (Frankle & Carbin 2019) ---------------------------------------
def rewind(model: Any, params: np.ndarray, optimizer: Any = None) -> None:
    """Set every parameter to ``params`` (a snapshot of ``flat_parameters``), keep the mask
    (pruned weights stay zero) and reset the optimizer's state and step count."""
    if params is None:  # (a WeightSnapshot holds None until its step is reached)
        raise ValueError("no snapshot (None): the WeightSnapshot's step was never reached")
    params = np.asarray(params)
    if params.shape != model.flat_parameters.shape:
        raise ValueError(
            f"snapshot has shape {params.shape}, the model's parameters {model.flat_parameters.shape}"
        )
    model.flat_parameters[...] = params
    if optimizer is not None and hasattr(optimizer, "reset"):
        optimizer.reset()
    enforce(model, optimizer)


def reinitialize(model: Any, rng: np.random.Generator, optimizer: Any = None) -> None:
    """Fresh random initial weights under the same mask (the random-reinit control)."""
    model.reset_parameters(rng)
    if optimizer is not None and hasattr(optimizer, "reset"):
        optimizer.reset()
    enforce(model, optimizer)


def round_sparsities(final: float, rounds: int) -> list[float]:
    """Sparsity after each round when each round prunes the same fraction of what remains:
    ``1 - (1 - final)^(r / rounds)``, r = 1..rounds."""
    final = _check_sparsity(final, "final")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    return [1.0 - (1.0 - final) ** (r / rounds) for r in range(1, rounds + 1)]


def iterative_pruning(
    trainer: Any,
    X: Any,
    y: Any,
    final: float,
    rounds: int,
    epochs: int,
    rewind_to: np.ndarray | None = None,
    scope: str = "global",
    evaluate: tuple[Any, Any] | None = None,
    **fit_kwargs: Any,
) -> list[dict[str, float]]:
    """Prune-then-retrain ``rounds`` times up to sparsity ``final``; returns one record per round
    (``sparsity``, and the ``evaluate=(X_test, y_test)`` metrics after retraining).

    The model should be trained already. Each round prunes by magnitude to
    :func:`round_sparsities`, then retrains ``epochs`` epochs. With ``rewind_to`` (a
    :class:`WeightSnapshot`'s ``params``) the surviving weights are first reset to it and the
    optimizer state cleared: the lottery-ticket procedure. Without it the weights keep their
    trained values: Han et al.'s retraining.
    """
    records = []
    for target in round_sparsities(final, rounds):
        prune(trainer.model, target, scope=scope, optimizer=trainer.optimizer)
        if rewind_to is not None:
            rewind(trainer.model, rewind_to, trainer.optimizer)
        trainer.fit(X, y, epochs=epochs, **fit_kwargs)
        record = {"target": target, "sparsity": sparsity(trainer.model)["total"]}
        if evaluate is not None:
            record.update(trainer.evaluate(*evaluate))
        records.append(record)
    return records


def kept_fraction(model: Any) -> float:
    """Fraction of weights the mask keeps (1.0 when nothing is pruned)."""
    mask = model.weight_mask
    return 1.0 if mask is None else float(np.count_nonzero(mask)) / max(mask.size, 1)


__all__ = [
    "GradualPruning",
    "WeightSnapshot",
    "compute_mask",
    "enforce",
    "get_mask",
    "iterative_pruning",
    "kept_fraction",
    "mask_gradients",
    "polynomial_sparsity",
    "prune",
    "reinitialize",
    "rewind",
    "round_sparsities",
    "set_mask",
    "sparsity",
    "weight_slices",
]
