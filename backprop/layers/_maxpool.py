"""Max pooling kernels: shifted elementwise maxima over a flat buffer instead of window views.

With few channels (LeNet's 6), a per-offset window view ``xp[:, a::sh, b::sw, :]`` makes NumPy
loop over runs of only ``c`` elements, which costs far more than the arithmetic. Here the padded
map ``xp`` ``(n, hp, wp, c)``, C-contiguous, is read as one flat vector ``z`` of length
``L = n*hp*wp*c``. Window offset ``(a, b)`` (row ``a < kh``, column ``b < kw``) is the flat shift
``o(a, b) = a*wp*c + b*c``, and the window of output ``(s, i, j, ch)`` is anchored at
``p = ((s*hp + i*sh)*wp + j*sw)*c + ch``: its element at offset ``(a, b)`` is ``z[p + o(a, b)]``,
inside sample ``s``. Every pass below is a contiguous operation on shifted slices of a flat
vector; values computed at non-anchor positions are never read. Forward, for every ``p``::

    col[p] = max_{b < kw} z[p + b*c]           cidx[p] = first b reaching col[p]
    row[p] = max_{a < kh} col[p + a*wp*c]      idx[p]  = a'*kw + cidx[p + a'*wp*c],
                                                          a' = first a reaching row[p]
    y[s, i, j, ch] = row[p]                    (p the anchor of (s, i, j, ch))

Each stage folds its offsets in order and a later offset wins only when strictly greater, so
``idx[p]`` is the first maximal offset ``r = a*kw + b`` of the window in row-major order: the
first maximal column within each row, then the first row that holds the window maximum. The
stored ``idx`` is this flat vector (anchors meaningful, ``(n, hp, wp, c)`` when reshaped).
A NaN in a window makes ``y`` NaN (``np.maximum`` propagates it).

Backward, ``G = grad_out`` ``(n, oh, ow, c)`` and ``Gz`` the flat map holding ``G`` at the
anchors and 0 elsewhere::

    dxp[q] = sum over offsets r (in row-major order) of  Gz[q - o_r] * [idx[q - o_r] == r]

(each window adds its gradient at its first maximum). Windows that tile the padded map
(stride = pool size) share no position, so there the sum has one term: ``G`` is copied over
each window (``U``), ``idx`` is spread over it by shifted adds (``I``), and ``dxp = U`` where
``I`` equals the offset of the position in its window, 0 elsewhere. Gradients are selected with
integer bit masks (``bits & -1`` or ``& 0``), never multiplied by a 0/1 mask: an inf or NaN
gradient at a non-maximal position still gives 0, as the scatter-add ``0 + G`` does.

Samples are processed in chunks of about ``CHUNK_VALUES`` values (no window crosses a sample),
so that each pass stays in the CPU caches, and the temporaries of a chunk are carved from one
byte buffer that the caller may keep from step to step (``scratch``): fresh pages for large
temporaries, zeroed by the kernel at every call, cost more than the passes themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

Pair = tuple[int, int]
#: ``scratch(nbytes)`` -> a uint8 array of at least ``nbytes`` bytes, free for the call.
Scratch = Callable[[int], np.ndarray]

#: Values per chunk of samples. A pass over LeNet's whole first maps at batch 256 (1.2M values
#: per array) runs about 2x slower per value than over a chunk; chunks of 2^18 values were a
#: little faster still, but the scratch (about 11 bytes per value of a chunk in float32, 19 in
#: float64) would then exceed a whole batch-64 activation.
CHUNK_VALUES = 1 << 16


def fresh(nbytes: int) -> np.ndarray:
    """The default ``scratch``: a new buffer."""
    return np.empty(nbytes, dtype=np.uint8)


def _carve(specs: list[tuple[int, np.dtype]], scratch: Scratch) -> list[np.ndarray]:
    """Flat arrays of the given ``(size, dtype)``, cut one after another (8-byte aligned) from
    one ``scratch`` byte buffer."""
    ends = [-(-size * np.dtype(dt).itemsize // 8) * 8 for size, dt in specs]
    buf, out, pos = scratch(sum(ends)), [], 0
    for (size, dt), nbytes in zip(specs, ends, strict=True):
        out.append(buf[pos : pos + size * np.dtype(dt).itemsize].view(dt))
        pos += nbytes
    return out


def _runs(a: np.ndarray) -> np.ndarray:
    """``a`` ``(..., c)`` (last axis contiguous) seen as ``(...)`` opaque items of ``c`` values:
    copying such views moves a run of ``c`` values per step instead of looping over ``c``."""
    if a.shape[-1] == 1:
        return a[..., 0]
    return a.view(np.dtype((np.void, a.shape[-1] * a.itemsize)))[..., 0]


def _anchors(flat: np.ndarray, shape: tuple[int, ...], stride: Pair, out: Pair) -> np.ndarray:
    """The anchor positions of the flat map ``flat`` (``shape`` = ``(n, hp, wp, c)``) as a
    strided view ``(n, oh, ow, c)``."""
    (sh, sw), (oh, ow) = stride, out
    return flat.reshape(shape)[:, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, :]


def _bit_mask(eq: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Boolean ``eq`` -> ``out`` (signed integers as wide as the float): all bits set where
    True, 0 elsewhere. ``eq`` is overwritten (it is the caller's scratch)."""
    m = eq.view(np.int8)
    np.negative(m, out=m)  # 1 -> -1: every bit set, kept when widened
    np.copyto(out, m)
    return out


def _chunks(n: int, per: int) -> tuple[int, list[tuple[int, int]]]:
    """``(most, ranges)``: sample ranges ``[s0, s1)`` of about ``CHUNK_VALUES`` values (none
    for an empty batch) and the most samples any range holds."""
    step = max(1, CHUNK_VALUES // per)
    return min(n, step), [(s, min(n, s + step)) for s in range(0, n, step)]


def index_dtype(k: Pair) -> np.dtype:
    """The dtype of ``idx``: offsets ``0 .. kh*kw - 1``."""
    return np.dtype(np.uint8 if k[0] * k[1] <= 256 else np.uint32)


def _fold_max(src, step: int, k: int, out, idx_in, idx_out, kbase: int, better, cand) -> None:
    """One stage over flat vectors: ``out[p] = max_{t < k} src[p + t*step]`` (``out[p] = src[p]``
    where ``p + step`` runs past the end), folded in order so that ties keep the earlier offset.
    When ``idx_out`` is given, also ``idx_out[p] = t'*kbase + idx_in[p + t'*step]`` for the first
    maximal ``t'`` (``idx_in`` None: 0). ``out`` and ``idx_out`` must not overlap the inputs;
    ``better`` (bool) and ``cand`` (``idx_out``'s dtype) are scratch of ``src``'s length."""
    size = src.size
    for t in range(1, k):
        o = t * step
        m = size - o
        cur, new = (src if t == 1 else out)[:m], src[o:]
        if idx_out is not None:
            prev = idx_in if t == 1 else idx_out
            step_idx = idx_out.dtype.type(t * kbase)
            if prev is None and step_idx == 1 and idx_out.itemsize == 1:
                np.greater(new, cur, out=idx_out[:m].view(np.bool_))  # idx = [better]
                idx_out[m:] = 0
            elif prev is None:  # no earlier offset can win: idx = [better] * t*kbase
                b = np.greater(new, cur, out=better[:m])
                np.multiply(b.view(np.uint8), step_idx, out=idx_out[:m])
                idx_out[m:] = 0
            else:
                # "take offset t where strictly greater": its index t*kbase + idx_in exceeds
                # every earlier one, so this is a maximum with [better] * (its index)
                b = np.greater(new, cur, out=better[:m])
                c = cand[:m]
                if idx_in is None:
                    np.multiply(b.view(np.uint8), step_idx, out=c)
                else:
                    np.add(idx_in[o:], step_idx, out=c)
                    np.multiply(c, b.view(np.uint8), out=c)
                np.maximum(prev[:m], c, out=idx_out[:m])
                if t == 1:
                    idx_out[m:] = prev[m:]
        # NumPy's maximum returns its second argument on a tie (+0 vs -0): the earlier value
        np.maximum(new, cur, out=out[:m])
        if t == 1:
            out[m:] = src[m:]


def max_forward(
    xp: np.ndarray,
    k: Pair,
    stride: Pair,
    out: Pair,
    idx: np.ndarray | None = None,
    scratch: Scratch = fresh,
) -> np.ndarray:
    """``y`` ``(n, oh, ow, c)`` = the window maxima of ``xp`` ``(n, hp, wp, c)``; when ``idx``
    (flat, ``n*hp*wp*c`` of :func:`index_dtype`) is given, the first-maximum offsets are written
    into it (meaningful at the anchors). See the module docstring."""
    xp = np.ascontiguousarray(xp)
    n, hp, wp, c = xp.shape
    (kh, kw), per, dt = k, hp * wp * c, xp.dtype
    idt = index_dtype(k)
    y = np.empty((n, *out, c), dtype=dt)
    most, ends = _chunks(n, per)
    most *= per
    train = idx is not None
    col, row, cidx, better, cand = _carve(
        [
            (most if kw > 1 else 0, dt),
            (most if kh > 1 else 0, dt),
            (most if train and kw > 1 and kh > 1 else 0, idt),
            (most if train else 0, np.bool_),
            (most if train else 0, idt),
        ],
        scratch,
    )
    for s0, s1 in ends:
        size, z = (s1 - s0) * per, xp[s0:s1].reshape(-1)
        i_out = idx[s0 * per : s1 * per] if train else None
        value, i_col = z, None
        if kw > 1:
            i_col = None if not train else (cidx[:size] if kh > 1 else i_out)
            value = col[:size]
            _fold_max(z, c, kw, value, None, i_col, 1, better, cand)
        if kh > 1:
            _fold_max(value, wp * c, kh, row[:size], i_col, i_out, kw, better, cand)
            value = row[:size]
        if train and kh == kw == 1:
            i_out[:] = 0
        shape = (s1 - s0, hp, wp, c)
        np.copyto(_runs(y[s0:s1]), _runs(_anchors(value, shape, stride, out)))
    return y


def max_backward(
    g: np.ndarray,
    idx: np.ndarray,
    shape: tuple[int, ...],
    k: Pair,
    stride: Pair,
    scratch: Scratch = fresh,
) -> np.ndarray:
    """``dxp`` ``(n, hp, wp, c)`` for any windows: each offset ``r`` in row-major order adds
    ``Gz[q - o_r]`` where ``idx[q - o_r] == r`` (module docstring), so a position shared by
    overlapping windows sums their gradients in the order of the window-view scatter-add."""
    n, hp, wp, c = shape
    (kh, kw), per, it = k, hp * wp * c, np.dtype(f"i{g.itemsize}")
    dx = np.zeros(n * per, dtype=g.dtype)
    most, ends = _chunks(n, per)
    most *= per
    gz, eq, mask = _carve([(most, g.dtype), (most, np.bool_), (most, it)], scratch)
    for s0, s1 in ends:
        size = (s1 - s0) * per
        gzs = gz[:size]
        gzs.fill(0)
        np.copyto(_runs(_anchors(gzs, (s1 - s0, hp, wp, c), stride, g.shape[1:3])), _runs(g[s0:s1]))
        gi, ix, d = gzs.view(it), idx[s0 * per : s1 * per], dx[s0 * per : s1 * per]
        for r in range(kh * kw):
            a, b = divmod(r, kw)
            o = a * wp * c + b * c
            m = size - o
            part = _bit_mask(np.equal(ix[:m], r, out=eq[:m]), mask[:m])
            part &= gi[:m]
            d[o:] += part.view(g.dtype)
    return dx.reshape(shape)


def _spread(src: np.ndarray, step: int, k: int, out: np.ndarray) -> np.ndarray:
    """``out[p] = sum_{t < k} src[p - t*step]`` (terms before the start omitted), flat; ``out``
    (of ``src``'s length) must not overlap ``src``. ``k = 1`` returns ``src``."""
    if k == 1:
        return src
    out[:step] = src[:step]
    np.add(src[step:], src[:-step], out=out[step:])
    for t in range(2, k):
        out[t * step :] += src[: src.size - t * step]
    return out


@lru_cache(maxsize=32)
def _tile_patterns(map_shape: tuple[int, ...], k: Pair, out: Pair, dtype: np.dtype):
    """Per-sample flat patterns ``(hp*wp*c,)`` of tiling windows (read-only, cached): 1 at the
    anchors (0 elsewhere), and each position's offset ``(row % kh)*kw + col % kw`` in its
    window."""
    (hp, wp, c), (kh, kw), (oh, ow) = map_shape, k, out
    rows, cols = np.arange(hp), np.arange(wp)
    anchor = ((rows % kh == 0) & (rows < oh * kh))[:, None] & ((cols % kw == 0) & (cols < ow * kw))
    offset = (rows % kh)[:, None] * kw + cols % kw
    patterns = tuple(np.repeat(p.reshape(-1), c).astype(dtype) for p in (anchor, offset))
    for p in patterns:
        p.flags.writeable = False
    return patterns


def max_backward_tiled(
    g: np.ndarray, idx: np.ndarray, shape: tuple[int, ...], k: Pair, scratch: Scratch = fresh
) -> np.ndarray:
    """``dxp`` ``(n, hp, wp, c)`` for windows that tile the padded map (stride = pool size;
    trailing rows/columns no window covers get 0; padding is never a maximum, so gets 0).

    ``U``: ``G + 0`` copied to every position of its window (the ``+ 0`` turns -0 into 0, as
    the scatter-add ``0 + G`` does). ``I``: ``idx``, kept at the anchors (0 elsewhere) and spread
    over each window by shifted adds (the windows share no position, so each sum has one term
    that is not 0). ``dxp = U`` where ``I`` equals the position's own offset ``a*kw + b`` in its
    window, else 0."""
    n, hp, wp, c = shape
    (kh, kw), (oh, ow) = k, g.shape[1:3]
    per, it = hp * wp * c, np.dtype(f"i{g.itemsize}")
    cropped = hp != oh * kh or wp != ow * kw
    dx = np.zeros(shape, g.dtype) if cropped else np.empty(shape, g.dtype)
    anchor, offset = _tile_patterns(shape[1:], k, (oh, ow), idx.dtype)
    most, ends = _chunks(n, per)
    g0, i1, i2, eq, mask = _carve(
        [(most * oh * ow * c, g.dtype), *[(most * per, idx.dtype)] * 2]
        + [(most * per, np.bool_), (most * per, it)],
        scratch,
    )
    for s0, s1 in ends:
        ns, size = s1 - s0, (s1 - s0) * per
        d = dx[s0:s1]
        win = d[:, : oh * kh, : ow * kw].reshape(ns, oh, kh, ow, kw, c)
        gs = g0[: ns * oh * ow * c].reshape(g[s0:s1].shape)
        np.add(g[s0:s1], 0.0, out=gs)
        for b in range(kw):
            np.copyto(_runs(win[:, :, 0, :, b]), _runs(gs))
        for a in range(1, kh):
            win[:, :, a] = win[:, :, 0]
        at_anchor = np.multiply(
            idx[s0 * per : s1 * per].reshape(ns, per), anchor, out=i1[:size].reshape(ns, per)
        )
        spread = _spread(at_anchor.reshape(-1), c, kw, i2[:size])  # in i2 unless kw == 1
        spread = _spread(spread, wp * c, kh, i1[:size] if kw > 1 else i2[:size])
        same = np.equal(spread.reshape(ns, per), offset, out=eq[:size].reshape(ns, per))
        flat = d.view(it).reshape(ns, per)
        np.bitwise_and(flat, _bit_mask(same, mask[:size].reshape(ns, per)), out=flat)
    return dx
