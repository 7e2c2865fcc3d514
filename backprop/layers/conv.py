"""Convolution layers, channels last: Conv2D on ``(n, h, w, c)`` and Conv1D on ``(n, t, c)``.

Notation (2-D; Conv1D is the case ``h = kh = 1``): input ``x`` ``(n, h, w, c)``, padded to
``xp`` ``(n, hp, wp, c)``; weight ``W`` ``(kh, kw, c, f)``; bias ``b`` ``(f,)``; stride
``(sh, sw)``; dilation ``(dh, dw)``; output ``y`` ``(n, oh, ow, f)`` with
``oh = (hp - dh*(kh-1) - 1) // sh + 1`` (likewise ``ow``). Like every deep-learning library we
compute a cross-correlation and call it a convolution::

    y[s, i, j, o] = b[o] + sum_{a, b', ch} xp[s, i*sh + a*dh, j*sw + b'*dw, ch] * W[a, b', ch, o]

Matrix form (im2col). With ``m = n*oh*ow`` output positions and ``K = kh*kw*c`` taps::

    X  = im2col(xp)          (m, K)    row (s, i, j) = the window under output (s, i, j), in
                                       (a, b', ch) order: a strided view copied once
    W2 = W.reshape(K, f)     (K, f)
    Y  = X @ W2 + b          (m, f)    -> y = Y.reshape(n, oh, ow, f)

Backward, with ``G = dL/dy`` reshaped to ``(m, f)``. Differentiating ``Y = X @ W2 + b`` as for a
Dense layer whose "samples" are the m output positions::

    dW2 = X.T @ G            (K, f)    dW[a, b', ch, o] = sum_{s,i,j} xp[s, i*sh + a*dh,
                                       j*sw + b'*dw, ch] * G[s, i, j, o]: the correlation of the
                                       input with the output gradient (dilated by the stride)
    db  = G.sum(axis=0)      (f,)
    dX  = G @ W2.T           (m, K)    the gradient of every window copy (computed offset-major:
                                       (kh*kw, m, c), block (a, b') = G @ W[a, b'].T)
    dxp = col2im(dX)         (n, hp, wp, c)  each window copy added back where it was read from

Written per input pixel, col2im gives ::

    dxp[s, p, q, ch] = sum_{a, b', o} G[s, (p - a*dh)/sh, (q - b'*dw)/sw, o] * W[a, b', ch, o]

over the offsets for which ``(p - a*dh)/sh`` and ``(q - b'*dw)/sw`` are whole and inside the
output: the *full* correlation of the output gradient (stride-dilated: ``sh - 1`` zeros between
rows, and zero-padded by ``dh*(kh-1)`` on each side) with the kernel flipped in both spatial axes,
dilated by ``(dh, dw)`` as in the forward pass and transposed in its channel axes. col2im
loops over the ``kh*kw`` offsets ``(a, b')``, each one a strided slice-add over every sample,
position and channel; it never loops over pixels. ``dx`` is ``dxp`` without its padding.

The row lowering (few channels). im2col's rows are runs of ``kw*c`` elements; with one input
channel that is 5 numbers, so copying them dominates. Instead, for tiles of ``tw`` output pixels
(``nt = ow / tw`` per output row) and ``tin = (tw-1)*sw + (kw-1)*dw + 1`` input columns::

    R  = rows(xp)            (n*oh*nt, kh*tin*c)   row (s, i, t) = the strip xp[s, i*sh + a*dh,
                                                   t*tw*sw + p, ch] for a < kh, p < tin
    B  = band(W)             (kh*tin*c, tw*f)      B[(a, j*sw + b'*dw, ch), (j, o)] = W[a, b', ch, o],
                                                   zero elsewhere: the kernel once per pixel j
    Y  = R @ B (+ b)         (n*oh*nt, tw*f)       the same memory as y (n, oh, ow, f)
    dB = R.T @ G;  dW[a, b', ch, o] = sum_j dB[(a, j*sw + b'*dw, ch), (j, o)]
    dR = G @ B.T;  dxp += rows^T(dR)               one slice-add per kernel row and tile phase

Each output still sums exactly the taps of the definition; ``B``'s zeros cost ``tin / kw`` times
im2col's multiply-adds, paid back by long copies and a product wide enough for BLAS. The bias
rides in the product: ``R`` ends with a column of ones and ``B`` with a row holding ``b`` once
per pixel ``j``, so ``R @ B`` adds it (no pass over ``y``), and the last row of ``dB`` sums
``G``: ``db[o] = sum_j dB[-1, (j, o)]`` (``dR`` leaves that column out).
:mod:`~backprop.layers.lowering` says which lowering a layer takes and why.

Memory: chunks of samples and one shared workspace. The batch is processed in chunks of ``ns``
samples (the rows of the chunk's samples in the matrices above; the last chunk may be shorter).
For each chunk ``[s0, s1)``, with ``L`` the lowering (im2col or rows) and ``M`` its weight
matrix (``W2`` or ``B``)::

    forward:   xpc  = pad(x[s0:s1])                  (ns, hp, wp, c)   only when padded
               Lc   = L(xpc)                         the chunk's lowered matrix
               Y[rows of the chunk] = Lc @ M         one product per chunk; then Y += b
    backward:  Lc   = L(pad(x[s0:s1])) again,        from the input kept since forward
               dM  += Lc.T @ Gc                      Gc = G[rows of the chunk]
               dLc  = Gc @ M.T  into Lc's buffer     (im2col: offset-major (kh*kw, rows, c))
               dxp[s0:s1] += L^T(dLc)                col2im: loops over kernel offsets only
    db = the sum of G over samples and positions, once.

The sums over rows split into sums over chunks, so the result equals the unchunked one up to
float rounding. ``xpc`` and ``Lc`` live in one buffer of this thread's workspace that *every*
convolution layer shares (:func:`~backprop.layers._windows.shared_workspace`): a layer keeps
only a reference to its input between forward and backward (an activation the network holds
anyway), so nothing of the workspace outlives a call and the buffer is sized by the largest
chunk of any layer, reused from step to step. The chunk size (:mod:`~backprop.layers.lowering`)
keeps the workspace within ``WORKSPACE_RATIO`` times the largest activation of the batch (or one
sample's need when that is larger). The price is a second lowering copy per step in backward
(none for a frozen layer); ``chunk_samples`` on an instance fixes ``ns`` (tests compare chunked
and unchunked results with it). Inference uses fresh arrays of the same chunk size, so
predicting in large batches leaves no large buffer behind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ._windows import band_weight_grad, col2im_add, rows_col2im_add
from .base import check_positive_int
from .lowering import (  # noqa: F401  (re-exported: they were this module's first)
    LOWERINGS,
    ROWS_BELOW_RUN,
    ROWS_MAX_INFLATION,
    ROWS_MIN_WIDTH,
    WORKSPACE_RATIO,
    LoweredConv,
    clear_shared_workspace,
    shared_workspace_nbytes,
)
from .registry import register_layer
from .spatial import Ints, Padding


class _Conv(LoweredConv):
    """Shared Conv1D/Conv2D maths; subclasses fix ``ndim``."""

    held_by_model = False  # freed in backward mid-step: Sequential._held keeping it raised the peak

    def __init__(
        self,
        filters: int,
        kernel_size: Ints,
        stride: Ints = 1,
        padding: Padding = "valid",
        dilation: Ints = 1,
        init: str | Any = "auto",
        bias_init: str | Any = "zeros",
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation)
        self.filters = check_positive_int("filters", filters)
        if init != "auto":
            initializers.get(init)
        initializers.get(bias_init)
        self.init = init
        self.bias_init = bias_init
        self.auto_init = "glorot_uniform"  # a Sequential picks He before a ReLU
        self._x: np.ndarray | None = None  # the input, kept from forward to backward
        self._band: np.ndarray | None = None  # the row lowering's B, kept for backward

    def _out_channels(self, c_in: int) -> int:
        return self.filters

    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        if self.out_shape is None:
            raise RuntimeError(f"{type(self).__name__}: call build(in_shape) before param_specs()")
        c = self.in_shape[-1]
        return {
            "W": ((*self.kernel_size, c, self.filters), "weight"),
            "b": ((self.filters,), "other"),
        }

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw ``W`` as a ``(kh*kw*c, f)`` matrix (fan_in = kh*kw*c, fan_out = f), bias from
        ``bias_init``."""
        W, b, name = self.params["W"], self.params["b"], type(self).__name__
        init = self.auto_init if self.init == "auto" else self.init
        shape = (W.size // self.filters, self.filters)
        W[...] = initializers.draw(init, shape, rng, W.dtype, f"init of {name}").reshape(W.shape)
        b[...] = initializers.draw(self.bias_init, b.shape, rng, b.dtype, f"bias_init of {name}")

    def _W2(self, store: dict[str, np.ndarray]) -> np.ndarray:
        W = store["W"]
        return W.reshape(W.size // self.filters, self.filters)

    # -- computation --------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y = lowered(pad(x)) @ W2 + b`` (im2col and ``W2``, or the row lowering ``R`` and
        its band ``B``), chunk by chunk: ``(n, *in_shape)`` -> ``(n, *out_shape)``."""
        x4 = self._input4(x)
        if not self.params:
            raise self._unallocated()
        n = x4.shape[0]
        (oh, ow), f = self._out2, self.filters
        rows = self._rows()
        W2 = self._band_matrix(training) if rows else self._W2(self.params)
        dtype = np.result_type(x4.dtype, W2.dtype)
        ns = self._chunk(n)
        bufs = self._chunk_buffers(ns, dtype, training)
        y = np.empty((n, oh, ow, f), dtype=dtype)
        r = oh * ow // self._tile if rows else oh * ow  # lowered rows per sample
        Y = y.reshape(n * r, oh * ow * f // r)
        for s0 in range(0, n, ns):
            s1 = min(n, s0 + ns)
            np.matmul(self._chunk_cols(x4[s0:s1], bufs, rows), W2, out=Y[s0 * r : s1 * r])
        if not rows:  # (the row lowering adds it in the product, by R's column of ones)
            # the bias tiled along a whole output row: adding (f,) per pixel runs f-long loops
            y.reshape(n * oh, ow * f)[...] += np.tile(self.params["b"], ow)
        self._x = x4 if training else None
        self._band = W2 if rows and training else None
        return y.reshape(n, *self.out_shape)

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        """``dW2 = sum over chunks of Xc.T @ Gc`` and ``db = sum_rows G`` (module docstring)."""
        self._backward(grad_out, need_dx=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dW2 = X.T @ G``, ``db = sum_rows G``, ``dx = unpad(col2im(G @ W2.T))``, chunk by
        chunk with the lowered matrix recomputed from the kept input (for the row lowering
        ``dB = R.T @ G`` folded into ``dW``, and ``dR = G @ B.T`` added back row by row).

        ``grad_out`` is ``(n, *out_shape)``; returns ``(n, *in_shape)``.
        """
        return self._backward(grad_out, need_dx=True)

    def _backward(self, grad_out: np.ndarray, need_dx: bool) -> np.ndarray | None:
        if self._x is None:
            raise self._missing_cache()
        x4, self._x = self._x, None
        B, self._band = self._band, None
        n = x4.shape[0]
        (oh, ow), (kh, kw) = self._out2, self._k2
        c, f = x4.shape[-1], self.filters
        rows = B is not None
        tw = self._tile if rows else 1  # (row_tile means nothing to im2col: never checked there)
        r = oh * ow // tw if rows else oh * ow  # lowered rows per sample
        G = grad_out.reshape(n * r, oh * ow * f // r)
        W = self.params["W"]
        if self.trainable:
            dW2 = self._scratch("dband", B.shape, B.dtype, True) if rows else self._W2(self.grads)
            if not rows:  # (the row lowering's dB holds it: the row of R's ones column)
                # db = sum of G over samples and positions: over whole output rows first, then
                # over the ow pixels of a row (a reduce to (f,) directly runs f-long loops)
                row_sum = np.add.reduce(grad_out.reshape(n * oh, ow * f), axis=0)
                np.add.reduce(row_sum.reshape(ow, f), axis=0, out=self.grads["b"])
        else:
            self.zero_grads()
            if not need_dx:
                return None
        dtype = np.result_type(x4.dtype, W.dtype)
        ns = self._chunk(n)
        bufs = self._chunk_buffers(ns, dtype, training=True)
        dxp = np.zeros(self._padded_shape(n, c), dtype=dtype) if need_dx else None
        # im2col's dX = G @ W2.T offset-major: block (a, b) = Gc @ W[a, b].T, shape (rows, c);
        # the row lowering's dR = G @ B.T without the bias row (its column of R is constant).
        Wt = B[:-1].T if rows else W.reshape(kh * kw, c, f).transpose(0, 2, 1)
        if self.trainable and n == 0:
            dW2.fill(0)  # no chunk writes it: an empty batch has zero gradients
        for s0 in range(0, n, ns):
            s1 = min(n, s0 + ns)
            Gc = G[s0 * r : s1 * r]
            if self.trainable:
                cols = self._chunk_cols(x4[s0:s1], bufs, rows)
                if s0 == 0:
                    np.matmul(cols.T, Gc, out=dW2)
                else:
                    dW2 += cols.T @ Gc  # a (K, f) temporary
            if not need_dx:
                continue
            # the lowered matrix is no longer needed: its buffer takes its gradient (for the
            # row lowering without the ones column, so as one block of (rows, kh*tin*c))
            out = bufs[-1][: (s1 - s0) * r]
            if rows:
                out = bufs[-1].reshape(-1)[: out.shape[0] * Wt.shape[1]].reshape(-1, Wt.shape[1])
                dR = np.matmul(Gc, Wt, out=out).reshape(s1 - s0, oh, ow // tw, kh, self._tin, c)
                rows_col2im_add(dxp[s0:s1], dR, self._s2[0], self._d2[0], tw * self._s2[1])
            else:
                blocks = np.matmul(Gc, Wt, out=out.reshape(kh * kw, (s1 - s0) * r, c))
                blocks = blocks.reshape(kh, kw, s1 - s0, oh, ow, c)
                col2im_add(dxp[s0:s1], blocks, self._s2, self._d2)
        if rows and self.trainable:
            Wg = self.grads["W"].reshape(kh, kw, c, f)
            band_weight_grad(dW2[:-1], tw, self._s2[1], self._d2[1], out=Wg)
            np.add.reduce(dW2[-1].reshape(tw, f), axis=0, out=self.grads["b"])  # ones' row
        return self._unpad(dxp) if need_dx else None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"filters": self.filters, **self._spatial_config()}
        cfg["dilation"] = self.dilation[0] if len(set(self.dilation)) == 1 else list(self.dilation)
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if isinstance(self.bias_init, str):
            cfg["bias_init"] = self.bias_init
        return cfg


@register_layer
class Conv2D(_Conv):
    """2-D convolution on channels-last images ``(n, h, w, c)`` -> ``(n, oh, ow, filters)``.

    Parameters
    ----------
    filters : int
        Number of output channels ``f``.
    kernel_size : int or (int, int)
        ``k`` or ``(kh, kw)``.
    stride : int or (int, int), default 1
        ``s`` or ``(sh, sw)``.
    padding : str, int or (int, int), default "valid"
        ``"valid"`` (none), ``"same"`` (``oh = ceil(h / sh)``; an odd total puts the extra
        row/column after, as TensorFlow does) or an int ``p`` (or ``(ph, pw)``) of zeros on both
        sides.
    dilation : int or (int, int), default 1
        ``d`` or ``(dh, dw)``: the kernel reads every d-th input.
    init : str or callable, default "auto"
        Weight initializer name or ``"auto"`` (He before a ReLU inside a Sequential, Glorot
        otherwise), with ``fan_in = kh*kw*c`` and ``fan_out = f``.
    bias_init : str or callable, default "zeros"
        Bias initializer name.

    Notes
    -----
    Learned parameters: ``W`` ``(kh, kw, c_in, filters)`` and ``b`` ``(filters,)``.
    """

    ndim = 2


@register_layer
class Conv1D(_Conv):
    """1-D convolution on sequences ``(n, t, c)`` -> ``(n, ot, filters)``.

    Same arguments as :class:`Conv2D` with ints for ``kernel_size``, ``stride``, ``padding`` and
    ``dilation``. Parameters: ``W`` ``(k, c_in, filters)`` and ``b`` ``(filters,)``.

    Parameters
    ----------
    filters : int
        Number of output channels.
    kernel_size : Ints
        Kernel length ``k``.
    stride : Ints, default 1
        Step between kernel positions.
    padding : Padding, default 'valid'
        "valid", "same" or an int of zeros on each side.
    dilation : Ints, default 1
        Spacing between kernel taps.
    init : str | Any, default 'auto'
        Weight initializer name or callable ("auto": He before the ReLU family, Glorot otherwise).
    bias_init : str | Any, default 'zeros'
        Bias initializer name or callable.
    """

    ndim = 1
