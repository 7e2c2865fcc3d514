"""Pooling layers, channels last: windowed max/average (1-D and 2-D) and global average.

Windows are those of :mod:`~backprop.layers._windows` (``pool_size`` plays the kernel, stride
defaults to ``pool_size``, no dilation). With ``win`` the ``(n, oh, ow, kh*kw, c)`` windows::

    MaxPool:   y[s, i, j, ch] = max_r win[s, i, j, r, ch]
               dx: G[s, i, j, ch] goes to the one window position r* = argmax_r win[s, i, j, r, ch]
    AvgPool:   y[s, i, j, ch] = sum_r win[s, i, j, r, ch] / count[i, j]
               dx: G[s, i, j, ch] / count[i, j] goes to every real (non-padding) position
    GlobalAvgPool: y[s, ch] = mean over every position of x[s, ..., ch];  dx = G / (h*w), broadcast

Ties in max pooling: the *first* maximal position of the window in row-major order (top-most,
then left-most) receives the whole gradient; the others get zero (NumPy's ``argmax`` rule, and
what PyTorch's CPU kernel does). Overlapping windows (stride < pool size) add their gradients.

Max pooling is computed without window views (whose inner loops run over only ``c`` channels):
:mod:`~backprop.layers._maxpool` folds shifted maxima over the flat padded map, and its backward
selects gradients with bit masks, one spread when the windows tile the padded input. Training
keeps the offsets of the first maxima (one byte per padded input value, four for windows of
over 256 positions, in a buffer reused from
step to step) and a scratch buffer for a chunk of samples (``workspace_nbytes``). A NaN in a
window makes its maximum NaN, in training and inference alike.

Padding: max pooling pads with -inf and average pooling divides by the number of real inputs
in each window (padding is not counted), so padding never changes a value. A window must hold
at least one real input: an int padding must be smaller than the pool size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._maxpool import index_dtype, max_backward, max_backward_tiled, max_forward
from ._windows import as_tuple, col2im_add
from .base import Layer
from .registry import register_layer
from .spatial import Ints, Padding, SpatialLayer


class _Pool(SpatialLayer):
    init_transparent = True  # max/avg pooling commute with the ReLU family's choice of init

    def __init__(
        self, pool_size: Ints = 2, stride: Ints | None = None, padding: Padding = "valid"
    ) -> None:
        as_tuple("pool_size", pool_size, self.ndim)  # a bad value named as the caller named it
        super().__init__(pool_size, pool_size if stride is None else stride, padding, 1)

    @property
    def pool_size(self) -> tuple[int, ...]:
        return self.kernel_size

    def _check_padding(self, lo: int, hi: int, axis: int) -> None:
        k = self._k2[axis]
        if lo >= k or hi >= k:
            raise ValueError(
                f"{type(self).__name__}: padding {self.padding!r} must be smaller than "
                f"pool_size {self.pool_size}, else a window holds only padding"
            )

    def config(self) -> dict[str, Any]:
        cfg = self._spatial_config()
        return {"pool_size": cfg.pop("kernel_size"), **cfg}

    def _grad_input(self, dwin: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """col2im of window gradients ``(n, oh, ow, kh, kw, c)`` -> ``(n, *in_shape)``."""
        dxp = np.zeros(self._padded_shape(dwin.shape[0], dwin.shape[-1]), dtype=dtype)
        col2im_add(dxp, dwin.transpose(3, 4, 0, 1, 2, 5), self._s2, (1, 1))
        return self._unpad(dxp)


class _MaxPool(_Pool):
    pad_value = -np.inf

    def __init__(
        self, pool_size: Ints = 2, stride: Ints | None = None, padding: Padding = "valid"
    ) -> None:
        super().__init__(pool_size, stride, padding)
        self._argmax: np.ndarray | None = None
        self._idx_buf: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y = max over each window`` by shifted maxima over the flat padded map
        (:mod:`~backprop.layers._maxpool`); when training, also the flat offsets of each
        window's first maximum, kept for backward in a buffer reused from step to step."""
        x4 = self._input4(x)
        xp = self._padded(x4, training)
        idx = None
        if training:
            size = int(np.prod(self._padded_shape(x4.shape[0], x4.shape[-1])))
            if self._idx_buf is None or self._idx_buf.size < size:
                self._idx_buf = np.empty(size, dtype=index_dtype(self._k2))
            idx = self._idx_buf[:size]
        y = max_forward(xp, self._k2, self._s2, self._out2, idx, self._pool_scratch(training))
        self._argmax = idx
        return y.reshape(x4.shape[0], *self.out_shape)

    def _pool_scratch(self, training: bool):
        """The kernels' temporaries: the reused buffer "pool" when training, else fresh."""
        return lambda nbytes: self._scratch("pool", (nbytes,), np.uint8, training)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx[s, window position r*] += G[s, i, j, ch]`` (first maximum of each window), by
        shifted, masked adds over the flat padded map; one masked spread when the windows tile
        the input. ``G = grad_out``: ``(n, *out_shape)``; ``dx``: ``(n, *in_shape)``, zero
        except at each window's maximum."""
        if self._argmax is None:
            raise self._missing_cache()
        argmax, self._argmax = self._argmax, None  # (a view of the reused index buffer)
        c = self.out_shape[-1]
        per_sample = int(np.prod(self._padded_shape(1, c)))
        shape = self._padded_shape(argmax.size // per_sample, c)
        g = np.ascontiguousarray(grad_out).reshape(shape[0], *self._out2, c)
        scratch = self._pool_scratch(True)
        if self._s2 == self._k2:  # the windows tile the padded map
            dxp = max_backward_tiled(g, argmax, shape, self._k2, scratch)
        else:
            dxp = max_backward(g, argmax, shape, self._k2, self._s2, scratch)
        return self._unpad(dxp)


class _AvgPool(_Pool):
    def __init__(
        self, pool_size: Ints = 2, stride: Ints | None = None, padding: Padding = "valid"
    ) -> None:
        super().__init__(pool_size, stride, padding)
        self._inv_count: np.ndarray | None = None
        self._cached = False

    def _inverse_counts(self, dtype: np.dtype) -> np.ndarray:
        """``1 / count[i, j]`` ``(oh, ow, 1)``: count = real inputs under window (i, j), the
        product of the per-axis counts ``min(start + k, size) - max(start, 0)``. Made at the
        first forward, not in build, so that a shape read from a file allocates nothing."""
        if self._inv_count is None or self._inv_count.dtype != dtype:
            counts = []
            for ax, size in enumerate(self._to2(self.in_shape[:-1], 1)):
                start = np.arange(self._out2[ax]) * self._s2[ax] - self._pads[ax][0]
                counts.append(np.minimum(start + self._k2[ax], size) - np.maximum(start, 0))
            inv = 1.0 / np.multiply.outer(counts[0], counts[1])
            self._inv_count = inv[:, :, None].astype(dtype)
        return self._inv_count

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y = sum over each window / count`` (padding not counted)."""
        x4 = self._input4(x)
        y = self._windows(self._padded(x4, training)).sum(axis=(3, 4))
        y *= self._inverse_counts(y.dtype)
        self._cached = training
        return y.reshape(x4.shape[0], *self.out_shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Every real input of window (i, j) receives ``G[s, i, j, ch] / count[i, j]``
        (summed over the windows it belongs to). ``G = grad_out``: ``(n, *out_shape)``;
        ``dx``: ``(n, *in_shape)``."""
        if not self._cached:
            raise self._missing_cache()
        self._cached = False  # one backward per training forward, as the other layers
        n, (oh, ow) = grad_out.shape[0], self._out2
        g = grad_out.reshape(n, oh, ow, grad_out.shape[-1])
        g = g * self._inverse_counts(grad_out.dtype)
        dwin = np.broadcast_to(g[:, :, :, None, None, :], (n, oh, ow, *self._k2, g.shape[-1]))
        return self._grad_input(dwin, grad_out.dtype)


@register_layer
class MaxPool2D(_MaxPool):
    """Max pooling on ``(n, h, w, c)``: ``pool_size`` (k or (kh, kw), default 2), ``stride``
    (default ``pool_size``), ``padding`` ("valid", "same" or int < pool size).

    Parameters
    ----------
    pool_size : Ints, default 2
        Window size (an int, or one int per spatial axis).
    stride : Ints | None, default None
        Step between windows; None: ``pool_size``.
    padding : Padding, default 'valid'
        "valid" (none), "same" (output size ``ceil(in / stride)``) or an int smaller than the window.
    """

    ndim = 2


@register_layer
class AvgPool2D(_AvgPool):
    """Average pooling on ``(n, h, w, c)``; arguments as :class:`MaxPool2D`. Each window is
    divided by the number of real inputs it holds: padding is not counted (Keras' rule; PyTorch's
    ``count_include_pad=False``).

    Parameters
    ----------
    pool_size : Ints, default 2
        Window size (an int, or one int per spatial axis).
    stride : Ints | None, default None
        Step between windows; None: ``pool_size``.
    padding : Padding, default 'valid'
        "valid" (none), "same" (output size ``ceil(in / stride)``) or an int smaller than the window.
    """

    ndim = 2


@register_layer
class MaxPool1D(_MaxPool):
    """Max pooling on ``(n, t, c)``: ``pool_size`` (default 2), ``stride``, ``padding``.

    Parameters
    ----------
    pool_size : Ints, default 2
        Window size (an int, or one int per spatial axis).
    stride : Ints | None, default None
        Step between windows; None: ``pool_size``.
    padding : Padding, default 'valid'
        "valid" (none), "same" (output size ``ceil(in / stride)``) or an int smaller than the window.
    """

    ndim = 1


@register_layer
class AvgPool1D(_AvgPool):
    """Average pooling on ``(n, t, c)``: ``pool_size`` (default 2), ``stride``, ``padding``.
    Each window is divided by the number of real inputs it holds (padding is not counted).

    Parameters
    ----------
    pool_size : Ints, default 2
        Window size (an int, or one int per spatial axis).
    stride : Ints | None, default None
        Step between windows; None: ``pool_size``.
    padding : Padding, default 'valid'
        "valid" (none), "same" (output size ``ceil(in / stride)``) or an int smaller than the window.
    """

    ndim = 1


class _GlobalAvgPool(Layer):
    ndim = 2
    init_transparent = True

    def __init__(self) -> None:
        super().__init__()
        self._n_positions = 1
        self._cached = False

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(h, w, c)`` (or ``(t, c)``) -> ``(c,)``."""
        shape = in_shape  # a tuple of positive ints: the base class's build guard checked it
        if len(shape) != self.ndim + 1:
            axes = "(h, w, channels)" if self.ndim == 2 else "(steps, channels)"
            raise ValueError(
                f"{type(self).__name__} expects a per-sample input shape {axes}, got {shape}"
            )
        self._n_positions = int(np.prod(shape[:-1]))
        return (shape[-1],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y[s, ch] = mean over positions of x[s, ..., ch]``: ``(n, *in_shape)`` -> ``(n, c)``."""
        self._built_for(x)
        self._cached = training
        return x.mean(axis=tuple(range(1, x.ndim - 1)))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx[s, ..., ch] = G[s, ch] / n_positions`` at every position. ``G = grad_out``:
        ``(n, channels)``; ``dx``: ``(n, *in_shape)``."""
        if not self._cached:
            raise self._missing_cache()
        self._cached = False  # one backward per training forward, as the other layers
        n, c = grad_out.shape
        dx = np.empty((n, *self.in_shape), dtype=grad_out.dtype)
        dx[...] = (grad_out / self._n_positions).reshape(n, *([1] * self.ndim), c)
        return dx


@register_layer
class GlobalAvgPool2D(_GlobalAvgPool):
    """Mean over height and width: ``(n, h, w, c)`` -> ``(n, c)``."""

    ndim = 2


@register_layer
class GlobalAvgPool1D(_GlobalAvgPool):
    """Mean over time: ``(n, t, c)`` -> ``(n, c)``."""

    ndim = 1
