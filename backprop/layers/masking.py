"""Padding masks for sequences ``(n, t, ...)`` and how they travel through a model.

A mask is a boolean array ``(n, t)``: True marks a real step, False a padded one. Masks are derived
from the input itself, so the Trainer, ``predict`` and the estimators need no extra argument:

* ``Embedding(vocab_size, dim, mask_zero=True)`` marks id 0 as padding;
* ``Masking(mask_value=0.0)`` marks a step of a float sequence as padding when all its features
  equal ``mask_value``.

The plumbing is three names. A layer with the class attribute ``supports_mask = True`` is called
as ``forward(x, training=training, mask=mask)`` and says with ``compute_mask(x, mask)`` what mask
its output carries (a mask-producing layer computes it from ``x``; ``RNN(return_sequences=False)``
returns None). Any other layer keeps the incoming mask as long as its output still has the same
leading ``(n, t)`` axes (Dense on the last axis, LayerNorm, Dropout, activations), and drops it
otherwise. :func:`forward_with_mask` is that rule; ``Sequential.forward`` calls it for each layer.
Backward passes need no mask argument: each layer caches the mask it saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import real
from .base import Layer
from .registry import register_layer


def forward_with_mask(
    layer: Layer, x: np.ndarray, training: bool, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``layer`` on ``x`` and return ``(output, mask carried by the output)``."""
    if getattr(layer, "supports_mask", False):
        out = layer.forward(x, training=training, mask=mask)
        return out, layer.compute_mask(x, mask)
    out = layer.forward(x, training=training)
    if mask is not None and (out.ndim < 2 or out.shape[:2] != mask.shape):
        mask = None
    return out, mask


def check_mask(mask: Any, n: int, t: int, layer: Layer) -> np.ndarray | None:
    """Validate a mask for a batch of ``n`` sequences of ``t`` steps; None stays None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (n, t) or mask.dtype != np.bool_:
        raise ValueError(
            f"{type(layer).__name__}: mask must be a boolean array of shape {(n, t)}, "
            f"got {mask.dtype} {mask.shape}"
        )
    return mask


def check_sequence(x: np.ndarray, layer: Layer, features: int | None) -> None:
    """A float batch ``(n, t, features)`` or a clear error naming the layer and the shape."""
    if x.ndim != 3:
        raise ValueError(
            f"{type(layer).__name__} expects a batch of sequences (n, t, features), "
            f"got an array of shape {x.shape}"
        )
    if features is not None and x.shape[2] != features:
        raise ValueError(
            f"{type(layer).__name__} expected {features} features per step, got {x.shape[2]}"
        )


@register_layer
class Masking(Layer):
    """Marks a step of ``(n, t, d)`` as padding when all of its ``d`` features equal
    ``mask_value``: ``mask[i, s] = any_k x[i, s, k] != mask_value`` (and any incoming mask).

    Values: ``y[i, s] = x[i, s]`` at a real step and 0 at a padded one, so that padding never
    enters arithmetic (with ``mask_value=inf`` a Dense after this layer would otherwise compute
    ``inf * 0 = NaN`` in its weight gradient ``x^T dy``, where the masked layers further on give
    padded steps a zero gradient); ``dx = dy`` at real steps, 0 at padded ones. With
    ``mask_value=0`` and no incoming mask the padded steps already are 0: ``y`` is ``x`` itself
    (no copy) and ``dx = dy``.

    Parameters
    ----------
    mask_value : float, default 0.0
        A step whose features all equal this value is padding.
    """

    supports_mask = True

    def __init__(self, mask_value: float = 0.0) -> None:
        super().__init__()
        self.mask_value = real("mask_value", mask_value, allow_inf=True)  # NaN never matches
        self._keep: np.ndarray | None = None  # the last training forward's mask (None: all real)
        self._spent = False  # no mask for backward (used and released, or an inference forward)

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(f"Masking expects (t, features) per sample, got {in_shape}")
        return in_shape

    def forward(self, x: np.ndarray, training: bool = False, mask: Any = None) -> np.ndarray:
        """``x`` with its padded steps set to 0, ``(n, t, d)`` (``x`` itself when none is)."""
        check_sequence(x, self, None)
        mask = check_mask(mask, x.shape[0], x.shape[1], self)
        keep = self.compute_mask(x, mask)
        # Masking(0.0) without an incoming mask: the padded steps already are 0, no copy
        zero = mask is None and self.mask_value == 0
        identity = zero or keep.all()
        self._keep = None if identity or not training else keep
        self._spent = not (training or identity)  # an inference forward keeps no mask
        if identity:
            return x
        return np.where(keep[:, :, None], x, x.dtype.type(0))

    def compute_mask(self, x: np.ndarray, mask: Any) -> np.ndarray:
        own = np.any(x != self.mask_value, axis=2)
        return own if mask is None else own & mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = dy`` at real steps and 0 at padded ones (their output is the constant 0; not
        zeroed when the forward pass returned ``x`` itself), ``(n, t, d)``. The mask comes from
        a training forward and is released once used (an inference forward keeps none)."""
        if self._spent:
            raise self._missing_cache()
        keep, self._keep, self._spent = self._keep, None, True
        if keep is None:
            return grad_out
        return np.where(keep[:, :, None], grad_out, grad_out.dtype.type(0))

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        """No parameters: nothing to do (a model's first layer) but release the mask."""
        self._keep, self._spent = None, True

    def config(self) -> dict[str, Any]:
        return {"mask_value": self.mask_value}


@register_layer
class SequencePool(Layer):
    """Sequence to vector: ``(n, t, d)`` -> ``(n, d)``, honouring the padding mask.

    ``reduce="mean"``: ``y_i = sum_s m_is x_is / max(1, sum_s m_is)`` (``m = 1`` without a mask);
    ``dx_is = m_is dy_i / max(1, sum_s m_is)``. ``reduce="last"``: ``y_i = x_{i, L_i}`` with
    ``L_i`` the last valid step (the last step without a mask); ``dx`` is ``dy`` there, 0
    elsewhere. Padded steps are read as 0, so inf or NaN padding does not reach the output. Used
    after attention blocks; recurrent layers do the same with ``return_sequences=False``.

    Parameters
    ----------
    reduce : str, default 'mean'
        "mean" (over the valid steps) or "last" (the last valid step).
    """

    supports_mask = True

    def __init__(self, reduce: str = "mean") -> None:
        super().__init__()
        if reduce not in ("mean", "last"):
            raise ValueError(f"reduce must be 'mean' or 'last', got {reduce!r}")
        self.reduce = reduce
        self._weights: np.ndarray | None = None

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 2:
            raise ValueError(f"SequencePool expects (t, features) per sample, got {in_shape}")
        return (in_shape[1],)

    def forward(self, x: np.ndarray, training: bool = False, mask: Any = None) -> np.ndarray:
        check_sequence(x, self, None)
        n, t, _ = x.shape
        mask = check_mask(mask, n, t, self)
        m = np.ones((n, t), dtype=x.dtype) if mask is None else mask.astype(x.dtype)
        if self.reduce == "mean":
            w = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        else:
            last = t - 1 - np.argmax(m[:, ::-1] > 0, axis=1)
            w = np.zeros_like(m)
            w[np.arange(n), last] = m[np.arange(n), last]
        if training:
            self._weights = w
        if mask is not None:  # padded values (inf, NaN) must not leak in as 0 * inf = NaN
            x = np.where(mask[:, :, None], x, x.dtype.type(0))
        return np.einsum("ns,nsd->nd", w, x)

    def compute_mask(self, x: np.ndarray, mask: Any) -> None:
        return None

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Given ``dy`` ``(n, d)``: ``dx_is = w_is dy_i`` ``(n, t, d)``, with ``w_is`` the pooling
        weights of the forward pass (``m_is / max(1, sum_s m_is)`` for the mean; 1 at the last
        valid step and 0 elsewhere for ``reduce="last"``)."""
        if self._weights is None:
            raise self._missing_cache()
        w, self._weights = self._weights, None
        return w[:, :, None] * grad_out[:, None, :]

    def config(self) -> dict[str, Any]:
        return {"reduce": self.reduce}
