"""ReLU's two passes, written around two slow paths of NumPy's ufuncs.

``relu(x)``: ``y = max(x, 0)`` ``(n, *shape)``. ``np.maximum`` with a scalar operand runs a loop
about 3 times slower than with two arrays (0.6 against 0.2 ms on ``(256, 28, 28, 6)`` float32),
so ``x`` is taken as ``(n, d)`` against one read-only zero row ``(d,)`` (one sample's size, cached
per size and dtype). The values are those of ``np.maximum(x, 0)``, dtype included: NaN stays
NaN and ``-0`` gives ``+0``.

``relu_grad(g, y)``: ``dx = g * [y > 0]`` ``(n, *shape)``, in ``g``'s dtype. Multiplying by a
boolean array makes NumPy cast it inside a buffered loop; the mask is cast once
(``[y > 0]`` as 0.0/1.0 in ``g``'s dtype) and multiplied in place instead, with the same result
bit for bit (``g * 0.0`` is ``-0`` for a negative ``g`` and NaN for an infinite one, as before).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def _zero_row(d: int, dtype: np.dtype) -> np.ndarray:
    z = np.zeros(d, dtype=dtype)
    z.flags.writeable = False
    return z


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise, a new array of ``x``'s shape and dtype."""
    if x.ndim < 2 or x.size == 0:
        return np.maximum(x, 0)
    rows = x.reshape(x.shape[0], -1)
    return np.maximum(rows, _zero_row(rows.shape[1], x.dtype)).reshape(x.shape)


def relu_grad(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``g * [y > 0]`` elementwise, a new array in ``g``'s dtype (``y``: the forward output)."""
    dx = np.greater(y, 0).astype(g.dtype)
    dx *= g
    return dx
