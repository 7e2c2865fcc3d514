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
rows) with the kernel flipped in both spatial axes and transposed in its channel axes. col2im
loops over the ``kh*kw`` offsets ``(a, b')``, each one a strided slice-add over every sample,
position and channel; it never loops over pixels. ``dx`` is ``dxp`` without its padding.

Memory: chunks of samples and one shared workspace. The batch is processed in chunks of ``ns``
samples (rows ``s0*oh*ow`` to ``s1*oh*ow`` of the matrices above; the last chunk may be
shorter). For each chunk ``[s0, s1)``::

    forward:   xpc  = pad(x[s0:s1])                  (ns, hp, wp, c)   only when padded
               Xc   = im2col(xpc)                    (ns*oh*ow, K)
               Y[rows of the chunk] = Xc @ W2        one product per chunk; then Y += b
    backward:  Xc   = im2col(pad(x[s0:s1])) again,   from the input kept since forward
               dW2 += Xc.T @ Gc                      Gc = G[rows of the chunk]  (ns*oh*ow, f)
               dXc  = Gc @ W2.T  into Xc's buffer    (offset-major: (kh*kw, ns*oh*ow, c))
               dxp[s0:s1] += col2im(dXc)             loops over the kh*kw offsets only
    db = G.sum(axis=0) over the whole batch, once.

The sums over rows split into sums over chunks, so the result equals the unchunked one up to
float rounding. ``xpc`` and ``Xc`` live in one buffer of this thread's workspace that *every*
convolution layer shares (:func:`~backprop.layers._windows.shared_workspace`): a layer keeps
only a reference to its input between forward and backward (an activation the network holds
anyway), so nothing of the workspace outlives a call and the buffer is sized by the largest
chunk of any layer, reused from step to step. The chunk size is ::

    ns = clip(floor(WORKSPACE_RATIO * n * max(in_size, out_size) / need), 1, n)
    need = oh*ow*K + (hp*wp*c if padded else 0)      workspace elements per sample

(``in_size``, ``out_size``: elements of one sample's input and output), evened out over
``ceil(n / ns)`` chunks. So the workspace holds at most ``WORKSPACE_RATIO`` times the largest
activation of the batch (or one sample's ``need`` when that is larger). The price is a second
im2col copy per step in backward (none for a frozen layer); ``chunk_samples`` on an instance
fixes ``ns`` (tests compare chunked and unchunked results with it). Inference uses fresh arrays
of the same chunk size, so predicting in large batches leaves no large buffer behind.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import initializers
from ._windows import col2im_add, im2col_copy, shared_workspace
from .base import check_positive_int
from .registry import register_layer
from .spatial import Ints, Padding, SpatialLayer

#: A chunk's im2col workspace holds at most this many times the larger of a layer's input and
#: output activations of the whole batch (see the module docstring).
WORKSPACE_RATIO = 2.0


def shared_workspace_nbytes() -> int:
    """Bytes held by this thread's convolution workspace (shared by every Conv1D/Conv2D)."""
    return shared_workspace().nbytes


def clear_shared_workspace() -> None:
    """Free this thread's convolution workspace (it is re-made, sized anew, on the next call)."""
    shared_workspace().clear()


class _Conv(SpatialLayer):
    """Shared Conv1D/Conv2D maths; subclasses fix ``ndim``."""

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
        self.chunk_samples: int | None = None  # None: the WORKSPACE_RATIO rule

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
        W, b = self.params["W"], self.params["b"]
        init = initializers.get(self.auto_init if self.init == "auto" else self.init)
        W[...] = init((W.size // self.filters, self.filters), rng, W.dtype).reshape(W.shape)
        b[...] = initializers.get(self.bias_init)(b.shape, rng, b.dtype)

    def _W2(self, store: dict[str, np.ndarray]) -> np.ndarray:
        W = store["W"]
        return W.reshape(W.size // self.filters, self.filters)

    # -- chunks -----------------------------------------------------------------------------------
    def _chunk(self, n: int) -> int:
        """Samples per chunk for a batch of ``n`` (see the module docstring)."""
        if self.chunk_samples is not None:
            ns = int(self.chunk_samples)
        else:
            (oh, ow), (kh, kw) = self._out2, self._k2
            c = self.in_shape[-1]
            need = oh * ow * kh * kw * c + (math.prod(self._padded_shape(1, c)) if self._pad else 0)
            act = max(math.prod(self.in_shape), math.prod(self.out_shape))
            ns = int(WORKSPACE_RATIO * n * act // need)
        ns = min(n, max(1, ns))
        return -(-n // -(-n // ns))  # the same count of chunks, evened out

    @property
    def _pad(self) -> bool:
        return any(p != 0 for pair in self._pads for p in pair)

    def _chunk_buffers(self, ns: int, dtype: np.dtype, training: bool) -> list[np.ndarray]:
        """``[xp, cols]`` (``[cols]`` without padding) for chunks of up to ``ns`` samples: views
        of the shared workspace while training, fresh arrays at inference."""
        (oh, ow), (kh, kw) = self._out2, self._k2
        c = self.in_shape[-1]
        shapes = [(ns * oh * ow, kh * kw * c)]
        if self._pad:
            shapes.insert(0, self._padded_shape(ns, c))
        if training:
            return shared_workspace().get_many(f"conv-{dtype}", shapes, dtype)
        return [np.empty(shape, dtype=dtype) for shape in shapes]

    def _chunk_cols(self, xc: np.ndarray, bufs: list[np.ndarray]) -> np.ndarray:
        """The im2col matrix ``(ns*oh*ow, K)`` of the chunk ``xc`` ``(ns, h, w, c)``, in the
        chunk buffers (the padded copy rewrites its whole border: other layers share it)."""
        ns = xc.shape[0]
        (oh, ow), (kh, kw) = self._out2, self._k2
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
        cols = bufs[-1][: ns * oh * ow]
        im2col_copy(cols.reshape(ns, oh, ow, kh, kw, c), self._windows(src))
        return cols

    # -- computation --------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y = im2col(pad(x)) @ W2 + b``, chunk by chunk: ``(n, *in_shape)`` ->
        ``(n, *out_shape)``."""
        x4 = self._input4(x)
        n = x4.shape[0]
        m = self._out2[0] * self._out2[1]
        W2 = self._W2(self.params)
        dtype = np.result_type(x4.dtype, W2.dtype)
        ns = self._chunk(n)
        bufs = self._chunk_buffers(ns, dtype, training)
        y = np.empty((n * m, self.filters), dtype=dtype)
        for s0 in range(0, n, ns):
            s1 = min(n, s0 + ns)
            cols = self._chunk_cols(x4[s0:s1], bufs)
            np.matmul(cols, W2, out=y[s0 * m : s1 * m])
        y += self.params["b"]
        self._x = x4 if training else None
        return y.reshape(n, *self.out_shape)

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        """``dW2 = sum over chunks of Xc.T @ Gc`` and ``db = sum_rows G`` (module docstring)."""
        self._backward(grad_out, need_dx=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dW2 = X.T @ G``, ``db = sum_rows G``, ``dx = unpad(col2im(G @ W2.T))``, chunk by
        chunk with im2col recomputed from the kept input.

        ``grad_out`` is ``(n, *out_shape)``; returns ``(n, *in_shape)``.
        """
        return self._backward(grad_out, need_dx=True)

    def _backward(self, grad_out: np.ndarray, need_dx: bool) -> np.ndarray | None:
        if self._x is None:
            raise self._missing_cache()
        x4, self._x = self._x, None
        n = x4.shape[0]
        (oh, ow), (kh, kw) = self._out2, self._k2
        m, c, f = oh * ow, x4.shape[-1], self.filters
        G = grad_out.reshape(n * m, f)
        W = self.params["W"]
        if self.trainable:
            dW2 = self._W2(self.grads)
            np.add.reduce(G, axis=0, out=self.grads["b"])
        else:
            self.zero_grads()
            if not need_dx:
                return None
        dtype = np.result_type(x4.dtype, W.dtype)
        ns = self._chunk(n)
        bufs = self._chunk_buffers(ns, dtype, training=True)
        dxp = np.zeros(self._padded_shape(n, c), dtype=dtype) if need_dx else None
        # dX = G @ W2.T computed offset-major: block (a, b) = Gc @ W[a, b].T, shape (rows, c).
        Wt = W.reshape(kh * kw, c, f).transpose(0, 2, 1)
        for s0 in range(0, n, ns):
            s1 = min(n, s0 + ns)
            Gc = G[s0 * m : s1 * m]
            if self.trainable:
                cols = self._chunk_cols(x4[s0:s1], bufs)
                if s0 == 0:
                    np.matmul(cols.T, Gc, out=dW2)
                else:
                    dW2 += cols.T @ Gc  # a (K, f) temporary
            if need_dx:
                out = bufs[-1][: (s1 - s0) * m].reshape(kh * kw, (s1 - s0) * m, c)
                blocks = np.matmul(Gc, Wt, out=out)  # Xc is no longer needed: reuse its buffer
                col2im_add(
                    dxp[s0:s1], blocks.reshape(kh, kw, s1 - s0, oh, ow, c), self._s2, self._d2
                )
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
