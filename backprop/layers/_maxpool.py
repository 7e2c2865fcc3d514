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
(stride = pool size) share no position, so there the sum has one term: ``Gz`` is
spread over each window by ``kw - 1`` column and ``kh - 1`` row shifted adds (``U``, and the
same for ``idx``: ``I``), and ``dxp = U`` where ``I`` equals the offset of the position in its
window, 0 elsewhere. Gradients are selected with integer bit masks (``bits & -1`` or ``& 0``),
never multiplied by a 0/1 mask: an inf or NaN gradient at a non-maximal position still gives 0,
as the scatter-add ``0 + G`` does.
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]


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


def _bit_mask(eq: np.ndarray, itemsize: int) -> np.ndarray:
    """Boolean ``eq`` -> integers of ``itemsize`` bytes, all bits set where True, 0 elsewhere."""
    m = eq.view(np.int8)
    np.negative(m, out=m)  # 1 -> -1 (every bit set); eq is the caller's scratch array
    return m.astype(np.dtype(f"i{itemsize}"))


def _fold_max(src, step: int, k: int, out, idx_in, idx_out, kbase: int) -> None:
    """One stage over flat vectors: ``out[p] = max_{t < k} src[p + t*step]`` (``out[p] = src[p]``
    where ``p + step`` runs past the end), folded in order so that ties keep the earlier offset.
    When ``idx_out`` is given, also ``idx_out[p] = t'*kbase + idx_in[p + t'*step]`` for the first
    maximal ``t'`` (``idx_in`` None: 0). ``out`` and ``idx_out`` must not overlap the inputs."""
    size = src.size
    for t in range(1, k):
        o = t * step
        m = size - o
        cur, new = (src if t == 1 else out)[:m], src[o:]
        if idx_out is not None:
            prev = idx_in if t == 1 else idx_out
            step_idx = idx_out.dtype.type(t * kbase)
            if prev is None:  # no earlier offset can win: idx = [better] * t*kbase
                dst = idx_out[:m]
                if dst.itemsize == 1:
                    np.greater(new, cur, out=dst.view(bool))
                else:
                    dst[...] = np.greater(new, cur)
                if step_idx != 1:
                    dst *= step_idx
                idx_out[m:] = 0
            else:
                b8 = np.greater(new, cur).view(np.uint8)
                # "take offset t where strictly greater": its index t*kbase + idx_in exceeds
                # every earlier one, so this is a maximum with [better] * (its index)
                cand = b8 * step_idx if idx_in is None else idx_in[o:] + step_idx
                if idx_in is not None:
                    cand *= b8
                np.maximum(prev[:m], cand, out=idx_out[:m])
                if t == 1:
                    idx_out[m:] = prev[m:]
        # NumPy's maximum returns its second argument on a tie (+0 vs -0): the earlier value
        np.maximum(new, cur, out=out[:m])
        if t == 1:
            out[m:] = src[m:]


def _index_dtype(k: Pair) -> np.dtype:
    return np.dtype(np.uint8 if k[0] * k[1] <= 256 else np.uint32)


def max_forward(xp: np.ndarray, k: Pair, stride: Pair, out: Pair, training: bool):
    """``y`` ``(n, oh, ow, c)`` = the window maxima of ``xp`` ``(n, hp, wp, c)``, and when
    training the flat first-maximum offsets ``idx`` (length ``n*hp*wp*c``, read at the anchors;
    else None). See the module docstring."""
    xp = np.ascontiguousarray(xp)
    n, hp, wp, c = xp.shape
    (kh, kw), z = k, xp.reshape(-1)
    idt = _index_dtype(k)
    col, cidx = z, None
    if kw > 1:
        col = np.empty_like(z)
        cidx = np.empty(z.size, idt) if training else None
        _fold_max(z, c, kw, col, None, cidx, 1)
    row, ridx = col, cidx
    if kh > 1:
        row = np.empty_like(z)
        ridx = np.empty(z.size, idt) if training else None
        _fold_max(col, wp * c, kh, row, cidx, ridx, kw)
    if training and ridx is None:
        ridx = np.zeros(z.size, idt)  # a 1x1 window
    y = np.empty((n, *out, c), dtype=xp.dtype)
    np.copyto(_runs(y), _runs(_anchors(row, xp.shape, stride, out)))
    return y, ridx


def max_backward(g: np.ndarray, idx: np.ndarray, shape: tuple[int, ...], k: Pair, stride: Pair):
    """``dxp`` ``(n, hp, wp, c)`` for any windows: each offset ``r`` in row-major order adds
    ``Gz[q - o_r]`` where ``idx[q - o_r] == r`` (module docstring), so a position shared by
    overlapping windows sums their gradients in the order of the window-view scatter-add."""
    _, hp, wp, c = shape
    (kh, kw), it = k, np.dtype(f"i{g.itemsize}")
    gz = np.zeros(int(np.prod(shape)), dtype=g.dtype)
    np.copyto(_runs(_anchors(gz, shape, stride, g.shape[1:3])), _runs(g))
    gz = gz.view(it)
    dx = np.zeros(gz.size, dtype=g.dtype)
    for r in range(kh * kw):
        a, b = divmod(r, kw)
        o = a * wp * c + b * c
        m = gz.size - o
        part = _bit_mask(idx[:m] == r, g.itemsize)
        part &= gz[:m]
        dx[o:] += part.view(g.dtype)
    return dx.reshape(shape)


def _spread(src: np.ndarray, step: int, k: int) -> np.ndarray:
    """``out[p] = sum_{t < k} src[p - t*step]`` (terms before the start omitted), flat."""
    if k == 1:
        return src
    out = np.empty_like(src)
    out[:step] = src[:step]
    np.add(src[step:], src[:-step], out=out[step:])
    for t in range(2, k):
        out[t * step :] += src[: src.size - t * step]
    return out


def max_backward_tiled(g: np.ndarray, idx: np.ndarray, shape: tuple[int, ...], k: Pair):
    """``dxp`` ``(n, hp, wp, c)`` for windows that tile the padded map (stride = pool size;
    trailing rows/columns no window covers get 0; padding is never a maximum, so gets 0).

    ``U``: ``G + 0`` copied to every position of its window (the ``+ 0`` turns -0 into 0, as
    the scatter-add ``0 + G`` does). ``I``: ``idx``, kept at the anchors (0 elsewhere) and spread
    over each window by shifted adds (the windows share no position, so each sum has one term
    that is not 0). ``dxp = U`` where ``I`` equals the position's own offset ``a*kw + b`` in its
    window, else 0."""
    n, hp, wp, c = shape
    (kh, kw), (oh, ow) = k, g.shape[1:3]
    it = np.dtype(f"i{g.itemsize}")
    cropped = hp != oh * kh or wp != ow * kw
    dx = np.zeros(shape, g.dtype) if cropped else np.empty(shape, g.dtype)
    win = dx[:, : oh * kh, : ow * kw].reshape(n, oh, kh, ow, kw, c)
    g0 = _runs(g + 0.0)
    for b in range(kw):
        np.copyto(_runs(win[:, :, 0, :, b]), g0)
    for a in range(1, kh):
        win[:, :, a] = win[:, :, 0]
    rows, cols = np.arange(hp), np.arange(wp)
    anchor = ((rows % kh == 0) & (rows < oh * kh))[:, None] & ((cols % kw == 0) & (cols < ow * kw))
    offset = ((rows % kh)[:, None] * kw + cols % kw).astype(idx.dtype)
    at_anchor = idx.reshape(n, -1) * np.repeat(anchor.reshape(-1), c)
    spread = _spread(_spread(at_anchor.reshape(-1), c, kw), wp * c, kh)
    eq = spread.reshape(n, -1) == np.repeat(offset.reshape(-1), c)
    flat = dx.view(it).reshape(n, -1)
    np.bitwise_and(flat, _bit_mask(eq, g.itemsize), out=flat)
    return dx
