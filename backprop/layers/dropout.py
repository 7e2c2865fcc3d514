"""Inverted dropout.

Training, with drop rate ``p`` (the *fraction dropped*) and a mask drawn from the model's dropout
generator::

    m_ij ~ Bernoulli(1 - p)            keep with probability 1 - p
    y = x * m / (1 - p)                (n, *shape), any shape; E[y] = x
    dx = grad_out * m / (1 - p)

At inference (``training=False``) the layer is the identity, so nothing needs rescaling later.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import is_real
from .base import Layer
from .registry import register_layer


@register_layer
class Dropout(Layer):
    """Inverted dropout with ``drop_rate`` = fraction of units set to zero while training.

    Parameters
    ----------
    drop_rate : float, default 0.5
        probability of dropping each unit, in ``[0, 1)``.
    seed : int | np.random.Generator | None, default None
        seed or generator for a stand-alone layer; inside a ``Sequential`` the masks come
        from the model's dropout stream (separate from the initialization stream).

    """

    init_transparent = True

    def __init__(self, drop_rate: float = 0.5, seed: int | np.random.Generator | None = None):
        super().__init__()
        if not is_real(drop_rate):
            raise ValueError(f"drop_rate must be a number in [0, 1), got {drop_rate!r}")
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.drop_rate = float(drop_rate)
        self.rng = np.random.default_rng(seed)
        self._scaled_mask: np.ndarray | None = None
        self._spent = False  # a backward used (and released) the last forward's mask

    def set_rng(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        self._spent = False
        if not training or self.drop_rate == 0.0:
            self._scaled_mask = None
            return x.copy() if training else x
        keep = 1.0 - self.drop_rate
        mask = self.rng.random(x.shape, dtype=x.dtype) < keep
        scaled = mask.astype(x.dtype)
        scaled *= x.dtype.type(1.0 / keep)
        self._scaled_mask = scaled
        return x * scaled

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = grad_out * m / (1 - p)`` with the training forward's mask ``m`` and drop rate
        ``p``; ``grad_out``, ``dx``: ``(n, d)`` (the identity when nothing was dropped). The
        mask is released: a second backward needs a new forward."""
        if self._spent:
            raise self._missing_cache()
        mask, self._scaled_mask, self._spent = self._scaled_mask, None, True
        if mask is None:
            return grad_out.copy()
        return grad_out * mask

    def config(self) -> dict[str, Any]:
        return {"drop_rate": self.drop_rate}
