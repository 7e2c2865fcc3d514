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

Memory: the im2col matrix lives in a per-layer buffer reused from step to step, and ``dX``
overwrites it once ``dW2`` is computed (``X`` is not needed after that).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import initializers
from ._windows import col2im_add, im2col_copy
from .base import check_positive_int
from .registry import register_layer
from .spatial import Ints, Padding, SpatialLayer


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
        self._cols: np.ndarray | None = None

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

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y = im2col(pad(x)) @ W2 + b``: ``(n, *in_shape)`` -> ``(n, *out_shape)``."""
        x4 = self._input4(x)
        n = x4.shape[0]
        (oh, ow), (kh, kw) = self._out2, self._k2
        c = x4.shape[-1]
        cols = self._scratch("cols", (n * oh * ow, kh * kw * c), x4.dtype, training)
        # im2col: one copy of the strided window view into the reused buffer.
        im2col_copy(cols.reshape(n, oh, ow, kh, kw, c), self._windows(self._padded(x4, training)))
        y = cols @ self._W2(self.params)
        y += self.params["b"]
        self._cols = cols if training else None
        return y.reshape(n, *self.out_shape)

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        """``dW2 = X.T @ G`` and ``db = sum_rows G`` (see the module docstring)."""
        self._param_grads(grad_out)
        self._cols = None

    def _param_grads(self, grad_out: np.ndarray) -> np.ndarray:
        if self._cols is None:
            raise self._missing_cache()
        G = grad_out.reshape(self._cols.shape[0], self.filters)
        if self.trainable:
            np.matmul(self._cols.T, G, out=self._W2(self.grads))
            np.add.reduce(G, axis=0, out=self.grads["b"])
        else:
            self.zero_grads()
        return G

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dW2 = X.T @ G``, ``db = sum_rows G``, ``dx = unpad(col2im(G @ W2.T))``.

        ``grad_out`` is ``(n, *out_shape)``; returns ``(n, *in_shape)``.
        """
        G = self._param_grads(grad_out)
        cols, self._cols = self._cols, None
        n = grad_out.shape[0]
        (oh, ow), (kh, kw) = self._out2, self._k2
        c = self.in_shape[-1]
        # dX = G @ W2.T, computed offset-major: block (a, b) = G @ W[a, b].T, shape (m, c), one
        # batched product written into X's buffer (X is no longer needed).
        Wt = self.params["W"].reshape(kh * kw, c, self.filters).transpose(0, 2, 1)
        blocks = np.matmul(G, Wt, out=cols.reshape(kh * kw, G.shape[0], c))
        dxp = np.zeros(self._padded_shape(n, c), dtype=blocks.dtype)
        col2im_add(dxp, blocks.reshape(kh, kw, n, oh, ow, c), self._s2, self._d2)
        return self._unpad(dxp)

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
