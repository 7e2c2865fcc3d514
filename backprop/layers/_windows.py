"""Sliding windows for convolution and pooling: im2col as a strided view, col2im as a scatter-add.

Everything here works on channels-last 2-D maps ``(n, h, w, c)``; the 1-D layers call it with
``h = 1``. For kernel ``(kh, kw)``, stride ``(sh, sw)``, dilation ``(dh, dw)`` and a padded map
``xp`` of shape ``(n, hp, wp, c)``, the window view is ::

    win[s, i, j, a, b, ch] = xp[s, i*sh + a*dh, j*sw + b*dw, ch]      (n, oh, ow, kh, kw, c)

built with ``as_strided`` (no copy, no loop). Copying it once into a C-contiguous buffer gives the
im2col matrix ``cols`` of shape ``(n*oh*ow, kh*kw*c)``. Its adjoint, col2im, adds every window
back where it came from; it loops over the ``kh*kw`` kernel offsets only, each offset being one
strided slice-add over every sample, output position and channel at once. Gradients arrive
offset-major, ``(kh, kw, n, oh, ow, c)``, so that each slice-add reads one contiguous block.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pair = tuple[int, int]


def as_tuple(name: str, value: Any, n: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ``n`` ints, each >= ``minimum``) as an n-tuple."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(items) == 1:
        items = items * n
    ok = len(items) == n and all(
        not isinstance(v, bool) and isinstance(v, int | np.integer) and v >= minimum for v in items
    )
    if not ok:
        raise ValueError(
            f"{name} must be an integer >= {minimum} or a sequence of {n} of them, got {value!r}"
        )
    return tuple(int(v) for v in items)


def check_padding(value: Any, n: int) -> str | tuple[int, ...]:
    """``"valid"``, ``"same"``, or non-negative int(s) padded on both sides of each axis."""
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same' or an int >= 0, got {value!r}")
        return value
    return as_tuple("padding", value, n, minimum=0)


def axis_padding(padding: str | int, size: int, k: int, s: int, d: int) -> tuple[int, int, int]:
    """``(before, after, out)`` along one axis of length ``size``.

    The effective kernel spans ``e = d*(k-1) + 1`` inputs. ``"valid"`` pads nothing;
    ``"same"`` pads ``max((ceil(size/s) - 1)*s + e - size, 0)`` in total so that
    ``out = ceil(size/s)``, the odd element after (TensorFlow's rule); an int pads that many on
    both sides. Then ``out = (size + before + after - e) // s + 1``.
    """
    e = d * (k - 1) + 1
    if padding == "valid":
        lo = hi = 0
    elif padding == "same":
        total = max((math.ceil(size / s) - 1) * s + e - size, 0)
        lo, hi = total // 2, total - total // 2
    else:
        lo = hi = int(padding)
    return lo, hi, (size + lo + hi - e) // s + 1


def windows(xp: np.ndarray, out: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Read-only view ``(n, oh, ow, kh, kw, c)`` of the windows of ``xp`` ``(n, hp, wp, c)``."""
    n, _, _, c = xp.shape
    s0, s1, s2, s3 = xp.strides
    return as_strided(
        xp,
        shape=(n, out[0], out[1], kernel[0], kernel[1], c),
        strides=(s0, s1 * stride[0], s2 * stride[1], s1 * dilation[0], s2 * dilation[1], s3),
        writeable=False,
    )


def copy_runs(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for two arrays of one shape. The trailing axes that lie one after
    another in memory in both form runs; each run is moved as one opaque item (a ``void`` of the
    run's bytes), which NumPy copies about twice as fast as a short run of numbers (LeNet's
    first strips: 11 floats)."""
    shape, ss, ds = list(src.shape), list(src.strides), list(dst.strides)
    while len(shape) > 1 and ss[-2] == shape[-1] * ss[-1] and ds[-2] == shape[-1] * ds[-1]:
        shape[-2:] = [shape[-2] * shape[-1]]
        ss[-2:], ds[-2:] = [ss[-1]], [ds[-1]]
    if ss[-1] != src.itemsize or ds[-1] != dst.itemsize or src.dtype != dst.dtype:
        np.copyto(dst, src)
        return
    item = np.dtype((np.void, shape[-1] * src.itemsize))
    to = as_strided(dst, shape=shape, strides=ds)
    np.copyto(to.view(item), as_strided(src, shape=shape, strides=ss, writeable=False).view(item))


def im2col_copy(cols6: np.ndarray, win: np.ndarray) -> None:
    """Copy the window view ``win`` ``(n, oh, ow, kh, kw, c)`` into the C-contiguous ``cols6``
    of the same shape (the im2col matrix seen as 6-D). One ``copyto`` when each window row is a
    long contiguous run (``kw*c``); with few channels (a 1-channel image: runs of ``kw``) one
    copy per kernel offset instead, whose inner loop runs along the output width."""
    _, _, ow, kh, kw, c = win.shape
    if kw * c >= ow:
        copy_runs(cols6, win)
        return
    for a in range(kh):
        for b in range(kw):
            copy_runs(cols6[:, :, :, a, b, :], win[:, :, :, a, b, :])


def col2im_add(dxp: np.ndarray, blocks: np.ndarray, stride: Pair, dilation: Pair) -> None:
    """Adjoint of :func:`windows`: ``dxp[s, i*sh + a*dh, j*sw + b*dw, ch] += blocks[a, b, s, i, j,
    ch]`` for every index, in place. ``blocks`` is ``(kh, kw, n, oh, ow, c)`` (any strides: a
    transposed window-gradient view works); the loop runs over the ``kh*kw`` kernel offsets
    ``(a, b)`` only, each one a strided slice-add over every sample, position and channel."""
    kh, kw, _, oh, ow, _ = blocks.shape
    for a in range(kh):
        r = a * dilation[0]
        rows = slice(r, r + stride[0] * (oh - 1) + 1, stride[0])
        for b in range(kw):
            q = b * dilation[1]
            cols = slice(q, q + stride[1] * (ow - 1) + 1, stride[1])
            dxp[:, rows, cols, :] += blocks[a, b]


class Workspace:
    """Scratch arrays reused from step to step (im2col matrices, padded inputs).

    ``get(name, shape, dtype, fill)`` returns a C-contiguous array of ``shape`` that is the
    prefix of a buffer kept under ``name``; the buffer grows only when a larger batch (or another
    dtype) arrives, and ``fill`` is written only when it is (re)allocated. A padded input keeps
    its zero (or -inf) border that way while each step writes only the interior.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any, fill: float | None = None):
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            if fill is not None:
                buf.fill(fill)
            self._buffers[name] = buf
        return buf[:size].reshape(shape)

    def get_many(self, name: str, shapes: Sequence[tuple[int, ...]], dtype: Any) -> list:
        """C-contiguous arrays of ``shapes``, one after another in the single buffer ``name``
        (so that the buffer is sized by the largest *sum* any one caller asks for)."""
        sizes = [math.prod(shape) for shape in shapes]
        flat = self.get(name, (sum(sizes),), dtype)
        out, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            out.append(flat[start : start + size].reshape(shape))
            start += size
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held by every buffer."""
        return sum(b.nbytes for b in self._buffers.values())

    def clear(self) -> None:
        self._buffers.clear()

    def __deepcopy__(self, memo: dict) -> Workspace:
        return Workspace()  # scratch space is never worth copying

    def __getstate__(self) -> dict:
        return {"_buffers": {}}


_local = threading.local()


def shared_workspace() -> Workspace:
    """This thread's workspace, shared by every convolution layer of every model.

    It holds scratch only: nothing in it outlives one ``forward`` or ``backward`` call, so layers
    that run one after another can all use it (each thread has its own, so models trained in
    parallel threads do not share one)."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = Workspace()
    return ws


# -- the row lowering: strips of input rows against a banded weight matrix ------------------------
#
# When im2col's rows would be short (few channels), the output width is cut into ``nt`` tiles of
# ``tw`` pixels and one strip of ``kh`` input rows by ``tin`` columns is lowered per output row
# and tile, instead of one ``kh x kw`` window per output pixel:
#
#     R[(s, i, t), (a, p, ch)] = xp[s, i*sh + a*dh, t*tw*sw + p, ch]    (n*oh*nt, kh*tin*c)
#     B[(a, p, ch), (j, o)] = W[a, b, ch, o] if p = j*sw + b*dw, else 0  (kh*tin*c, tw*f)
#     Y = R @ B                                       (n*oh*nt, tw*f) = y (n, oh, ow, f)
#
# with ``tin = (tw - 1)*sw + (kw - 1)*dw + 1`` the input columns one tile's windows read. Output
# pixel ``(s, i, t*tw + j)`` sums ``xp[s, i*sh + a*dh, (t*tw + j)*sw + b*dw, ch] * W[a, b, ch, o]``
# over the same taps as im2col: B holds the kernel once per pixel of a tile, shifted by
# ``j*sw``, and is the same for every tile. Backward: ``dB = R.T @ G``, ``dW[a, b, ch, o] =
# sum_j dB[(a, j*sw + b*dw, ch), (j, o)]`` (B's diagonals summed), and ``dR = G @ B.T`` added back
# strip by strip (loops over ``kh`` and the few phases of overlapping tiles, never over pixels).


def row_windows(xp: np.ndarray, oh: int, kh: int, sh: int, dh: int, tiles: Pair, tin: int):
    """Read-only view ``(n, oh, nt, kh, tin, c)`` of ``xp`` ``(n, hp, wp, c)``, ``tiles =
    (nt, step)``: output row ``i``, tile ``t`` reads input rows ``i*sh + a*dh`` (``a < kh``),
    columns ``t*step .. t*step + tin - 1`` (``step = tw*sw``)."""
    n, _, _, c = xp.shape
    s0, s1, s2, s3 = xp.strides
    nt, step = tiles
    shape = (n, oh, nt, kh, tin, c)
    strides = (s0, s1 * sh, s2 * step, s1 * dh, s2, s3)
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def _band_taps(B: np.ndarray, kw: int, sw: int, dw: int) -> np.ndarray:
    """The view ``(kh, kw, c, tw, f)`` of the band ``B`` ``(kh, tin, c, tw, f)`` (C-contiguous)
    at its non-zero places: element ``(a, b, ch, j, o)`` is ``B[a, j*sw + b*dw, ch, j, o]``."""
    kh, _, c, tw, f = B.shape
    e0, e1, e2, e3, e4 = B.strides
    return as_strided(B, shape=(kh, kw, c, tw, f), strides=(e0, dw * e1, e2, sw * e1 + e3, e4))


def band_weight(W: np.ndarray, tw: int, tin: int, sw: int, dw: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (``kh*tin*c*tw*f`` elements) with the banded matrix ``B`` of ``W``
    ``(kh, kw, c, f)`` and return it as ``(kh*tin*c, tw*f)``: zeros, then ``W`` written once per
    pixel ``j`` of a tile, at input column ``j*sw + b*dw``."""
    kh, kw, c, f = W.shape
    B = out.reshape(kh, tin, c, tw, f)
    B.fill(0)
    _band_taps(B, kw, sw, dw)[...] = W[:, :, :, None, :]
    return out.reshape(kh * tin * c, tw * f)


def band_weight_grad(dB: np.ndarray, tw: int, sw: int, dw: int, out: np.ndarray) -> np.ndarray:
    """``out[a, b, ch, o] = sum_j dB[(a, j*sw + b*dw, ch), (j, o)]``, ``out`` ``(kh, kw, c, f)``:
    the gradient of ``W`` from that of its band ``dB`` ``(kh*tin*c, tw*f)`` (the adjoint of
    :func:`band_weight`)."""
    kh, kw, c, f = out.shape
    B5 = np.ascontiguousarray(dB).reshape(kh, -1, c, tw, f)
    np.add.reduce(_band_taps(B5, kw, sw, dw), axis=3, out=out)
    return out


def rows_col2im_add(dxp: np.ndarray, dR: np.ndarray, sh: int, dh: int, step: int) -> None:
    """Adjoint of :func:`row_windows`: ``dxp[s, i*sh + a*dh, t*step + p, ch] += dR[s, i, t, a, p,
    ch]`` for ``dR`` ``(n, oh, nt, kh, tin, c)``, in place. Tiles overlap when ``tin > step``:
    tiles ``q, q + P, q + 2P, ...`` with ``P = ceil(tin / step)`` never do, so each slice-add
    covers one kernel row ``a`` and one such phase ``q``."""
    _, oh, nt, kh, tin, c = dR.shape
    phases = min(nt, -(-tin // step))
    e0, e1, e2, e3 = dxp.strides
    for a in range(kh):
        for q in range(phases):
            tiles = dR[:, :, q::phases, a]
            start = dxp[:, a * dh :, q * step :]  # the strip's first element, as a view
            view = as_strided(
                start,
                shape=tiles.shape,
                strides=(e0, e1 * sh, e2 * step * phases, e2, e3),
            )
            view += tiles
