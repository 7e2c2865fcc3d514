"""Shape-only layers: Flatten and Reshape. No arithmetic, so backward is the inverse reshape::

    Flatten:        (n, d1, ..., dk) -> (n, d1*...*dk);   dx = G.reshape(n, d1, ..., dk)
    Reshape(shape): (n, *in_shape)   -> (n, *shape);      dx = G.reshape(n, *in_shape)

Both return views when the memory layout allows it (NumPy's reshape rules) and never write into
their input or their gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import Layer
from .registry import register_layer


class _ShapeLayer(Layer):
    init_transparent = True  # moving values around does not change which init suits them

    def __init__(self) -> None:
        super().__init__()
        self.in_shape: tuple[int, ...] | None = None
        self.out_shape: tuple[int, ...] | None = None

    def _target(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Validate the per-sample ``in_shape`` and return the per-sample output shape."""
        name = type(self).__name__
        try:
            shape = tuple(int(s) for s in in_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}: input shape must be a tuple of ints, got {in_shape!r}"
            ) from None
        if self.out_shape is not None:
            if shape != self.in_shape:
                raise ValueError(f"{name} was built for input {self.in_shape}, got {shape}")
            return self.out_shape
        if not shape or min(shape) < 1:
            raise ValueError(f"{name} expects a non-empty per-sample shape, got {shape}")
        self.out_shape = self._target(shape)
        self.in_shape = shape
        return self.out_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if self.out_shape is None:
            self.build(x.shape[1:])
        if x.shape[1:] != self.in_shape:
            raise ValueError(f"{type(self).__name__} expects (n, *{self.in_shape}), got {x.shape}")
        return x.reshape(x.shape[0], *self.out_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out`` reshaped from ``(n, *out_shape)`` to ``(n, *in_shape)``: a reshape
        moves no value, so the gradient is the same numbers in the input's shape."""
        return grad_out.reshape(grad_out.shape[0], *self.in_shape)


@register_layer
class Flatten(_ShapeLayer):
    """``(n, d1, ..., dk)`` -> ``(n, d1*...*dk)``, row-major (the last axis varies fastest)."""

    def _target(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
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

    def _target(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
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
