"""How a convolution lowers its input to one matrix product, and in what chunks of samples.

Two lowerings (the maths of each in :mod:`~backprop.layers.conv` and
:mod:`~backprop.layers._windows`):

- **im2col**: one row per output pixel holding its ``kh x kw x c`` window, ``(n*oh*ow,
  kh*kw*c)``, against ``W2 = W.reshape(kh*kw*c, f)``. Its rows are ``kw*c`` contiguous elements
  per kernel row, so with few channels (LeNet's first layer: 5) the copy runs in tiny pieces and
  the product has a skinny ``K`` and ``f``.
- **rows**: one row per output row and tile of ``tw`` output pixels, holding the strip of ``kh``
  input rows by ``tin = (tw-1)*sw + (kw-1)*dw + 1`` columns that the tile reads, and a 1 for the
  bias, ``(n*oh*nt, kh*tin*c + 1)``, against the banded ``B`` ``(kh*tin*c + 1, tw*f)`` that holds
  the kernel once per pixel of the tile (and the bias in its last row). It does ``tin / kw``
  times im2col's multiply-adds (the zeros of ``B``) but copies long runs and gives BLAS a product
  ``tw*f`` wide.

``lowering = "auto"`` (the default) takes the rows when im2col's runs are short and the band is
not much more work::

    rows  iff  kh*kw > 1  and  kw*c < ROWS_BELOW_RUN  and  tin <= ROWS_MAX_INFLATION * kw

with ``tw`` the smallest divisor of ``ow`` for which ``tw*f >= ROWS_MIN_WIDTH`` (``ow`` if none
is). LeNet-5 on MNIST: the first layer (c = 1) lowers 4 tiles of 7 pixels (``tin = 11``, 2.2
times the multiply-adds), the second (c = 6) 2 tiles of 5 (``tin = 9``, 1.8 times); a 3x3
layer on 32 channels stays with im2col. Setting ``lowering`` (``"im2col"`` or ``"rows"``) or
``row_tile`` on an instance fixes the choice; both give the same numbers up to float rounding
for finite inputs (an inf or NaN input times the band's zeros makes NaN every output of the tiles
whose strips read it, where im2col touches only the outputs whose windows hold it).

Chunks: the batch is processed in chunks of ``ns`` samples whose padded input and lowered
matrix live in one buffer of this thread's workspace, shared by every convolution layer::

    ns = clip(floor(WORKSPACE_RATIO * n * max(in_size, out_size) / need), 1, n)
    need = (elements of one sample's lowered matrix) + (hp*wp*c if padded else 0)

evened out over ``ceil(n / ns)`` chunks (``chunk_samples`` on an instance fixes ``ns``).
"""

from __future__ import annotations

import math

import numpy as np

from ._windows import band_weight, copy_runs, im2col_copy, row_windows, shared_workspace
from .base import check_positive_int
from .spatial import SpatialLayer

#: A chunk's im2col workspace holds at most this many times the larger of a layer's input and
#: output activations of the whole batch (see the module docstring).
WORKSPACE_RATIO = 2.0

#: ``lowering="auto"`` takes the row lowering when im2col's rows would be short (``kw*c`` below
#: ``ROWS_BELOW_RUN`` elements) and the band costs at most ``ROWS_MAX_INFLATION`` times im2col's
#: multiply-adds (``tin / kw``, see the module docstring).
ROWS_BELOW_RUN = 64
ROWS_MAX_INFLATION = 8
#: The row lowering cuts the output width into tiles of ``tw`` pixels, the fewest pixels whose
#: ``tw*f`` outputs reach this many columns of the product (wide enough for BLAS to run well).
ROWS_MIN_WIDTH = 40
LOWERINGS = ("auto", "im2col", "rows")


def shared_workspace_nbytes() -> int:
    """Bytes held by this thread's convolution workspace (shared by every Conv1D/Conv2D)."""
    return shared_workspace().nbytes


def clear_shared_workspace() -> None:
    """Free this thread's convolution workspace (it is re-made, sized anew, on the next call)."""
    shared_workspace().clear()


class LoweredConv(SpatialLayer):
    """The lowering and chunking of a convolution (base of Conv1D/Conv2D; see the module
    docstring). Instance settings: ``lowering``, ``row_tile``, ``chunk_samples``."""

    filters: int

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_samples: int | None = None  # None: the WORKSPACE_RATIO rule
        self.lowering = "auto"  # "im2col" or "rows" fixes how forward lowers to a product
        self.row_tile: int | None = None  # output pixels per tile of the row lowering

    # -- chunks -----------------------------------------------------------------------------------
    def _chunk(self, n: int) -> int:
        """Samples per chunk for a batch of ``n`` (see the module docstring)."""
        if self.chunk_samples is not None:
            ns = check_positive_int("chunk_samples", self.chunk_samples)
        else:
            c = self.in_shape[-1]
            need = math.prod(self._lowered_shape(1)) + (
                math.prod(self._padded_shape(1, c)) if self._pad else 0
            )
            act = max(math.prod(self.in_shape), math.prod(self.out_shape))
            ns = int(WORKSPACE_RATIO * n * act // need)
        if n == 0:
            return 1  # an empty batch: no chunk at all (and nothing to divide by)
        ns = min(n, max(1, ns))
        return -(-n // -(-n // ns))  # the same count of chunks, evened out

    def _rows(self) -> bool:
        """True when forward uses the row lowering (``lowering``, or the ``"auto"`` rule)."""
        if self.lowering not in LOWERINGS:
            raise ValueError(f"lowering must be one of {LOWERINGS}, got {self.lowering!r}")
        if self.lowering != "auto":
            return self.lowering == "rows"
        (kh, kw), c = self._k2, self.in_shape[-1]
        if kh * kw == 1 or kw * c >= ROWS_BELOW_RUN:
            return False
        if self.row_tile is not None:
            return self._tin <= ROWS_MAX_INFLATION * kw
        # tin <= ROWS_MAX_INFLATION * kw  <=>  tw <= widest: only tiles up to widest need looking
        # at (the rule's tile is then found, or is wider and the band too much work)
        widest = (ROWS_MAX_INFLATION * kw - (kw - 1) * self._d2[1] - 1) // self._s2[1] + 1
        return self._rule_tile(widest) is not None

    def _rule_tile(self, widest: int) -> int | None:
        """The rule's tile (the smallest divisor ``tw`` of ``ow`` with ``tw*f >= ROWS_MIN_WIDTH``,
        ``ow`` when none is) if it is at most ``widest``, else None. Kept per ``(ow, f, widest)``:
        asked many times a step. The search tries tiles up to ``widest`` (at most 4096 of them),
        then, if the tile may be wider still, the divisor pairs ``(t, ow // t)``, ``t <= sqrt(ow)``
        (a loop up to ``ow`` took minutes for the widths a forged padding or dilation makes).
        (Not named ``_auto_tile``: layers pickled before hold their cache under that name.)"""
        ow, f = self._out2[1], self.filters
        key = (ow, f, widest, ROWS_MIN_WIDTH)
        cache = self.__dict__.setdefault("_auto_tiles", {})
        if key not in cache:
            first = -(-ROWS_MIN_WIDTH // f)  # the narrowest tile wide enough
            near = range(first, min(widest, ow, max(first, 4096)) + 1)
            tile = ow if ow <= first else next((t for t in near if ow % t == 0), None)
            if tile is None and min(widest, ow) > near.stop - 1:  # beyond the first 4096
                small = [t for t in range(1, math.isqrt(ow) + 1) if ow % t == 0]
                tile = min(t for t in small + [ow // t for t in small] if t >= first)
            cache[key] = tile if tile is not None and tile <= widest else None
        return cache[key]

    @property
    def _tile(self) -> int:
        """Output pixels per tile of the row lowering: ``row_tile`` if set, else the smallest
        divisor ``tw`` of ``ow`` with ``tw*f >= ROWS_MIN_WIDTH`` (``ow`` when none is)."""
        ow = self._out2[1]
        if self.row_tile is not None:
            check_positive_int("row_tile", self.row_tile)
            if ow % self.row_tile:
                raise ValueError(f"row_tile must divide the output width {ow}, got {self.row_tile}")
            return self.row_tile
        return self._rule_tile(ow)

    @property
    def _tin(self) -> int:
        """Input columns read by one tile's windows: ``(tw-1)*sw + (kw-1)*dw + 1``."""
        return (self._tile - 1) * self._s2[1] + (self._k2[1] - 1) * self._d2[1] + 1

    def _lowered_shape(self, ns: int) -> tuple[int, int]:
        """The lowered matrix of ``ns`` samples: ``R`` ``(ns*oh*nt, kh*tin*c + 1)`` (its last
        column all ones, for the bias) or im2col's ``(ns*oh*ow, kh*kw*c)``."""
        (oh, ow), (kh, kw), c = self._out2, self._k2, self.in_shape[-1]
        if self._rows():
            return ns * oh * (ow // self._tile), kh * self._tin * c + 1
        return ns * oh * ow, kh * kw * c

    @property
    def _pad(self) -> bool:
        return any(p != 0 for pair in self._pads for p in pair)

    def _chunk_buffers(self, ns: int, dtype: np.dtype, training: bool) -> list[np.ndarray]:
        """``[xp, cols]`` (``[cols]`` without padding) for chunks of up to ``ns`` samples: views
        of the shared workspace while training, fresh arrays at inference."""
        shapes = [self._lowered_shape(ns)]
        if self._pad:
            c = self.in_shape[-1]
            shapes.insert(0, self._padded_shape(ns, c))
        if training:
            return shared_workspace().get_many(f"conv-{dtype}", shapes, dtype)
        return [np.empty(shape, dtype=dtype) for shape in shapes]

    def _chunk_cols(self, xc: np.ndarray, bufs: list[np.ndarray], rows: bool) -> np.ndarray:
        """The lowered matrix of the chunk ``xc`` ``(ns, h, w, c)`` in the chunk buffers: ``R``
        ``(ns*oh*nt, kh*tin*c + 1)`` (strips, then a column of ones) when ``rows``, else
        im2col's ``(ns*oh*ow, K)`` (the padded copy rewrites its whole border and ``R`` its
        ones: other layers share the buffer)."""
        ns = xc.shape[0]
        (oh, ow), (kh, kw), (sh, _), (dh, _) = self._out2, self._k2, self._s2, self._d2
        c = xc.shape[-1]
        src = xc
        if self._pad:
            (t, _), (left, _) = self._pads
            h, w = xc.shape[1:3]
            src = bufs[0][:ns]
            src[:, :t] = 0
            src[:, t + h :] = 0
            src[:, t : t + h, :left] = 0
            src[:, t : t + h, left + w :] = 0
            src[:, t : t + h, left : left + w] = xc
        if rows:
            tw, tin = self._tile, self._tin
            R = bufs[-1][: ns * oh * (ow // tw)]
            view = row_windows(src, oh, kh, sh, dh, (ow // tw, tw * self._s2[1]), tin)
            strips = R[:, :-1].reshape(view.shape)  # a view: R's rows split, columns unsplit
            copy_runs(strips, view)
            R[:, -1] = 1
            return R
        cols = bufs[-1][: ns * oh * ow]
        im2col_copy(cols.reshape(ns, oh, ow, kh, kw, c), self._windows(src))
        return cols

    def _band_matrix(self, training: bool) -> np.ndarray:
        """The row lowering's ``B`` ``(kh*tin*c + 1, tw*f)`` of the current ``W`` and ``b``: the
        band (module docstring), then the bias once per pixel of a tile (``R``'s ones column
        adds it); in this layer's buffer while training."""
        W = self.params["W"]
        tw, tin, sw, dw = self._tile, self._tin, self._s2[1], self._d2[1]
        (kh, kw), (c, f) = self._k2, W.shape[-2:]
        K = kh * tin * c
        buf = self._scratch("band", ((K + 1) * tw * f,), W.dtype, training)
        B = buf.reshape(K + 1, tw * f)
        band_weight(W.reshape(kh, kw, c, f), tw, tin, sw, dw, B[:K].reshape(-1))
        B[K].reshape(tw, f)[...] = self.params["b"]
        return B
