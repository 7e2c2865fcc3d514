"""Dense (fully connected) layer.

Forward, for a batch ``x`` of shape ``(n, in_features)``::

    y = x @ W + b            W: (in_features, out_features), b: (out_features,), y: (n, out_features)

Backward, given ``g = dL/dy`` of shape ``(n, out_features)``::

    dW = x.T @ g             (in_features, out_features)
    db = sum_i g[i]          (out_features,)
    dx = g @ W.T             (n, in_features)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from .base import Layer, check_positive_int


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Args:
        in_features: number of input features.
        out_features: number of output units.
        init: weight initializer name (see :mod:`backprop.initializers`) or callable. ``"auto"``
            picks He for the ReLU family and Glorot otherwise, from the activation that follows
            the layer inside a ``Sequential`` (Glorot uniform when the layer stands alone).
        bias_init: bias initializer name or callable (zeros by default).
        dtype: dtype of a stand-alone layer's arrays ("float32" or "float64"); a ``Sequential``
            replaces it with its own.
        seed: seed or generator for a stand-alone layer's initial weights; a ``Sequential``
            re-initializes every layer from its own seed.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        init: str | Any = "auto",
        bias_init: str | Any = "zeros",
        dtype: Any = "float32",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        if init != "auto":
            initializers.get(init)
        initializers.get(bias_init)
        self.init = init
        self.bias_init = bias_init
        self.auto_init = "glorot_uniform"  # set by Sequential from the following activation
        self._x: np.ndarray | None = None
        self._allocate(dtype, np.random.default_rng(seed))

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {
            "W": ((self.in_features, self.out_features), "weight"),
            "b": ((self.out_features,), "other"),
        }

    def reset_parameters(self, rng: np.random.Generator) -> None:
        W, b = self.params["W"], self.params["b"]
        init = initializers.get(self.auto_init if self.init == "auto" else self.init)
        W[...] = init(W.shape, rng, W.dtype)
        b[...] = initializers.get(self.bias_init)(b.shape, rng, b.dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        y = x @ self.params["W"]
        y += self.params["b"]
        if training:
            self._x = x
        return y

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        if self._x is None:
            raise self._missing_cache()
        if self.trainable:
            np.matmul(self._x.T, grad_out, out=self.grads["W"])
            np.add.reduce(grad_out, axis=0, out=self.grads["b"])  # np.sum without its wrapper
        else:
            self.zero_grads()

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Gradients of ``y = x @ W + b`` from ``g = grad_out`` ``(n, out_features)``::

            dW = x.T @ g          (in_features, out_features)   written into grads["W"]
            db = sum_i g[i]       (out_features,)               written into grads["b"]
            dx = g @ W.T          (n, in_features)              returned

        ``x`` is the input cached by ``forward(x, training=True)``.
        """
        self.backward_params_only(grad_out)
        return grad_out @ self.params["W"].T

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features}
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if isinstance(self.bias_init, str):
            cfg["bias_init"] = self.bias_init
        return cfg
