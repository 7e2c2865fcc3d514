"""Batch normalization and layer normalization, channels last.

Both compute ``y = gamma * xhat + beta`` with ``xhat = (x - mu) / sqrt(var + eps)``, where
``gamma`` and ``beta`` have the width ``d`` of the last axis; they differ in the axes the
statistics run over. For ``x`` of shape ``(n, ..., d)``:

* BatchNorm: ``mu, var`` per feature over every axis but the last (the batch, and for images the
  positions), shapes ``(d,)``; ``m`` values per statistic (``n`` for a 2-D batch, ``n*h*w`` for
  images). At inference the running estimates are used instead::

      running_mean <- momentum * running_mean + (1 - momentum) * mu
      running_var  <- momentum * running_var  + (1 - momentum) * var * m / (m - 1)   (unbiased)

* LayerNorm: ``mu, var`` per position over the last axis, shapes ``(n, ..., 1)``; ``m = d``;
  the same in training and inference.

Backward, with ``dxhat = g * gamma``, means taken along the statistics' axes::

    dgamma = sum g * xhat            dbeta = sum g       (over every axis but the last, (d,))
    dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import is_real
from .base import Layer, Shape, allocation_enabled, check_positive_int
from .registry import register_layer


class _Normalization(Layer):
    """Shared parameters and backward pass; subclasses choose the statistics axes."""

    init_transparent = True

    def __init__(self, n_features: int | None, eps: float, dtype: Any) -> None:
        super().__init__()
        if n_features is not None:
            self.in_features = self.out_features = check_positive_int("n_features", n_features)
        self._given = self.in_features
        if not is_real(eps) or not np.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._fixed_stats = False  # the last training forward used constants mu, var

    def _stand_alone(self, dtype: Any) -> None:
        if self.in_features is not None and allocation_enabled():
            self._allocate(dtype, np.random.default_rng(0))

    def build(self, in_shape: Shape) -> Shape:
        self._check_last_axis(in_shape)
        self.in_features = self.out_features = in_shape[-1]
        return in_shape

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        raise NotImplementedError

    def param_specs(self) -> dict[str, tuple[Shape, str]]:
        if self.in_features is None:
            return {}
        return {"gamma": ((self.in_features,), "other"), "beta": ((self.in_features,), "other")}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        self.params["gamma"].fill(1)
        self.params["beta"].fill(0)

    def _normalize(self, x: np.ndarray, mu: np.ndarray, var: np.ndarray, training: bool):
        inv_std = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        xhat = (x - mu) * inv_std
        if training:
            self._xhat, self._inv_std = xhat, inv_std
        y = xhat * self.params["gamma"]
        y += self.params["beta"]
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """With ``g = grad_out`` ``(n, d)``, ``xhat = (x - mu) / sqrt(var + eps)`` and
        ``dxhat = g * gamma``; means run over the statistics' axis (batch for BatchNorm, features
        for LayerNorm)::

            dgamma = sum_i g * xhat      dbeta = sum_i g                    (d,)
            dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)    (n, d)

        The two means are the paths through ``mu`` and ``var``.
        """
        if self._xhat is None:
            raise self._missing_cache()
        (xhat, self._xhat), (inv_std, self._inv_std) = (self._xhat, None), (self._inv_std, None)
        ax = self._axes(xhat)
        all_but_last = tuple(range(xhat.ndim - 1))
        if self.trainable:
            np.sum(grad_out * xhat, axis=all_but_last, out=self.grads["gamma"])
            np.sum(grad_out, axis=all_but_last, out=self.grads["beta"])
        else:
            self.zero_grads()
        dxhat = grad_out * self.params["gamma"]
        if self._fixed_stats:  # mu and var were constants: xhat is affine in x
            return dxhat * inv_std
        mean_dxhat = dxhat.mean(axis=ax, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=ax, keepdims=True)
        dx = dxhat - mean_dxhat
        dx -= xhat * mean_dxhat_xhat
        dx *= inv_std
        return dx

    def _check_ready(self, x: np.ndarray) -> None:
        self._check_input(x)
        if not self.params:
            raise self._unallocated()


@register_layer
class BatchNorm(_Normalization):
    """Batch normalization over every axis but the last, with running statistics for inference.

    Parameters
    ----------
    n_features : int | None, default None
        width ``d`` of the last axis; None (default) learns it when built.
    momentum : float, default 0.9
        weight of the old running value in the update (0.9 keeps 90% of it).
    eps : float, default 1e-05
        added to the variance before the square root.

    Notes
    -----
    Training with the running statistics instead of the batch's (they are used as constants,
    and not updated), in two cases:

    * the layer is frozen (``trainable = False``, on it or on a Residual holding it): for
      transfer learning the layer keeps the statistics it learned, as Keras does;
      ``gamma``/``beta`` stay fixed too;
    * the batch holds a single value per feature (one sample of a 2-D batch), whose variance
      is 0: the Trainer avoids such batches
      (a last batch of one row joins the previous batch), but a stochastic run, a one-row
      data set or a user's stream can still send one, and it never crashes.
    """

    batch_statistics = True  # the Trainer keeps its training batches at >= 2 rows when it can

    def __init__(
        self,
        n_features: int | None = None,
        momentum: float = 0.9,
        eps: float = 1e-5,
        dtype: Any = "float32",
    ) -> None:
        super().__init__(n_features, eps, dtype)
        if not is_real(momentum) or not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self._stand_alone(dtype)

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        return tuple(range(x.ndim - 1))

    def buffer_specs(self) -> dict[str, Shape]:
        if self.in_features is None:
            return {}
        return {"running_mean": (self.in_features,), "running_var": (self.in_features,)}

    def buffer_bounds(self) -> dict[str, tuple[float, bool]]:
        """A variance is never negative."""
        return {"running_var": (0.0, False)}

    def reset_buffers(self) -> None:
        self.buffers["running_mean"].fill(0)
        self.buffers["running_var"].fill(1)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_ready(x)
        if not training:
            return self._normalize(
                x, self.buffers["running_mean"], self.buffers["running_var"], False
            )
        axes = self._axes(x)
        m = x.size // x.shape[-1]  # values per statistic
        frozen = not self.trainable or getattr(self, "frozen_by_container", False)
        self._fixed_stats = m < 2 or frozen
        if self._fixed_stats:
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            return self._normalize(x, rm, rv, True)
        mu = x.mean(axis=axes)
        var = x.var(axis=axes)
        k = self.momentum
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= k
        rm += (1 - k) * mu
        rv *= k
        rv += (1 - k) * var * (m / (m - 1))
        return self._normalize(x, mu, var, True)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {} if self._given is None else {"n_features": self._given}
        return {**cfg, "momentum": self.momentum, "eps": self.eps}


@register_layer
class LayerNorm(_Normalization):
    """Layer normalization over the last axis of each sample (same in training and inference).

    Parameters
    ----------
    n_features : int | None, default None
        width ``d`` of the last axis; None (default) learns it when built.
    eps : float, default 1e-05
        added to the variance before the square root.

    """

    def __init__(
        self, n_features: int | None = None, eps: float = 1e-5, dtype: Any = "float32"
    ) -> None:
        super().__init__(n_features, eps, dtype)
        self._stand_alone(dtype)

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        return (x.ndim - 1,)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_ready(x)
        mu = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        return self._normalize(x, mu, var, training)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {} if self._given is None else {"n_features": self._given}
        return {**cfg, "eps": self.eps}
