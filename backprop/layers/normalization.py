"""Batch normalization and layer normalization.

Both compute ``y = gamma * xhat + beta`` with ``xhat = (x - mu) / sqrt(var + eps)``; they differ in
the axis the statistics run over. For a batch ``x`` of shape ``(n, d)``:

* BatchNorm: ``mu, var`` per feature over the batch (axis 0), shapes ``(d,)``. At inference the
  running estimates are used instead::

      running_mean <- momentum * running_mean + (1 - momentum) * mu
      running_var  <- momentum * running_var  + (1 - momentum) * var * n / (n - 1)   (unbiased)

* LayerNorm: ``mu, var`` per sample over the features (axis 1), shapes ``(n, 1)``; the same in
  training and inference.

Backward, with ``dxhat = g * gamma`` and ``m`` the number of values each statistic averages over
(``n`` for BatchNorm, ``d`` for LayerNorm), sums along that same axis::

    dgamma = sum_i g * xhat            dbeta = sum_i g          (over the batch, shapes (d,))
    dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Layer, check_positive_int


class _Normalization(Layer):
    """Shared parameters and backward pass; subclasses choose the statistics axis."""

    axis = 0

    def __init__(self, n_features: int, eps: float, dtype: Any) -> None:
        super().__init__()
        self.in_features = self.out_features = check_positive_int("n_features", n_features)
        if not np.isfinite(eps) or eps <= 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        self.eps = float(eps)
        self._xhat: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        self._fixed_stats = False  # the last training forward used constants mu, var

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
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
        if self._xhat is None:
            raise self._missing_cache()
        xhat, ax = self._xhat, self.axis
        if self.trainable:
            np.sum(grad_out * xhat, axis=0, out=self.grads["gamma"])
            np.sum(grad_out, axis=0, out=self.grads["beta"])
        else:
            self.zero_grads()
        dxhat = grad_out * self.params["gamma"]
        if self._fixed_stats:  # mu and var were constants: xhat is affine in x
            return dxhat * self._inv_std
        mean_dxhat = dxhat.mean(axis=ax, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=ax, keepdims=True)
        dx = dxhat - mean_dxhat
        dx -= xhat * mean_dxhat_xhat
        dx *= self._inv_std
        return dx


class BatchNorm(_Normalization):
    """Batch normalization over the batch axis, with running statistics for inference.

    Args:
        n_features: number of features ``d``.
        momentum: weight of the old running value in the update (0.9 keeps 90% of it).
        eps: added to the variance before the square root.

    Training with the running statistics instead of the batch's (they are used as constants,
    and not updated), in two cases:

    * the layer is frozen (``trainable = False``): for transfer learning the layer keeps the
      statistics it learned, as Keras does; ``gamma``/``beta`` stay fixed too;
    * the batch holds a single sample, whose variance is 0: the Trainer avoids such batches
      (a last batch of one row joins the previous batch), but a stochastic run, a one-row
      data set or a user's stream can still send one, and it never crashes.
    """

    axis = 0
    batch_statistics = True  # the Trainer keeps its training batches at >= 2 rows when it can

    def __init__(
        self, n_features: int, momentum: float = 0.9, eps: float = 1e-5, dtype: Any = "float32"
    ) -> None:
        super().__init__(n_features, eps, dtype)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        dt = np.dtype(dtype)
        self.buffers = {
            "running_mean": np.zeros(self.in_features, dtype=dt),
            "running_var": np.ones(self.in_features, dtype=dt),
        }
        self._allocate(dtype, np.random.default_rng(0))

    def reset_buffers(self) -> None:
        self.buffers["running_mean"].fill(0)
        self.buffers["running_var"].fill(1)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        if not training:
            return self._normalize(
                x, self.buffers["running_mean"], self.buffers["running_var"], False
            )
        n = x.shape[0]
        self._fixed_stats = n < 2 or not self.trainable
        if self._fixed_stats:
            rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
            return self._normalize(x, rm, rv, True)
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        m = self.momentum
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        rm *= m
        rm += (1 - m) * mu
        rv *= m
        rv += (1 - m) * var * (n / (n - 1))
        return self._normalize(x, mu, var, True)

    def config(self) -> dict[str, Any]:
        return {"n_features": self.in_features, "momentum": self.momentum, "eps": self.eps}


class LayerNorm(_Normalization):
    """Layer normalization over the features of each sample (same in training and inference)."""

    axis = 1

    def __init__(self, n_features: int, eps: float = 1e-5, dtype: Any = "float32") -> None:
        super().__init__(n_features, eps, dtype)
        self._allocate(dtype, np.random.default_rng(0))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        mu = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        return self._normalize(x, mu, var, training)

    def config(self) -> dict[str, Any]:
        return {"n_features": self.in_features, "eps": self.eps}
