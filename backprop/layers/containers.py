"""Containers: layers made of layers.

``Residual(layers)`` computes ``y = x + f(x)``, ``f`` being its layers applied in order; ``f``
must keep the shape. Backward sums both paths::

    dL/dx = g + f'(x)^T g          (g = dL/dy)

A padding mask travels through ``f``'s layers as through a Sequential's (see ``masking.py``),
and the output carries the incoming mask narrowed by any made inside (a ``Masking`` in ``f``).

A container's parameters are its children's, named ``"j.key"`` for child ``j`` (so inside a
Sequential, child 0 of layer 3 owns ``"3.0.W"``), and live as views in the same flat buffer:
``bind`` hands each child its share. ``config()`` holds the children's specs, so files and
configs nest without knowing the container.

A frozen container (``trainable = False``) freezes everything inside it. Its children's own
flags are left as they are; each forward tells them ``frozen_by_container`` (True inside a
frozen container, at any depth), which a BatchNorm reads to keep its running statistics exactly
as a frozen BatchNorm does, and backward zeroes their gradients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .base import Layer, Shape
from .masking import forward_with_mask
from .registry import layer_from_spec, layer_spec, register_layer


def named_layers(
    layers: Iterable[Layer], prefix: str = "", trainable: bool = True
) -> Iterator[tuple[str, Layer, bool]]:
    """``(name, layer, trainable)`` for every layer and, depth first, every container's children
    (``"3"``, ``"3.0"``, ...); a layer counts as trainable only when its containers are too."""
    for i, layer in enumerate(layers):
        name, t = f"{prefix}{i}", trainable and layer.trainable
        yield name, layer, t
        yield from named_layers(layer.children(), f"{name}.", t)


def _share(named: dict[str, Any], j: int) -> dict[str, Any]:
    prefix = f"{j}."
    return {k[len(prefix) :]: v for k, v in named.items() if k.startswith(prefix)}


def _merged(children: list[Layer], what: str) -> dict[str, np.ndarray]:
    return {f"{j}.{k}": v for j, c in enumerate(children) for k, v in getattr(c, what).items()}


@register_layer
class Residual(Layer):
    """``y = x + f(x)``: a skip connection around ``layers`` (which must keep the shape).

    Parameters
    ----------
    layers : Iterable[Layer | dict[str, Any]]
        the layers of ``f``, in order (Layer objects, or their specs
        ``{"type", "config", "trainable"}`` as :meth:`config` writes them).

    """

    def __init__(self, layers: Iterable[Layer | dict[str, Any]]) -> None:
        self.trainable: bool = True
        self.in_shape: Shape | None = None
        self.out_shape: Shape | None = None
        if isinstance(layers, str | dict | Layer):  # one layer, not a list (a str would iterate)
            raise TypeError(f"Residual takes a list of layers, got {layers!r}")
        self.layers: list[Layer] = [
            layer_from_spec(spec, f"Residual layer {j}") for j, spec in enumerate(layers)
        ]
        if not self.layers:
            raise ValueError("Residual needs at least one layer")
        for j, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual layer {j} is {layer!r}, not a backprop Layer")

    # The children's dicts, merged under "j." prefixes (built on every access: the children may
    # rebind their arrays).
    @property
    def params(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return _merged(self.layers, "params")

    @property
    def grads(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return _merged(self.layers, "grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return _merged(self.layers, "buffers")

    def children(self) -> list[Layer]:
        return list(self.layers)

    def default_in_shape(self) -> Shape | None:
        return self.layers[0].default_in_shape()

    def build(self, in_shape: Shape) -> Shape:
        shape = in_shape
        for j, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape)
            except ValueError as exc:
                raise ValueError(f"Residual layer {j} ({type(layer).__name__}): {exc}") from None
        if shape != in_shape:
            raise ValueError(
                f"Residual: its layers map input shape {in_shape} to {shape}; x + f(x) needs "
                "them to keep the shape"
            )
        return in_shape

    # -- parameters, handed down to the children ------------------------------------------------
    def param_specs(self) -> dict[str, tuple[Shape, str]]:
        return {
            f"{j}.{k}": v for j, c in enumerate(self.layers) for k, v in c.param_specs().items()
        }

    def buffer_specs(self) -> dict[str, Shape]:
        return {
            f"{j}.{k}": v for j, c in enumerate(self.layers) for k, v in c.buffer_specs().items()
        }

    def bind(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for j, layer in enumerate(self.layers):
            layer.bind(_share(params, j), _share(grads, j))

    def _allocate_buffers(self, dtype: np.dtype) -> None:
        for layer in self.layers:
            layer._allocate_buffers(dtype)

    def _set_dtype(self, dtype: np.dtype) -> None:
        for layer in self.layers:
            layer._set_dtype(dtype)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        for layer in self.layers:
            layer.reset_parameters(rng)

    def reset_buffers(self) -> None:
        for layer in self.layers:
            layer.reset_buffers()

    def set_rng(self, rng: np.random.Generator) -> None:
        for layer in self.layers:
            layer.set_rng(rng)

    def zero_grads(self) -> None:
        for layer in self.layers:
            layer.zero_grads()

    # -- computation ----------------------------------------------------------------------------
    supports_mask = True  # hands a padding mask to its layers (see masking.py)

    def forward(self, x: np.ndarray, training: bool = False, mask: Any = None) -> np.ndarray:
        """``x + f(x)``; the padding mask travels through ``f``'s layers as through a
        Sequential's, so a mask made inside (a ``Masking``) reaches the layers after it."""
        out, inner = x, mask
        frozen = not self.trainable or getattr(self, "frozen_by_container", False)
        for layer in self.layers:
            layer.frozen_by_container = frozen  # (see the module docstring)
            out, inner = forward_with_mask(layer, out, training, inner)
        # The output's mask: the incoming one, narrowed by one made inside (None when neither).
        if inner is None or mask is None:
            self._mask_out = mask if inner is None else inner
        else:
            self._mask_out = inner & mask
        return out + x  # a new array: out may be x itself (Dropout at inference)

    def compute_mask(self, x: np.ndarray, mask: Any) -> Any:
        """The mask of the last forward's output (called right after it, by
        :func:`~backprop.layers.masking.forward_with_mask`), handed over: not kept."""
        return vars(self).pop("_mask_out", mask)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = g + df/dx^T g``: the gradient reaches the input along both paths of
        ``y = x + f(x)``, directly and back through ``f``'s layers (which fill their own
        ``grads``). ``g = grad_out`` and ``dx`` have the input's shape ``(n, *in_shape)``."""
        g = grad_out
        for layer in reversed(self.layers):
            g = layer.backward(g)
        if not self.trainable:
            self.zero_grads()  # a frozen container reports zero gradients, as a frozen layer does
        return g + grad_out

    def config(self) -> dict[str, Any]:
        return {"layers": [layer_spec(layer) for layer in self.layers]}

    def extra_repr(self) -> str:
        return "[" + ", ".join(repr(layer) for layer in self.layers) + "]"
