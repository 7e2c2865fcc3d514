"""Data augmentation as a layer: random shifts of images while training, nothing at inference.

``RandomShift2D(max_shift=k)`` moves every image of a training batch by its own random whole
number of pixels, ``dy`` down and ``dx`` right, each drawn uniformly from ``{-k, ..., k}``;
what leaves the frame is dropped and what enters it is zero. Channels last, ``x`` and ``y``
``(n, h, w, c)``::

    y[s, i, j, ch] = x[s, i - dy[s], j - dx[s], ch]   where that index lies inside the image,
                     0                                 elsewhere.

It is linear in ``x`` with 0/1 coefficients, and its adjoint moves the gradient back::

    dx[s, p, q, ch] = G[s, p + dy[s], q + dx[s], ch]   where that index lies inside, 0 elsewhere.

Both loop over the ``(2k + 1)**2`` possible shifts (``k`` at most the image's size less one:
larger shifts leave only zeros), one slice copy per shift that occurs, over every sample drawn
with it, never over samples or pixels. Outside training the layer returns
its input unchanged, so a saved model predicts on the images as they are. The shifts come from
the model's dropout stream (``set_rng``), an explicit ``np.random.Generator``; the data set is
never copied, only the batch being trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Layer
from .registry import register_layer

#: Shifts are drawn as int64 from ``[-max_shift, max_shift + 1)``: the bound must fit in int64.
MAX_SHIFT_LIMIT = 2**63 - 1


def _span(d: int, size: int) -> tuple[slice, slice]:
    """Destination and source slices along one axis for a shift by ``d`` (|d| < size)."""
    if d >= 0:
        return slice(d, size), slice(0, size - d)
    return slice(0, size + d), slice(-d, size)


@register_layer
class RandomShift2D(Layer):
    """Shift each training image by up to ``max_shift`` pixels in each direction, zero-filled.

    Parameters
    ----------
    max_shift : int, default 2
        Largest shift ``k`` in pixels; ``dy`` and ``dx`` are drawn independently and uniformly
        from ``{-k, ..., k}``, per image and per training batch. 0 makes the layer the identity.
    seed : int | np.random.Generator | None, default None
        Seed or generator for a stand-alone layer; inside a ``Sequential`` the shifts come from
        the model's dropout stream.
    """

    init_transparent = True

    def __init__(self, max_shift: int = 2, seed: int | np.random.Generator | None = None):
        super().__init__()
        ok = isinstance(max_shift, int | np.integer) and not isinstance(max_shift, bool)
        # the shifts are drawn as int64 from [-k, k + 1): k + 1 must fit
        if not ok or not 0 <= max_shift < MAX_SHIFT_LIMIT:
            raise ValueError(
                f"max_shift must be a non-negative integer below 2**63 - 1, got {max_shift!r}"
            )
        self.max_shift = int(max_shift)
        self.rng = np.random.default_rng(seed)
        self._shifts: np.ndarray | None = None
        self._spent = False  # a backward used (and released) the last forward's shifts

    def set_rng(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Images ``(h, w, c)``; the output has the same shape."""
        if len(in_shape) != 3:  # the base class's build guard made in_shape a tuple of ints
            raise ValueError(f"RandomShift2D expects images (h, w, c), got input shape {in_shape}")
        return in_shape

    def _check_images(self, x: np.ndarray) -> None:
        """A batch ``(n, h, w, c)`` of the built image shape (built by the first batch when used
        on its own), like the convolution and pooling layers' inputs."""
        if x.ndim != 4:
            raise ValueError(f"RandomShift2D expects a batch (n, h, w, c), got shape {x.shape}")
        self._built_for(x)

    def _move(self, src: np.ndarray, sign: int) -> np.ndarray:
        """``out[s] = src[s]`` shifted by ``sign * shifts[s]``, zero-filled (sign -1: adjoint)."""
        n, h, w, _ = src.shape
        out = np.zeros_like(src)
        shifts = self._shifts
        # A shift of the whole height or width leaves only zeros: only smaller ones are looped
        # over (a max_shift of 10**9 from a file or config would loop for hours otherwise).
        ky, kx = min(self.max_shift, h - 1), min(self.max_shift, w - 1)
        for dy in range(-ky, ky + 1):
            rows_to, rows_from = _span(sign * dy, h)
            for dx in range(-kx, kx + 1):
                sel = np.flatnonzero((shifts[0] == dy) & (shifts[1] == dx))
                if sel.size == 0:
                    continue
                cols_to, cols_from = _span(sign * dx, w)
                out[sel, rows_to, cols_to, :] = src[sel, rows_from, cols_from, :]
        return out

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """``y`` ``(n, h, w, c)``: ``x`` shifted per image while training, ``x`` itself else."""
        self._check_images(x)
        self._spent = False
        if not training:
            self._shifts = None
            return x
        k = self.max_shift
        self._shifts = self.rng.integers(-k, k + 1, size=(2, x.shape[0]))
        return self._move(x, 1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = G`` shifted back by each image's ``(-dy, -dx)``, zero-filled; ``(n, h, w, c)``
        (the identity after an inference forward). The shifts are released: a second backward
        needs a new forward."""
        if self._spent:
            raise self._missing_cache()
        if self._shifts is None:
            self._spent = True
            return grad_out.copy()
        if self._shifts.shape[1] != grad_out.shape[0]:
            raise ValueError(
                f"RandomShift2D.backward: gradient for {grad_out.shape[0]} images, the forward "
                f"shifted {self._shifts.shape[1]}"
            )
        dx = self._move(grad_out, -1)
        self._shifts, self._spent = None, True
        return dx

    def config(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift}
