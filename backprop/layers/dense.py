"""Dense (fully connected) layer, acting on the last axis.

Forward, for ``x`` of shape ``(n, ..., in_features)`` (any number of middle axes, as
``torch.nn.Linear`` and Keras' Dense)::

    y = x @ W + b            W: (in_features, out_features), b: (out_features,),
                             y: (n, ..., out_features)

Backward, given ``g = dL/dy``, with ``X`` and ``G`` the inputs and gradients flattened to rows
``(m, in_features)`` and ``(m, out_features)`` (``m = n`` for a 2-D batch)::

    dW = X.T @ G             (in_features, out_features)
    db = sum_rows G          (out_features,)
    dx = g @ W.T             (n, ..., in_features)

A scipy.sparse ``x`` (CSR) is taken as it is: ``x @ W`` and ``X.T @ G`` are sparse-dense
products and ``backward`` returns None, as no layer sits upstream (see :mod:`backprop.sparse`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks, initializers
from .. import sparse as sparse_mod
from .base import Layer, Shape, allocation_enabled, check_positive_int
from .registry import register_layer


@register_layer
class Dense(Layer):
    """Fully connected layer ``y = x @ W + b`` on the last axis.

    ``Dense(out_features)`` learns ``in_features`` from its input when built;
    ``Dense(in_features, out_features)`` fixes it (and then owns initialized arrays right away,
    so it can be used on its own).

    Parameters
    ----------
    *sizes : int
        ``(out_features,)`` or ``(in_features, out_features)``.
    in_features, out_features : int | None, default None
        the same sizes as keywords.
    init : str | Any, default 'auto'
        weight initializer name (see :mod:`backprop.initializers`) or callable. ``"auto"``
        picks ``he_uniform`` for the ReLU family and ``glorot_uniform`` otherwise (the list is in
        :mod:`backprop.initializers`), from the activation that follows the layer inside a
        ``Sequential`` (Glorot uniform when the layer stands alone).
    bias_init : str | Any, default 'zeros'
        bias initializer name or callable (zeros by default).
    dtype : Any, default 'float32'
        dtype of a stand-alone layer's arrays ("float32" or "float64"); a ``Sequential``
        replaces it with its own.
    seed : int | np.random.Generator | None, default None
        seed or generator for a stand-alone layer's initial weights; a ``Sequential``
        re-initializes every layer from its own seed.

    """

    accepts_sparse = True  # a scipy.sparse batch may come in as the model's input
    output_size_argument = "out_features"

    def __init__(
        self,
        *sizes: int,
        in_features: int | None = None,
        out_features: int | None = None,
        init: str | Any = "auto",
        bias_init: str | Any = "zeros",
        dtype: Any = "float32",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(sizes) > 2:
            raise TypeError(
                f"Dense takes (out_features) or (in_features, out_features), got {len(sizes)} "
                "sizes; pass init, bias_init, dtype and seed by keyword"
            )
        if len(sizes) == 2 or (len(sizes) == 1 and out_features is not None):
            names: tuple[str, ...] = ("in_features", "out_features")  # Dense(64, out_features=10)
        else:
            names = ("out_features",)  # Dense(10)
        given = dict(zip(names, sizes, strict=False))
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value is not None:
                if name in given:
                    raise TypeError(f"Dense got {name} twice")
                given[name] = value
        if "out_features" not in given:
            raise TypeError("Dense needs out_features, e.g. Dense(10) or Dense(64, 10)")
        self.out_features = check_positive_int("out_features", given["out_features"])
        self._given_in = given.get("in_features")
        if self._given_in is not None:
            self._given_in = self.in_features = check_positive_int("in_features", self._given_in)
        if init != "auto":
            initializers.get(init)
        initializers.get(bias_init)
        self.init = init
        self.bias_init = bias_init
        self.auto_init = "glorot_uniform"  # set by Sequential from the following activation
        self._x: np.ndarray | None = None
        if self.in_features is not None and allocation_enabled():
            self._allocate(dtype, checks.generator("seed", seed))

    def build(self, in_shape: Shape) -> Shape:
        self._check_last_axis(in_shape)
        self.in_features = in_shape[-1]
        return (*in_shape[:-1], self.out_features)

    def param_specs(self) -> dict[str, tuple[Shape, str]]:
        if self.in_features is None:
            return {}
        return {
            "W": ((self.in_features, self.out_features), "weight"),
            "b": ((self.out_features,), "other"),
        }

    def reset_parameters(self, rng: np.random.Generator) -> None:
        W, b = self.params["W"], self.params["b"]
        init = self.auto_init if self.init == "auto" else self.init
        W[...] = initializers.draw(init, W.shape, rng, W.dtype, "init of Dense")
        b[...] = initializers.draw(self.bias_init, b.shape, rng, b.dtype, "bias_init of Dense")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        if not self.params:
            raise self._unallocated()
        if sparse_mod.is_sparse(x):
            y = sparse_mod.matmul(x, self.params["W"])
        else:
            y = x @ self.params["W"]
        y += self.params["b"]
        if training:
            self._x = x
        return y

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        if self._x is None:
            raise self._missing_cache()
        x, self._x = self._x, None  # released: a trained layer keeps no batch
        if not self.trainable:
            self.zero_grads()
            return
        g = grad_out
        if x.ndim != 2:  # rows of the last axis: every middle position is a sample of the map
            x, g = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
        if sparse_mod.is_sparse(x):
            sparse_mod.transpose_matmul(x, g, self.grads["W"])
        else:
            np.matmul(x.T, g, out=self.grads["W"])
        np.add.reduce(g, axis=0, out=self.grads["b"])  # np.sum without its wrapper

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        """Gradients of ``y = x @ W + b`` from ``g = grad_out`` ``(n, out_features)``::

            dW = x.T @ g          (in_features, out_features)   written into grads["W"]
            db = sum_i g[i]       (out_features,)               written into grads["b"]
            dx = g @ W.T          (n, in_features)              returned

        ``x`` is the input cached by ``forward(x, training=True)``, released here (a second
        backward needs a new forward). A sparse ``x`` (CSR) gets ``dW`` and ``db`` but no
        ``dx`` (None): nothing upstream of a first layer needs it.
        """
        sparse = sparse_mod.is_sparse(self._x)
        self.backward_params_only(grad_out)  # (releases the cached x)
        if sparse:
            return None  # no dL/dx for a sparse input: nothing upstream needs it
        return grad_out @ self.params["W"].T

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if self._given_in is not None:
            cfg["in_features"] = self._given_in
        cfg["out_features"] = self.out_features
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if isinstance(self.bias_init, str):
            cfg["bias_init"] = self.bias_init
        return cfg


def _activation_after(layers: list[Layer], i: int) -> str | None:
    """The class name of the activation that follows layer ``i``, looking through Dropout,
    normalization, pooling and reshapes; a subclass of a built-in activation gives the
    built-in's name when that one calls for He (so ``class MyReLU(ReLU)`` counts as a ReLU)."""
    for layer in layers[i + 1 :]:
        if layer.init_transparent:
            continue
        if hasattr(layer, "auto_init"):
            return None
        names = [cls.__name__ for cls in type(layer).__mro__]
        he = (n for n in names if initializers.default_for_activation(n) == "he_uniform")
        return next(he, names[0])
    return None


def set_auto_init(layers: list[Layer]) -> None:
    """Give every Dense with ``init="auto"`` (in ``layers`` and inside containers) the
    initializer of the activation that follows it: He for the ReLU family, else Glorot."""
    for i, layer in enumerate(layers):
        if hasattr(layer, "auto_init"):
            layer.auto_init = initializers.default_for_activation(_activation_after(layers, i))
        set_auto_init(layer.children())
