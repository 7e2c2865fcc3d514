"""Losses.

Protocol: ``loss.forward(y_pred, y_true, sample_weight=None) -> float`` and then
``loss.backward() -> dL/dy_pred`` (same shape and dtype as ``y_pred``). ``y_pred`` is
``(n_samples, n_outputs)``.

Scaling convention, the same for every loss: each loss computes one value ``l_i`` per sample and
reports their (weighted) mean ::

    L = sum_i w_i l_i / sum_i w_i          (w_i = 1 without sample_weight, so L = mean_i l_i)

and ``l_i`` averages over the outputs of a sample where a loss is elementwise (MSE, MAE, Huber,
BinaryCrossEntropy), with no factor 1/2::

    ==========================  ===============================================================
    loss                        l_i
    ==========================  ===============================================================
    MeanSquaredError            mean_k (y_ik - t_ik)^2
    MeanAbsoluteError           mean_k |y_ik - t_ik|
    Huber(delta)                mean_k h(r_ik),  h(r) = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2)
    SoftmaxCrossEntropy         -sum_k t_ik log softmax(z_i)_k = logsumexp_k z_ik - sum_k t_ik z_ik
                                (targets t: labels, or rows of probabilities summing to 1)
    BinaryCrossEntropy          mean_k  max(z,0) - z t + log1p(exp(-|z|))   (from logits z)
    Poisson                     mean_k  exp(z) - t z                         (from log-rates z)
    ==========================  ===============================================================

The cross-entropies take logits, not probabilities, and are computed so that huge logits never
overflow. Their gradients are the fused ``(softmax(z) - t)`` and ``(sigmoid(z) - t)`` (scaled by
``w_i / sum w`` and, for BCE, ``1 / n_outputs``).

Where they live: the base class and the input checks in :mod:`backprop.loss_base`; the
cross-entropies in :mod:`backprop.cross_entropy`; the regression losses (MSE, MAE, Huber,
Poisson), the registry and :func:`get` here. Every name is importable from this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import checks
from .cross_entropy import BinaryCrossEntropy, SequenceCrossEntropy, SoftmaxCrossEntropy
from .loss_base import (  # noqa: F401  (re-exported: the checks were this module's first)
    Loss,
    _check_pred,
    _check_weights,
    _targets_like,
)


class MeanSquaredError(Loss):
    """``l_i = mean_k (y_ik - t_ik)^2``; ``dl_i/dy = 2 (y - t) / k``."""

    gradient = "2 (y_pred - t) / k        (k outputs per sample)"

    def _forward(self, y_pred, y_true):
        r = y_pred - _targets_like(y_pred, y_true)
        k = y_pred.shape[1]
        per_sample = np.einsum("ij,ij->i", r, r) / k
        r *= y_pred.dtype.type(2.0 / k)
        return per_sample, r


class MeanAbsoluteError(Loss):
    """``l_i = mean_k |y_ik - t_ik|``; ``dl_i/dy = sign(y - t) / k`` (0 at a tie)."""

    gradient = "sign(y_pred - t) / k"

    def _forward(self, y_pred, y_true):
        r = y_pred - _targets_like(y_pred, y_true)
        k = y_pred.shape[1]
        per_sample = np.abs(r).mean(axis=1)
        dl = np.sign(r)
        dl *= y_pred.dtype.type(1.0 / k)
        return per_sample, dl


class Huber(Loss):
    """Quadratic within ``delta`` of the target, linear beyond: robust regression.

    Parameters
    ----------
    delta : float, default 1.0
        Residual size where the loss turns from quadratic to linear.
    """

    gradient = "clip(y_pred - t, -delta, delta) / k"

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = checks.positive("delta", delta)

    def _forward(self, y_pred, y_true):
        r = y_pred - _targets_like(y_pred, y_true)
        k, d = y_pred.shape[1], self.delta
        a = np.abs(r)
        small = a <= d
        per_elem = np.where(small, 0.5 * r * r, d * (a - 0.5 * d))
        dl = np.where(small, r, d * np.sign(r)).astype(y_pred.dtype, copy=False)
        dl *= y_pred.dtype.type(1.0 / k)
        return per_elem.mean(axis=1), dl

    def config(self) -> dict[str, Any]:
        return {"delta": self.delta}


class Poisson(Loss):
    """Poisson negative log-likelihood of counts ``t >= 0`` given log-rates ``z`` ``(n, k)``
    (the rate is ``exp(z)``; the constant ``log t!`` is dropped).

    ``l_i = mean_k exp(z) - t z``; ``dl_i/dz = (exp(z) - t) / k``. Its minimum over ``z`` is at
    ``exp(z) = t``. (scikit-learn's ``loss="poisson"`` reports the half deviance instead, which
    differs by a term in ``t`` only; see :mod:`backprop.estimators.losses`.)
    """

    link = "exp"  # the outputs are log-rates: the predicted value is exp(z)

    gradient = "(exp(z) - t) / k"

    def _forward(self, z, y_true):
        t = _targets_like(z, y_true)
        if t.size and t.min() < 0:
            raise ValueError("Poisson targets must be counts >= 0")
        k = z.shape[1]
        rate = np.exp(z)
        per_sample = (rate - t * z).mean(axis=1)
        rate -= t
        rate *= z.dtype.type(1.0 / k)
        return per_sample, rate


REGISTRY: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "sequence_cross_entropy": SequenceCrossEntropy,
    "poisson": Poisson,
}


def get(identifier: str | Loss, **kwargs: Any) -> Loss:
    """A loss instance from a name (``"mse"``, ``"cross_entropy"``, ...) or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        name = identifier.__name__
        raise TypeError(
            f"loss must be a Loss instance or a name, got the class {name}; use {name}()"
        )
    if not isinstance(identifier, str) or identifier not in REGISTRY:
        raise ValueError(f"unknown loss {identifier!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[identifier](**kwargs)
