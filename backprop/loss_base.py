"""Loss: the base class every loss subclasses, and the checks of predictions, targets and weights.

A subclass implements ``_forward(y_pred, y_true) -> (l, dl)``: the per-sample losses ``l``
``(n,)`` and ``dl_i/dy_pred`` ``(n, k)`` unscaled; :meth:`Loss.forward` validates ``y_pred``
``(n, k)`` and the weights and returns the (weighted) mean ::

    L = sum_i w_i l_i / sum_i w_i          dL/dy_i = (w_i / sum_i w_i) dl_i/dy_i

(``w_i = 1`` without ``sample_weight``), keeping the scaled gradient for :meth:`Loss.backward`.
The losses themselves and their table are in :mod:`backprop.losses`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import check_sample_weight


def _check_pred(y_pred: Any) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_pred.ndim != 2:
        hint = ""
        if y_pred.ndim > 2:  # a network that still has image or sequence axes at its end
            hint = (
                "; the network's output keeps its image or sequence axes: end it with Flatten, "
                "a global pooling layer, SequencePool or a recurrent layer without "
                "return_sequences (SequenceCrossEntropy takes per-step outputs)"
            )
        raise ValueError(
            f"y_pred must be 2-D (n_samples, n_outputs), got shape {y_pred.shape}{hint}"
        )
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(np.float64)
    return y_pred


def _check_weights(sample_weight: Any, n: int, dtype: np.dtype) -> np.ndarray | None:
    """Validated weights scaled to ``w_i / sum(w)`` (None for the plain mean)."""
    w = check_sample_weight(sample_weight, n)
    if w is None:
        return None
    total = w.sum()
    if total <= 0:
        raise ValueError("sample_weight must not sum to zero")
    return (w / total).astype(dtype)


class Loss:
    """Base class: subclasses implement ``_forward`` returning per-sample losses ``(n,)`` and
    setting ``self._dl`` to dl_i/dy_pred ``(n, k)`` (unscaled).

    ``decision`` says how a classification loss's outputs become classes, which is what the
    accuracy metric uses: "argmax" (one class per row), "threshold" (each output is a label,
    on when its logit is > 0), or None for losses that do not classify. ``link`` says how a
    regression loss's outputs become predicted values: "identity", or "exp" for outputs that
    are log-rates (Poisson); predictions, R^2 and MC dropout read it.
    """

    decision: str | None = None
    link: str = "identity"

    #: dl_i/dy_pred of one sample (before the 1/n or weight scaling), shown by help(backward)
    gradient = "dl_i/dy_pred"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "backward" in cls.__dict__:
            return

        def backward(self) -> np.ndarray:
            return super(cls, self).backward()

        backward.__doc__ = (
            f"dL/dy_pred ``(n, k)`` of the last ``forward``: per sample\n\n    {cls.gradient}\n\n"
            "times ``1/n`` (``w_i / sum(w)`` with sample weights). A fresh array the caller may keep."
        )
        backward.__qualname__ = f"{cls.__qualname__}.backward"
        cls.backward = backward

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def forward(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> float:
        y_pred = _check_pred(y_pred)
        per_sample, dl = self._forward(y_pred, y_true)
        n = y_pred.shape[0]
        if n == 0:
            raise ValueError("cannot compute a loss over 0 samples")
        w = _check_weights(sample_weight, n, y_pred.dtype)
        if w is None:
            dl *= y_pred.dtype.type(1.0 / n)
            value = float(per_sample.sum(dtype=np.float64)) / n  # the mean, in float64
        else:
            dl *= w[:, None]
            value = float(np.dot(per_sample.astype(np.float64), w.astype(np.float64)))
        self._grad = dl
        return value

    def total_weight(self, y_true: Any, sample_weight: Any, n: int) -> float:
        """The weight ``forward`` divides by for a batch of ``n`` rows: ``n``, or ``sum(w)`` with
        sample weights. Evaluating data in chunks weights each chunk's loss by it, so that the
        result is the loss over all of the data at once (a chunk of weight 0 adds nothing)."""
        if sample_weight is None:
            return float(n)
        return float(np.sum(sample_weight, dtype=np.float64))

    def backward(self) -> np.ndarray:
        """dL/dy_pred of the last ``forward`` (a fresh array the caller may keep: the loss lets
        go of it, so a second backward needs a new forward)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        grad, self._grad = self._grad, None
        return grad

    def _forward(self, y_pred: np.ndarray, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _targets_like(y_pred: np.ndarray, y_true: Any) -> np.ndarray:
    t = np.asarray(y_true)
    if t.dtype.kind not in "fiub":
        raise ValueError(f"y_true must hold real numbers, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t[:, None]
    if t.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {np.shape(y_true)}, y_pred has shape {y_pred.shape}")
    return t.astype(y_pred.dtype, copy=False)


__all__ = ["Loss"]
