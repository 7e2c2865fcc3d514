"""Shape bookkeeping shared by the convolution and pooling layers (channels last).

A 2-D layer takes ``(n, h, w, c)``, a 1-D layer ``(n, t, c)``; internally a 1-D map is the 2-D
map ``(n, 1, t, c)`` (a view), with a kernel, stride and dilation of 1 along the unit axis, so
one implementation serves both. ``build`` validates the per-sample input shape, resolves the
padding of each axis (see :func:`~backprop.layers._windows.axis_padding`) and fixes the output
shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._windows import Workspace, as_tuple, axis_padding, check_padding, windows
from .base import Layer

#: Config-visible types of the window arguments (one int for every axis, or one per axis).
Ints = int | tuple[int, ...] | list[int]
Padding = str | int | tuple[int, ...] | list[int]


class SpatialLayer(Layer):
    """Base of Conv1D/2D and the windowed pooling layers: kernel, stride, padding, dilation."""

    ndim: int = 2  # spatial axes: 1 or 2
    pad_value: float = 0.0

    def __init__(self, kernel_size: Ints, stride: Ints, padding: Padding, dilation: Ints) -> None:
        super().__init__()
        nd = self.ndim
        self.kernel_size = as_tuple("kernel_size", kernel_size, nd)
        self.stride = as_tuple("stride", stride, nd)
        self.padding = check_padding(padding, nd)
        self.dilation = as_tuple("dilation", dilation, nd)
        self.in_shape: tuple[int, ...] | None = None
        self.out_shape: tuple[int, ...] | None = None
        # 2-D versions (a 1-D layer has a unit height) and the resolved padding, set by build.
        self._k2 = self._s2 = self._d2 = (1, 1)
        self._pads = ((0, 0), (0, 0))
        self._out2 = (0, 0)
        self._ws = Workspace()

    def _to2(self, t: tuple[int, ...], unit: int) -> tuple[int, int]:
        return (t[0], t[1]) if self.ndim == 2 else (unit, t[0])

    def _out_channels(self, c_in: int) -> int:
        return c_in

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Validate ``in_shape`` (``(h, w, c)`` or ``(t, c)``), resolve padding, return the
        output shape ``(oh, ow, c_out)`` or ``(ot, c_out)``."""
        # The base class's build guard has already made in_shape a tuple of positive ints and
        # handled a second build; this records in_shape early because _after_build reads it.
        name, shape = type(self).__name__, in_shape
        axes = "(h, w, channels)" if self.ndim == 2 else "(steps, channels)"
        if len(shape) != self.ndim + 1 or min(shape) < 1:
            raise ValueError(f"{name} expects a per-sample input shape {axes}, got {shape}")
        sizes = self._to2(shape[:-1], 1)
        self._k2 = self._to2(self.kernel_size, 1)
        self._s2 = self._to2(self.stride, 1)
        self._d2 = self._to2(self.dilation, 1)
        pads, outs = [], []
        for ax in range(2):
            padding = self.padding
            if isinstance(padding, tuple):
                padding = self._to2(padding, 0)[ax]
            elif self.ndim == 1 and ax == 0:
                padding = "valid"
            lo, hi, out = axis_padding(padding, sizes[ax], self._k2[ax], self._s2[ax], self._d2[ax])
            self._check_padding(lo, hi, ax)
            if out < 1:
                raise ValueError(
                    f"{name}: input {shape} is too small for kernel_size={self.kernel_size}, "
                    f"dilation={self.dilation}, padding={self.padding!r}"
                )
            pads.append((lo, hi))
            outs.append(out)
        self._pads = (pads[0], pads[1])
        self._out2 = (outs[0], outs[1])
        # A stride along an axis of one window, or a dilation along a kernel of one tap, is never
        # applied: min(stride, kernel) and 1 compute the same (the former keeps "the windows tile"
        # true), where a huge one (from a file) overflowed the strided views' byte strides.
        s2, k2, d2 = self._s2, self._k2, self._d2
        self._s2 = tuple(
            s if out > 1 else min(s, k) for s, k, out in zip(s2, k2, outs, strict=True)
        )
        self._d2 = tuple(d if k > 1 else 1 for d, k in zip(d2, k2, strict=True))
        spatial = tuple(outs) if self.ndim == 2 else (outs[1],)
        self.in_shape = shape
        self.out_shape = (*spatial, self._out_channels(shape[-1]))
        self._after_build()
        return self.out_shape

    def _check_padding(self, lo: int, hi: int, axis: int) -> None:
        """Hook: pooling refuses windows made only of padding."""

    def _after_build(self) -> None:
        """Hook for subclasses (parameter shapes, averaging counts)."""

    # -- arrays ---------------------------------------------------------------------------------
    def _input4(self, x: np.ndarray) -> np.ndarray:
        """Check ``x`` against the built shape and view it as ``(n, h, w, c)``."""
        self._built_for(x)
        if x.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__} expects a float input, got dtype {x.dtype}")
        return x if self.ndim == 2 else x[:, None]

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: Any, training: bool, fill=None):
        """A scratch array: while training, the reused buffer ``name`` (sized for the training
        batch); at inference a fresh one, so that predicting in large chunks does not leave
        chunk-sized buffers behind for the rest of training."""
        if training:
            return self._ws.get(name, shape, dtype, fill=fill)
        return np.empty(shape, dtype=dtype) if fill is None else np.full(shape, fill, dtype=dtype)

    def _padded(self, x4: np.ndarray, training: bool = True) -> np.ndarray:
        """``x4`` with its padding, in a buffer whose border keeps ``pad_value``."""
        (t, b), (left, r) = self._pads
        if t == b == left == r == 0:
            return x4
        n, h, w, c = x4.shape
        shape = (n, h + t + b, w + left + r, c)
        xp = self._scratch("xp", shape, x4.dtype, training, fill=self.pad_value)
        xp[:, t : t + h, left : left + w, :] = x4
        return xp

    def _windows(self, xp: np.ndarray) -> np.ndarray:
        return windows(xp, self._out2, self._k2, self._s2, self._d2)

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        """Gradient of the padded map -> gradient of the input, in the caller's layout."""
        (t, b), (left, r) = self._pads
        dx = dxp[:, t : dxp.shape[1] - b, left : dxp.shape[2] - r, :]
        return dx if self.ndim == 2 else dx[:, 0]

    def _padded_shape(self, n: int, c: int) -> tuple[int, int, int, int]:
        h, w = self._to2(self.in_shape[:-1], 1)
        (t, b), (left, r) = self._pads
        return n, h + t + b, w + left + r, c

    @property
    def workspace_nbytes(self) -> int:
        """Bytes held by this layer's reusable scratch buffers (im2col, padding)."""
        return self._ws.nbytes

    def _spatial_config(self) -> dict[str, Any]:
        def compact(t: tuple[int, ...]) -> int | list[int]:
            return t[0] if len(set(t)) == 1 else list(t)

        pad = self.padding if isinstance(self.padding, str) else compact(self.padding)
        return {
            "kernel_size": compact(self.kernel_size),
            "stride": compact(self.stride),
            "padding": pad,
        }
