"""Learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks").

A copy of the model is trained for at most ``steps`` mini-batch updates while the learning rate
grows geometrically from ``start`` to ``end``::

    lr_k = start * (end / start) ** (k / (steps - 1))          k = 0, ..., steps - 1

The raw batch losses are noisy, so they are smoothed by a bias-corrected exponential moving
average (the same correction Adam applies to its moments)::

    a_k = beta * a_{k-1} + (1 - beta) * L_k,   a_{-1} = 0
    s_k = a_k / (1 - beta ** (k + 1))

The test stops early when ``s_k - m_k > (diverge - 1) |m_k|``, ``m_k = min_{j<=k} s_j`` (for a
positive loss: ``s_k > diverge * m_k``; a Poisson loss, which drops ``log t!``, goes below 0),
or when a loss is not finite: past that point the rate is too large to train at all.

The suggested rate is the rate of the smoothed minimum divided by ten, ``lr[argmin s] / 10``: a
rate still well inside the stable range. The rate at which the smoothed loss falls fastest per
unit of log-rate before its minimum (``argmin_k ds/dlog(lr)``, the other common rule) is returned
too as ``lr_steepest``; on short tests it lies late, because the moving average lags the rate.
On digits (64-64-10 ReLU, batch 32, 15 epochs, ``tests/test_tools.py``), the minimum / 10 rule
trained Adam, SGD and SGD with momentum 0.9 to within a point of a hand-tuned rate, while the
steepest-descent rate was too large for SGD with momentum (0.30 test accuracy).

``beta = 0.9`` by default (fastai uses 0.98 over longer tests): with 100 steps, an average over
the last ~50 steps lags the rate by a factor of ten or more.

Nothing passed in changes: the model, the optimizer (and its state) and the trainer's random
streams are copied first, and the copies are what trains.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import checks
from .data import check_sample_weight, check_targets, check_X, gather


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured.

    Attributes
    ----------
    lrs : ndarray (k,)
        The learning rates tried, in order (``k <= steps``: the test may stop early).
    losses : ndarray (k,)
        The raw batch loss at each rate (with the L1/L2 penalty, as the Trainer reports it).
    smoothed : ndarray (k,)
        The bias-corrected moving average of ``losses``.
    suggestion : float
        The rate at the minimum of ``smoothed``, divided by ten.
    lr_steepest : float
        The rate at the steepest descent of ``smoothed`` before its minimum.
    diverged : bool
        True when the test stopped because the loss exploded (rather than running out of steps).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    lr_steepest: float
    diverged: bool


def _check_range(start: float, end: float, steps: int, beta: float, diverge: float) -> None:
    for name, value in (("start", start), ("end", end), ("diverge", diverge)):
        if not (checks.is_real(value) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not end > start:
        raise ValueError(f"end must be larger than start, got start={start!r}, end={end!r}")
    checks.integer("steps", steps, 5)
    checks.real("beta", beta, 0.0, 1.0, "left")
    if not diverge > 1.0:
        raise ValueError(f"diverge must be larger than 1, got {diverge!r}")


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """``(rate of the minimum / 10, steepest-descent rate)`` from a smoothed range-test curve:
    ``lrs`` (k,) positive rates and ``smoothed`` (k,) finite losses, ``k >= 1``."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    if lrs.ndim != 1 or smoothed.ndim != 1:
        raise ValueError(f"lrs and smoothed must be 1-D, got shapes {lrs.shape}, {smoothed.shape}")
    if lrs.size != smoothed.size or lrs.size == 0:
        raise ValueError(
            f"lrs and smoothed must have one length, at least one point; got {lrs.size} and "
            f"{smoothed.size}"
        )
    if not np.all(np.isfinite(lrs) & (lrs > 0)):
        raise ValueError(f"lrs must be positive and finite, got {lrs!r}")
    if not np.all(np.isfinite(smoothed)):
        raise ValueError(f"smoothed must be finite, got {smoothed!r}")
    i_min = int(np.argmin(smoothed))
    lr_min_over_10 = float(lrs[i_min] / 10.0)
    if i_min < 2:
        return lr_min_over_10, lr_min_over_10
    slope = np.gradient(smoothed[: i_min + 1], np.log(lrs[: i_min + 1]))
    return lr_min_over_10, float(lrs[int(np.argmin(slope[:i_min]))])


def lr_find(
    trainer: Any,
    X: Any,
    y: Any,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    sample_weight: Any = None,
    beta: float = 0.9,
    diverge: float = 4.0,
    seed: int | np.random.Generator | None = 0,
) -> LRFinderResult:
    """Run the learning-rate range test on a copy of ``trainer``'s model and optimizer.

    Parameters
    ----------
    trainer : Trainer
        Supplies the model, loss, optimizer (with its state), batch size (its mode resolved as in
        training) and its update (:meth:`Trainer.train_step`: L1/L2 penalties as it scales
        them, clipping, frozen layers, pruning masks). None of it is modified.
    X, y : array-like
        Training data, ``(n_samples, *in_shape)`` and labels or targets.
    start, end : float
        The first and last learning rate (``0 < start < end``).
    steps : int
        At most this many updates, one per rate (>= 5).
    sample_weight : array-like (n_samples,), optional
        Per-sample weights, as in :meth:`Trainer.fit`; a batch of zero total weight is skipped
        (no step), as ``fit`` skips it.
    beta : float
        Smoothing of the moving average, in ``[0, 1)``.
    diverge : float
        Stop once the smoothed loss exceeds its minimum so far by ``(diverge - 1)`` times the
        minimum's magnitude (``diverge`` times the minimum, for a positive loss).
    seed : int, Generator or None
        The batch order (the trainer's own streams are left untouched).

    Returns
    -------
    LRFinderResult
        The curve and the suggested rates.
    """
    _check_range(start, end, steps, beta, diverge)
    rng = checks.generator("seed", seed)
    if y is None:  # (fit's stream of batches has no rows to draw batches of the test's size from)
        raise ValueError(
            "lr_find needs the arrays X and y (a stream of batches is not supported: draw "
            "arrays from it), got y=None"
        )
    X = check_X(X)
    y = check_targets(y, X.shape[0])
    w = check_sample_weight(sample_weight, X.shape[0])
    model = trainer.model.copy()
    optimizer = copy.deepcopy(trainer.optimizer)
    loss_fn = copy.deepcopy(trainer.loss)
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "lr"):
        raise ValueError(
            f"lr_find needs a first-order optimizer with a learning rate, got "
            f"{type(optimizer).__name__} (L-BFGS chooses its own step by line search)"
        )
    n = X.shape[0]
    batch_size = trainer.resolve_batch_size(n)
    # The trainer's own update on the copies (penalties as it scales them, frozen layers,
    # pruning masks, every clipping option, proximal L1): a shallow copy whose model,
    # optimizer and loss are the copies; the trainer itself is never touched.
    runner = copy.copy(trainer)
    runner.model, runner.optimizer, runner.loss = model, optimizer, loss_fn
    runner._trainable = None  # trainable slices recomputed for the copied model
    lrs = start * (end / start) ** (np.arange(steps) / (steps - 1))
    if loss_fn.total_weight(y, w, n) <= 0:  # every batch would be skipped: no step at all
        raise ValueError(
            "the data have zero total weight (zero sample weights, or all labels "
            "ignore_index): the range test has nothing to train on"
        )
    order = rng.permutation(n)
    pos = 0
    losses, smoothed = [], []
    avg, best, diverged = 0.0, math.inf, False
    for k, lr in enumerate(lrs):
        while True:  # a batch of zero weight is skipped, as fit skips it (no step)
            if pos + batch_size > n:  # a new pass over the data, in a new order
                order, pos = rng.permutation(n), 0
            idx = np.sort(order[pos : pos + batch_size])
            pos += batch_size
            yb, wb = y[idx], None if w is None else w[idx]
            if loss_fn.total_weight(yb, wb, len(idx)) > 0:
                break
        Xb = gather(X, idx)
        optimizer.lr = float(lr)
        try:
            loss, _, _ = runner.train_step(Xb, yb, wb)
        except FloatingPointError:  # TrainingDivergedError: a non-finite loss or gradient
            diverged = True
            break
        losses.append(float(loss))
        avg = beta * avg + (1.0 - beta) * loss
        s = avg / (1.0 - beta ** (k + 1))
        smoothed.append(float(s))
        best = min(best, s)
        if k > 0 and s - best > (diverge - 1.0) * abs(best):  # s > diverge * best when best > 0
            diverged = True
            break
    if len(smoothed) < 3:
        raise ValueError(
            f"the loss diverged after {len(smoothed)} steps, at lr={lrs[len(smoothed)]:.3g}: "
            "start the range lower"
        )
    tried = lrs[: len(smoothed)]
    suggestion, lr_steepest = suggest(tried, np.asarray(smoothed))
    return LRFinderResult(
        lrs=tried,
        losses=np.asarray(losses),
        smoothed=np.asarray(smoothed),
        suggestion=suggestion,
        lr_steepest=lr_steepest,
        diverged=diverged,
    )


__all__ = ["LRFinderResult", "lr_find", "suggest"]
