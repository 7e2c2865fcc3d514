"""scikit-learn's MLP losses, with its exact value and gradient conventions.

Each loss takes the network's raw output ``z`` (the last Dense layer, before the output
activation) and applies the output activation ("link") itself, like the project's fused
cross-entropies. The reported value is the one scikit-learn reports, probabilities clipped to
``[eps, 1 - eps]`` included; the gradient is scikit-learn's ``delta = p - y`` (the canonical
link of each loss), averaged over the batch by :class:`backprop.losses.Loss`::

    loss                  link p(z)    l_i                                        dl_i/dz
    HalfSquaredError      z            1/2 mean_k (p_ik - y_ik)^2                 p_i - y_i
    HalfPoissonDeviance   exp(z)       sum_k y log(y/p) - y + p                   p_i - y_i
    LogLoss               softmax(z)   -sum_k y log p                             p_i - y_i
    BinaryLogLoss         sigmoid(z)   -sum_k y log p + (1 - y) log(1 - p)        p_i - y_i

Shapes: ``z`` and ``y`` are ``(n_samples, n_outputs)``. Note that scikit-learn's squared error
*reports* the mean over outputs but *descends* the sum over outputs: for ``n_outputs = k > 1``
the gradient is that of ``k`` times the value. We keep both conventions, so that
``loss_curve_`` and the weights both match scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from ..losses import Loss, _targets_like


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``exp(z - max) / sum exp(z - max)`` (a new array, dtype of ``z``)."""
    p = z - z.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p


LINKS = {
    "identity": lambda z: z.copy(),
    "exp": np.exp,
    "softmax": softmax,
    "logistic": special.expit,
}


class _SklearnLoss(Loss):
    """Shared part: subclasses name their link and implement ``_value(p, y) -> (n,)``."""

    out_activation = "identity"

    def link(self, z: np.ndarray) -> np.ndarray:
        """The prediction ``p(z)`` (probabilities, rates or values), shape of ``z``."""
        return LINKS[self.out_activation](z)

    def _forward(self, z: np.ndarray, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
        y = _targets_like(z, y_true)
        p = self.link(z)
        per_sample = self._value(p, y)
        p -= y  # delta = p - y
        return per_sample, p

    def _value(self, p: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class HalfSquaredError(_SklearnLoss):
    """``1/2 mean_k (z - y)^2`` per sample (identity link)."""

    def _value(self, p, y):
        r = p - y
        return 0.5 * np.einsum("ij,ij->i", r, r) / p.shape[1]


class HalfPoissonDeviance(_SklearnLoss):
    """Half the Poisson deviance ``sum_k y log(y / p) - y + p`` with ``p = exp(z)``."""

    out_activation = "exp"

    def _value(self, p, y):
        return np.sum(special.xlogy(y, y / p) - y + p, axis=1)


def _clipped(p: np.ndarray) -> np.ndarray:
    eps = np.finfo(p.dtype).eps
    return np.clip(p, eps, 1 - eps)


class LogLoss(_SklearnLoss):
    """Multi-class cross-entropy of ``softmax(z)`` against one-hot rows."""

    out_activation = "softmax"

    def _value(self, p, y):
        return -np.sum(special.xlogy(y, _clipped(p)), axis=1)


class BinaryLogLoss(_SklearnLoss):
    """Binary / multi-label cross-entropy of ``sigmoid(z)``, summed over the outputs."""

    out_activation = "logistic"

    def _value(self, p, y):
        q = _clipped(p)
        return -np.sum(special.xlogy(y, q) + special.xlogy(1 - y, 1 - q), axis=1)


def for_output(out_activation: str) -> _SklearnLoss:
    """The loss scikit-learn pairs with an output activation."""
    losses = {
        "identity": HalfSquaredError,
        "exp": HalfPoissonDeviance,
        "softmax": LogLoss,
        "logistic": BinaryLogLoss,
    }
    return losses[out_activation]()
