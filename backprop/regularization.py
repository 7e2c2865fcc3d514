"""L1/L2 penalties and gradient clipping, as plain functions on flat arrays.

The trainer calls them between ``backward`` and the optimizer step. ``w`` is the weights-only
slice of a model's flat parameters (biases, gains and slopes are never penalized) and ``g`` the
matching slice of its flat gradients::

    penalty(w) = l1 * sum |w| + l2 / 2 * sum w^2
    g += l1 * sign(w) + l2 * w                 (subgradient L1, the default)
    w <- sign(w) * max(|w| - lr * l1, 0)       (proximal L1: after the step, exact zeros)

Clipping works on the flat gradient ``g`` of the whole model (or of one parameter):

* by value: ``g <- clip(g, -c, c)``;
* by global norm: ``g <- g * min(1, c / ||g||)``, ``||g||`` over every parameter at once;
* by parameter norm: the same, separately for each parameter's own gradient;
* adaptively, unit by unit (AGC, Brock et al. 2021): for each unit ``i`` of a parameter ``W``
  (one index of its last axis, e.g. the column of a Dense ``W`` feeding one output unit; each
  entry of a 1-D parameter)::

      G_i <- G_i * min(1, lambda * max(||W_i||, eps) / ||G_i||)

  so that no unit's update is larger than ``lambda`` times its weights (``eps`` keeps units with
  zero weights, such as zero-initialized biases, trainable).

The clipping functions return the norm *before* clipping, which the trainer records.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def penalty(w: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> float:
    """``l1 * sum|w| + l2/2 * sum w^2``: ``sum|w|`` accumulated in float64, ``sum w^2`` too
    (:func:`_sum_squares`), returned as a Python float."""
    value = 0.0
    if l1:
        value += l1 * float(np.abs(w).sum(dtype=np.float64))
    if l2:
        value += 0.5 * l2 * _sum_squares(w)
    return value


_BLOCK = 1024  # float32 entries summed by one BLAS dot product in _sum_squares


def _sum_squares(w: np.ndarray) -> float:
    """``sum w^2`` of a 1-D ``w``: one dot product for float64 weights; for float32 ones, the dot
    products of blocks of 1024 (BLAS, in float32) added in float64, so the relative error stays
    below about 1e-7 (that of one block; 1e-10 for a million weights) instead of growing with the
    size as one float32 dot product's does (9e-7 for a million weights, 3e-5 for ten million). It runs every batch with ``l2``: ``np.einsum(...,
    dtype=np.float64)``, as exact, took 10 times as long as ``np.dot``, 8% of an MNIST MLP step."""
    if w.dtype == np.float64:
        return float(np.dot(w, w))
    k = w.size - w.size % _BLOCK
    rows = w[:k].reshape(-1, 1, _BLOCK)
    tail = w[k:].astype(np.float64)
    return float((rows @ rows.transpose(0, 2, 1)).sum(dtype=np.float64)) + float(np.dot(tail, tail))


def add_penalty_gradient(w: np.ndarray, g: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> None:
    """``g += l1 * sign(w) + l2 * w`` in place."""
    if l2:
        g += g.dtype.type(l2) * w
    if l1:
        g += g.dtype.type(l1) * np.sign(w)


def soft_threshold(w: np.ndarray, threshold: float) -> None:
    """Proximal step of ``threshold * sum|w|`` in place: ``w <- sign(w) * max(|w| - t, 0)``.

    Applied after an optimizer step with ``t = lr * l1`` it is proximal gradient descent on the
    L1 penalty (ISTA): weights whose magnitude falls below ``t`` become exactly zero, which the
    subgradient ``l1 * sign(w)`` never achieves (it makes them oscillate around zero).
    """
    if threshold <= 0:
        return
    shrunk = np.abs(w)
    shrunk -= w.dtype.type(threshold)
    np.maximum(shrunk, 0, out=shrunk)
    np.copysign(shrunk, w, out=w)


def global_norm(g: np.ndarray) -> float:
    """Euclidean norm of a flat gradient (one dot product); inf when it overflows, which the
    trainer treats as divergence."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sqrt(np.dot(g, g)))


def clip_by_global_norm(g: np.ndarray, max_norm: float, norm: float | None = None) -> float:
    """Scale ``g`` in place so that ``||g|| <= max_norm``; returns the norm before clipping.
    ``norm`` is ``||g||`` when the caller has it already (it saves a pass over ``g``)."""
    norm = global_norm(g) if norm is None else norm
    if norm > max_norm:
        g *= g.dtype.type(max_norm / norm)
    return norm


def clip_by_value(g: np.ndarray, clip_value: float) -> None:
    """Clamp every entry of ``g`` to ``[-clip_value, clip_value]`` in place."""
    np.clip(g, -clip_value, clip_value, out=g)


def clip_by_param_norm(grads: Iterable[np.ndarray], max_norm: float) -> None:
    """Scale each parameter's gradient separately so that its own norm is ``<= max_norm``."""
    for g in grads:
        norm = float(np.sqrt(np.vdot(g, g)))
        if norm > max_norm:
            g *= g.dtype.type(max_norm / norm)


def _units(a: np.ndarray) -> np.ndarray:
    """``a`` as ``(entries_per_unit, n_units)``: units along the last axis; 1-D: one entry each."""
    return a.reshape(1, -1) if a.ndim <= 1 else a.reshape(-1, a.shape[-1])


def clip_adaptive(
    params: Iterable[np.ndarray], grads: Iterable[np.ndarray], factor: float, eps: float = 1e-3
) -> float:
    """Adaptive gradient clipping, unit-wise, in place (see the module docstring).

    Parameters
    ----------
    params, grads : iterables of ndarray
        Matching parameters and their gradients (the gradients are scaled in place).
    factor : float
        ``lambda``, the largest allowed ratio ``||G_i|| / max(||W_i||, eps)``.
    eps : float
        Floor of the weight norm.

    Returns
    -------
    float
        The largest ratio ``||G_i|| / max(||W_i||, eps)`` before clipping.
    """
    worst = 0.0
    for w, g in zip(params, grads, strict=True):
        gu = _units(g)  # a view: scaling it scales g
        w_norm = np.maximum(np.linalg.norm(_units(w), axis=0), eps)
        g_norm = np.linalg.norm(gu, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = g_norm / w_norm
        if ratio.size:
            worst = max(worst, float(np.max(ratio)))
        scale = np.where(ratio > factor, factor * w_norm / np.maximum(g_norm, 1e-38), 1.0)
        gu *= scale.astype(g.dtype)
    return worst
