"""Preprocessing as a layer, so that a saved model carries it.

``Standardize`` holds per-feature statistics as *buffers* (saved with the model, never trained)::

    forward:   y = (x - mean) / scale          x, y: (n, d); mean, scale: (d,)
    backward:  dx = g / scale                  g = dL/dy: (n, d)

With ``inverse=True`` it undoes a standardization, which is how a regression model hands back
targets in their own units::

    forward:   y = x * scale + mean            backward:  dx = g * scale

Put it first (and, inverse, last) in a ``Sequential`` and train on raw features: the model file
then holds everything ``predict`` needs, in Python and on the command line alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from .base import Layer, allocation_enabled, as_float_dtype, check_positive_int
from .registry import register_layer


def mean_and_scale(
    X: np.ndarray, who: str = "standardize", dtype: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``mean`` and ``scale`` (the standard deviation) of ``X`` ``(n, d)``, float64.
    The mean is reduced in float64; the deviation in ``dtype`` (default: X's own, so a float32
    ``X`` costs one float32 temporary; ``np.float64`` costs one float64 temporary and gives
    what a float64 copy of ``X`` would).

    A constant column (every value equal) gets its value as mean and scale 1, so it comes out as
    exactly 0: ``X.std`` of ten copies of 0.1 is 1.4e-17, not 0 (the mean rounds), and dividing
    by it turned the constant into 1.0 and a value 0.1 away into 1e16. Raises a ValueError for
    an empty ``X``, a NaN or infinite value, or a column whose variance overflows (naming it).
    """
    if X.shape[0] == 0:
        raise ValueError(f"{who} needs at least one sample, got X of shape {X.shape}")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN, inf: refused below
        mean = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, dtype=dtype).astype(np.float64)  # never a float64 copy of X
    bad = ~(np.isfinite(mean) & np.isfinite(scale))
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"{who}: X must be finite, column {j} is not (mean {mean[j]:g}, standard deviation "
            f"{scale[j]:g})"
        )
    constant = X.max(axis=0) == X.min(axis=0)
    mean[constant], scale[constant] = X[0, constant], 1.0
    return mean, scale


@register_layer
class Standardize(Layer):
    """Per-feature standardization ``y = (x - mean) / scale`` with saved statistics.

    Parameters
    ----------
    n_features : int
        number of features ``d``.
    mean, scale : Any, default None
        the statistics, arrays of shape ``(d,)`` (default: 0 and 1, the identity);
        or call :meth:`adapt` on training data. A scale of 0 is replaced by 1 (and ``adapt``
        gives a constant feature scale 1).
    inverse : bool, default False
        apply ``y = x * scale + mean`` instead (undo a standardization).
    dtype : str, default "float32"
        dtype of the statistics buffers.

    Notes
    -----
    The statistics are buffers: ``model.state_dict()`` and model files hold them, optimizers and
    L1/L2 never touch them. They are data, not training state: ``reset_buffers`` keeps them, so
    re-initializing a model (``reset_parameters``, ``bp.pruning.reinitialize``) keeps the
    statistics it was given, adapted or loaded with.
    """

    def __init__(
        self,
        n_features: int,
        mean: Any = None,
        scale: Any = None,
        inverse: bool = False,
        dtype: Any = "float32",
    ) -> None:
        super().__init__()
        self.in_features = self.out_features = check_positive_int("n_features", n_features)
        self.inverse = checks.boolean("inverse", inverse)
        self._scale: np.ndarray | None = None
        self._given, self._dtype = (mean, scale), as_float_dtype(dtype)
        self._mean0: np.ndarray | None = None
        self._scale0: np.ndarray | None = None
        if allocation_enabled():  # else shapes only (a file's sizes are checked before any of
            self._allocate_buffers(self._dtype, strict=False)  # them is allocated)

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The statistics given (or adapted): ``(mean, scale)``, each ``(d,)`` float64, checked
        and made the first time they are needed; the buffers' values instead when something
        else was written into them (``load_state_dict``, a checkpoint), so that the config and
        a new model around this layer keep what it holds."""
        if self._mean0 is None or self._scale0 is None:
            mean, scale = self._given
            self._mean0 = self._checked("mean", 0.0 if mean is None else mean)
            self._scale0 = self._checked("scale", 1.0 if scale is None else scale)
        if self.buffers:
            held = self.buffers["mean"], self.buffers["scale"]
            mine = (self._mean0, self._scale0)
            with np.errstate(over="ignore"):  # (a float64 statistic out of float32's range)
                moved = any(
                    not np.array_equal(b, v.astype(b.dtype))
                    for b, v in zip(held, mine, strict=True)
                )
            valid = all(np.isfinite(b).all() for b in held) and (held[1] > 0).all()
            if moved and valid:  # (invalid values are refused where they are loaded)
                self._mean0, self._scale0 = (b.astype(np.float64) for b in held)
        return self._mean0, self._scale0

    def _checked(self, name: str, value: Any) -> np.ndarray:
        try:
            arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (self.in_features,)).copy()
        except (TypeError, ValueError):
            raise ValueError(
                f"Standardize {name} must be a number or {self.in_features} numbers, got {value!r}"
            ) from None
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"Standardize {name} must be finite, got {value!r}")
        if name == "scale":
            if np.any(arr < 0):
                raise ValueError(f"Standardize scale must be non-negative, got {value!r}")
            arr[arr == 0] = 1.0
        return arr

    def adapt(self, X: Any) -> Standardize:
        """Set ``mean`` and ``scale`` from ``X`` ``(n, d)`` with :func:`mean_and_scale` (a
        constant feature gets scale 1); returns the layer. Bad data leaves the layer as it was.
        The statistics are float64's, without a float64 copy of a float32 (or memmapped) X."""
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":  # an object array of numbers; strings fail here
            X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.in_features:
            raise ValueError(
                f"Standardize.adapt expects (n_samples, {self.in_features}), got shape {X.shape}"
            )
        mean, scale = mean_and_scale(X, "Standardize.adapt", dtype=np.float64)
        scale = self._checked("scale", scale)
        if self.buffers:  # (cast first: statistics the buffers' dtype cannot hold change nothing)
            dtype = self.buffers["mean"].dtype
            cast = self._in_dtype("mean", mean, dtype), self._in_dtype("scale", scale, dtype)
            self._mean0, self._scale0 = mean, scale
            self.buffers["mean"][...], self.buffers["scale"][...] = cast
        else:
            self._mean0, self._scale0 = mean, scale
            self._allocate_buffers(self._dtype, strict=False)
        return self

    def buffer_specs(self) -> dict[str, tuple[int, ...]]:
        """``{"mean": (d,), "scale": (d,)}``: saved with the model, never trained."""
        return {"mean": (self.in_features,), "scale": (self.in_features,)}

    def buffer_bounds(self) -> dict[str, tuple[float, bool]]:
        """A scale is positive (0 is stored as 1)."""
        return {"scale": (0.0, True)}

    def _allocate_buffers(self, dtype: np.dtype, strict: bool = True) -> None:
        """A model's buffers, in its dtype: the statistics given or adapted so far (the
        constructor's stand-alone ones, ``strict=False``, may be re-made by a float64 model)."""
        mean, scale = self._statistics()
        if not strict:
            with np.errstate(over="ignore"):
                self.buffers = {"mean": mean.astype(dtype), "scale": scale.astype(dtype)}
            return
        self.buffers = {
            "mean": self._in_dtype("mean", mean, dtype),
            "scale": self._in_dtype("scale", scale, dtype),
        }

    @staticmethod
    def _in_dtype(name: str, values: np.ndarray, dtype: Any) -> np.ndarray:
        """``values`` (float64) cast to the model's ``dtype``, refused when the cast makes a
        value infinite, or a scale 0 (``1e300`` or ``1e-50`` in float32), as ``load_state_dict``
        refuses them."""
        with np.errstate(over="ignore"):
            cast = values.astype(dtype)
        bad = ~np.isfinite(cast) | ((cast <= 0) if name == "scale" else False)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"Standardize {name} {values[i]!r} (feature {i}) is out of {np.dtype(dtype).name}'s "
                "range: rescale the data, or use a float64 model"
            )
        return cast

    def reset_buffers(self) -> None:
        """Nothing to reset: the statistics (given, adapted or loaded) stay. (Putting back the
        constructor's values would wipe a loaded model's statistics: it is built with the
        identity, then loads its buffers.)"""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._check_input(x)
        mean, scale = self.buffers["mean"], self.buffers["scale"]
        if self.inverse:
            y = x * scale
            y += mean
        else:
            y = x - mean
            y /= scale
        if training:
            self._scale = scale
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """``dx = g / scale`` (``g * scale`` when ``inverse``); ``g`` and ``dx`` are ``(n, d)``.

        No parameter gradients: ``mean`` and ``scale`` are buffers, not trained.
        """
        if self._scale is None:
            raise self._missing_cache()
        scale, self._scale = self._scale, None  # one backward per training forward
        return grad_out * scale if self.inverse else grad_out / scale

    def config(self) -> dict[str, Any]:
        """``n_features``, ``inverse``, and ``mean``/``scale`` as lists when they are not the
        identity's (an unfitted copy, in an estimator's ``layers``, keeps its statistics)."""
        cfg: dict[str, Any] = {"n_features": self.in_features, "inverse": self.inverse}
        if self._mean0 is None or self._scale0 is None:  # read for shapes only: as given
            given = dict(zip(("mean", "scale"), self._given, strict=True))
            cfg.update(
                {k: np.asarray(v, np.float64).tolist() for k, v in given.items() if v is not None}
            )
            return cfg
        mean, scale = self._statistics()
        if np.any(mean != 0):
            cfg["mean"] = mean.tolist()
        if np.any(scale != 1):
            cfg["scale"] = scale.tolist()
        return cfg

    def extra_repr(self) -> str:
        return f"n_features={self.in_features}, inverse={self.inverse}"
