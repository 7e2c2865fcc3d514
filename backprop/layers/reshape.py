"""Shape-only layers: Flatten and Reshape. No arithmetic, so backward is the inverse reshape::

    Flatten:        (n, d1, ..., dk) -> (n, d1*...*dk);   dx = G.reshape(n, d1, ..., dk)
    Reshape(shape): (n, *in_shape)   -> (n, *shape);      dx = G.reshape(n, *in_shape)

Both return views when the memory layout allows it (NumPy's reshape rules) and never write into
their input or their gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .base import Layer
from .registry import register_layer


class _ShapeLayer(Layer):
    init_transparent = True  # moving values around does not change which init suits them

    # Subclasses' ``build`` returns the per-sample output shape; the base class's build guard
    # checks ``in_shape`` (a tuple of positive ints), refuses a rebuild with another shape and
    # records both shapes.

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._built_for(x)
        return x.reshape(x.shape[0], *self.out_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out`` reshaped from ``(n, *out_shape)`` to ``(n, *in_shape)``: a reshape
        moves no value, so the gradient is the same numbers in the input's shape."""
        return grad_out.reshape(grad_out.shape[0], *self.in_shape)


@register_layer
class Flatten(_ShapeLayer):
    """``(n, d1, ..., dk)`` -> ``(n, d1*...*dk)``, row-major (the last axis varies fastest)."""

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(math.prod(in_shape),)``."""
        return (math.prod(in_shape),)


@register_layer
class Reshape(_ShapeLayer):
    """``(n, *in_shape)`` -> ``(n, *shape)``; one entry of ``shape`` may be -1 (inferred).

    Parameters
    ----------
    shape : the per-sample output shape (no batch axis), e.g. ``(28, 28, 1)``.
    """

    def __init__(self, shape: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        try:
            if isinstance(shape, str | bytes | Mapping):  # iterable, but not a shape
                raise TypeError
            target = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"Reshape: shape must be a sequence of ints, got {shape!r}") from None
        bad = (
            not target
            or any(s == 0 or s < -1 for s in target)
            or target.count(-1) > 1
            or any(isinstance(s, bool) or float(s) != int(s) for s in shape)
        )
        if bad:
            raise ValueError(
                f"Reshape: shape must be positive ints with at most one -1, got {shape!r}"
            )
        self.shape = target

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``shape`` with its -1 inferred; an error when the sizes do not match."""
        size = math.prod(in_shape)
        known = math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape:
            if size % known:
                raise ValueError(f"Reshape: cannot reshape input {in_shape} into {self.shape}")
            return tuple(size // known if s == -1 else s for s in self.shape)
        if known != size:
            raise ValueError(
                f"Reshape: input {in_shape} has {size} values, target {self.shape} has {known}"
            )
        return self.shape

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}
