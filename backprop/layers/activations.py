"""Activation layers: elementwise functions, and the row-wise Softmax.

Each maps ``(n, *shape) -> (n, *shape)``, for any per-sample shape (Softmax and PReLU work along
the last axis). For an elementwise ``y = f(x)`` the backward pass is
``dx = grad_out * f'(x)``; the table gives ``f`` and ``f'`` as they are computed here:

==============  =======================================  ======================================
layer           f(x)                                      f'(x)
==============  =======================================  ======================================
Identity        x                                         1
Sigmoid         s = 1 / (1 + exp(-x))  (scipy expit)      s (1 - s)
Tanh            tanh(x)                                   1 - y^2
ReLU            max(x, 0)                                 [x > 0]
LeakyReLU(a)    x if x > 0 else a x                       1 if x > 0 else a
ELU(a)          x if x > 0 else a (exp(x) - 1)            1 if x > 0 else y + a
PReLU           x if x > 0 else alpha_j x  (learned)      1 if x > 0 else alpha_j
GELU            x Phi(x)                                  Phi(x) + x phi(x)
SiLU            x s(x)                                    s (1 + x (1 - s))
Softplus        max(x, 0) + log1p(exp(-|x|))              s(x)
Softmax         exp(x_i - m) / sum_j exp(x_j - m)         dx = y * (g - sum_j g_j y_j)
==============  =======================================  ======================================

``Phi``/``phi`` are the standard normal CDF/PDF (``GELU(approximate="tanh")`` uses the tanh
approximation). Every formula is written so that large ``|x|`` never overflows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from .. import checks
from ._relu import relu, relu_grad
from .base import Layer, Shape, allocation_enabled, check_positive_int
from .registry import register_layer

# Python floats, not NumPy scalars: they keep float32 arrays float32 (NEP 50).
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


def _floating(x: np.ndarray) -> np.ndarray:
    """``x`` itself if floating, else (integers, bools) in float64, as NumPy's ``np.tanh``."""
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _elementwise_doc(derivative: str) -> str:
    return (
        f"Backward of an elementwise activation: ``dx = grad_out * f'(x)`` with\n\n"
        f"    f'(x) = {derivative}\n\n``grad_out = dL/dy`` and ``dx = dL/dx`` have the input's "
        "shape ``(n, d)``; no parameter gradients. Needs a preceding ``forward(x, training=True)``."
    )


class Activation(Layer):
    """An elementwise activation: subclasses implement ``_f(x)`` and ``_df(x, y)``.

    ``forward`` caches ``x`` and ``y`` when training; ``backward`` returns ``grad_out * f'(x)``
    and releases them. Subclasses set ``derivative``, the ``f'`` that ``help(cls.backward)`` shows.
    """

    derivative = "f'(x)"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:
            return

        def backward(self, grad_out: np.ndarray) -> np.ndarray:
            return super(cls, self).backward(grad_out)

        backward.__doc__ = _elementwise_doc(cls.derivative)
        backward.__qualname__ = f"{cls.__qualname__}.backward"
        cls.backward = backward

    _x: np.ndarray | None = None  # the training forward's input and output, until backward
    _y: np.ndarray | None = None

    def _f(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _df(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        x = _floating(x)
        y = self._f(x)
        if training:
            self._x, self._y = x, y
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out * f'(x)``, elementwise; ``grad_out``, ``dx``: ``(n, d)``."""
        if self._x is None:
            raise self._missing_cache()
        (x, self._x), (y, self._y) = (self._x, None), (self._y, None)
        dx = self._df(x, y)
        dx *= grad_out
        return dx


@register_layer
class Identity(Activation):
    """``y = x``."""

    def _f(self, x):
        return x.copy()

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out`` (a copy), shape ``(n, d)``: the derivative of ``x`` is 1."""
        self._x = self._y = None
        return grad_out.copy()


@register_layer
class Sigmoid(Activation):
    """Logistic sigmoid ``y = 1 / (1 + exp(-x))`` (overflow-safe through ``scipy.special.expit``)."""

    derivative = "y (1 - y)   with y = sigmoid(x), at most 1/4"

    def _f(self, x):
        return special.expit(x)

    def _df(self, x, y):
        return y * (1 - y)


@register_layer
class Tanh(Activation):
    """``y = tanh(x)``, ``dy/dx = 1 - y^2``."""

    derivative = "1 - y^2   with y = tanh(x)"

    def _f(self, x):
        return np.tanh(x)

    def _df(self, x, y):
        d = y * y
        np.subtract(1, d, out=d)
        return d


@register_layer
class ReLU(Activation):
    """``y = max(x, 0)``, ``dy/dx = [x > 0]`` (0 at x = 0)."""

    keep_output = False  # keep y after backward, for last_output (GradientMonitor's switch)

    def _f(self, x):
        return relu(x)

    @property
    def last_output(self) -> np.ndarray | None:
        """``y`` of the last ``forward(x, training=True)`` (None before one, and after its
        backward unless ``keep_output`` is set): read by GradientMonitor to count dead units."""
        return self._y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out * [x > 0]``: the gradient passes where the unit was active and is 0
        elsewhere (0 at ``x = 0`` too); ``grad_out``, ``dx``: ``(n, d)``."""
        if self._y is None:
            raise self._missing_cache()
        y, self._x, self._y = self._y, None, (self._y if self.keep_output else None)
        return relu_grad(grad_out, y)  # a cast mask times grad_out: no branches


@register_layer
class LeakyReLU(Activation):
    """``y = x`` for ``x > 0`` else ``negative_slope * x``.

    Parameters
    ----------
    negative_slope : float, default 0.01
        Slope for ``x <= 0``.
    """

    derivative = "1 if x > 0 else negative_slope"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = checks.real("negative_slope", negative_slope)

    def _f(self, x):
        return np.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def _df(self, x, y):
        return np.where(x > 0, 1, self.negative_slope).astype(x.dtype, copy=False)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


@register_layer
class ELU(Activation):
    """``y = x`` for ``x > 0`` else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    alpha : float, default 1.0
        Saturation value ``-alpha`` for large negative inputs.
    """

    derivative = "1 if x > 0 else y + alpha   (= alpha exp(x))"

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = checks.positive("alpha", alpha)

    def _f(self, x):
        return np.where(x > 0, x, x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0)))

    def _df(self, x, y):
        return np.where(x > 0, 1, y + x.dtype.type(self.alpha)).astype(x.dtype, copy=False)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


@register_layer
class GELU(Activation):
    """Gaussian error linear unit ``y = x * Phi(x)``; ``approximate="tanh"`` for the tanh form.

    Parameters
    ----------
    approximate : str, default 'none'
        "none" for the exact ``Phi`` (error function) or "tanh" for the tanh approximation.
    """

    derivative = "Phi(x) + x phi(x)   (Phi, phi: the standard normal CDF and PDF)"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    # The tanh form saturates past |x| = 10 (tanh(u) is +-1 to within 1e-37): clipping x there
    # changes no value and keeps x**3, x**2 finite (inf * 0 = NaN in the derivative).
    _TANH_SATURATION = 10.0

    def _cdf(self, x):
        if self.approximate == "tanh":
            x = np.clip(x, -self._TANH_SATURATION, self._TANH_SATURATION)
            return 0.5 * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
        return special.ndtr(x)  # not (1 + erf(x / sqrt 2)) / 2, which cancels for x < 0

    def _f(self, x):
        return (x * self._cdf(x)).astype(x.dtype, copy=False)

    def _df(self, x, y):
        if self.approximate == "tanh":
            x = np.clip(x, -self._TANH_SATURATION, self._TANH_SATURATION)
            t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x**2)
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
        else:
            # x phi(x) is below 1e-340 beyond |x| = 40: clipping there keeps x * x finite
            xc = np.clip(x, -40.0, 40.0)
            d = self._cdf(x) + xc * _INV_SQRT_2PI * np.exp(-0.5 * xc * xc)
        return d.astype(x.dtype, copy=False)

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


@register_layer
class SiLU(Activation):
    """Sigmoid-weighted linear unit (swish) ``y = x * sigmoid(x)``."""

    derivative = "s (1 + x (1 - s))   with s = sigmoid(x)"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        x = _floating(x)
        s = special.expit(x)
        if training:
            self._x, self._y = x, s  # cache the sigmoid: the derivative needs it
        return x * s

    def _df(self, x, s):
        return s * (1 + x * (1 - s))


@register_layer
class Softplus(Activation):
    """``y = log(1 + exp(x))`` computed as ``max(x, 0) + log1p(exp(-|x|))``."""

    derivative = "sigmoid(x)"

    def _f(self, x):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def _df(self, x, y):
        return special.expit(x)


@register_layer
class Softmax(Layer):
    """Softmax over the last axis ``y_ij = exp(x_ij - m_i) / sum_k exp(x_ik - m_i)``,
    ``m_i = max_k x_ik`` (``i`` runs over every position but the last axis).

    Backward is the full vector-Jacobian product ``dx = y * (g - sum_j g_j y_j)`` per row. For
    classification, prefer feeding logits to ``SoftmaxCrossEntropy`` (fused and more accurate).
    """

    _y: np.ndarray | None = None  # the training forward's output, until backward

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        x = _floating(x)
        z = x - x.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        if training:
            self._y = z
        return z

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Per row, ``dx_i = y_i * (g_i - sum_j g_j y_j)``: the Jacobian
        ``dy_j/dx_i = y_j ([i = j] - y_i)`` times ``g = grad_out``. ``g``, ``y``, ``dx``:
        ``(n, k)``. (Followed by a cross-entropy this collapses to ``y - t``; the fused
        ``SoftmaxCrossEntropy`` computes that directly from logits.)"""
        if self._y is None:
            raise self._missing_cache()
        y, self._y = self._y, None
        dot = np.einsum("...j,...j->...", grad_out, y)[..., None]
        return y * (grad_out - dot)


@register_layer
class PReLU(Layer):
    """Parametric ReLU: ``y = x`` for ``x > 0`` else ``alpha_j * x`` with one learned slope per
    feature ``j`` of the last axis. ``alpha`` has shape ``(n_features,)``;
    ``dalpha_j = sum g_.j * min(x_.j, 0)`` over every other axis.

    Parameters
    ----------
    n_features : int | None, default None
        the last axis' width; None (default) learns it when the layer is built.
    init : float, default 0.25
        the initial slope.
    dtype : Any, default 'float32'
        dtype of a stand-alone layer's ``alpha``; a ``Sequential`` replaces it with its own.
    """

    def __init__(
        self,
        n_features: int | None = None,
        init: float = 0.25,
        dtype: Any = "float32",
    ) -> None:
        super().__init__()
        if n_features is not None:
            self.in_features = self.out_features = check_positive_int("n_features", n_features)
        self._given = self.in_features
        self.init = checks.real("init", init)
        self._x: np.ndarray | None = None
        if self.in_features is not None and allocation_enabled():
            self._allocate(dtype, np.random.default_rng(0))

    def build(self, in_shape: Shape) -> Shape:
        self._check_last_axis(in_shape)
        self.in_features = self.out_features = in_shape[-1]
        return in_shape

    def param_specs(self) -> dict[str, tuple[Shape, str]]:
        return {} if self.in_features is None else {"alpha": ((self.in_features,), "other")}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        self.params["alpha"].fill(self.init)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        if not self.params:
            raise self._unallocated()
        if training:
            self._x = x
        return np.where(x > 0, x, x * self.params["alpha"])

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = g`` where ``x > 0`` else ``alpha_j g`` ``(n, d)``;
        ``dalpha_j = sum_i g_ij min(x_ij, 0)`` ``(d,)``, written into ``grads["alpha"]``."""
        if self._x is None:
            raise self._missing_cache()
        x, self._x = self._x, None
        if self.trainable:
            axes = tuple(range(x.ndim - 1))
            np.sum(grad_out * np.minimum(x, 0), axis=axes, out=self.grads["alpha"])
        else:
            self.zero_grads()
        return np.where(x > 0, grad_out, grad_out * self.params["alpha"])

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {} if self._given is None else {"n_features": self._given}
        cfg["init"] = self.init
        return cfg
