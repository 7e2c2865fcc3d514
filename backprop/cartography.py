"""Per-sample training dynamics ("dataset cartography", Swayamdipta et al. 2020).

After every epoch ``e`` the :class:`Cartography` callback runs the model once over the training
set (inference mode, in chunks) and records the probability of each sample's given label::

    p[e, i] = softmax(f(x_i; theta_e))[y_i]                    (epochs, n_samples)

From the record, per sample::

    confidence_i  = mean_e p[e, i]
    variability_i = std_e p[e, i]
    correctness_i = fraction of epochs with argmax f(x_i) == y_i

Samples the model never learns to agree with (low confidence, low variability: "hard to learn")
are the likely mislabeled ones: :meth:`Cartography.suspicious` ranks samples by confidence,
lowest first.

Cost: one extra forward pass over the training data per epoch. Memory: ``epochs * n_samples``
float32 values (about 4 MB for 20 epochs of 50,000 samples), plus the reference to X and y.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from . import checks
from .callbacks import Callback
from .data import check_X


class Cartography(Callback):
    """Record ``p(given label)`` for every training sample after every epoch.

    Parameters
    ----------
    X : array-like of shape ``(n_samples, *in_shape)``
        The training inputs (the same rows the trainer trains on; not copied).
    y : array-like (n_samples,)
        Integer labels, as given to the trainer (possibly noisy: that is the point).
    batch_size : int
        Rows per inference chunk.

    Attributes
    ----------
    probabilities : ndarray (epochs, n_samples) float32
        ``p[e, i]``, one row per epoch seen so far.
    correct : ndarray (epochs, n_samples) bool
        Whether the prediction matched the given label.
    """

    def __init__(self, X: Any, y: Any, batch_size: int = 1024) -> None:
        self.X = check_X(X)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != self.X.shape[0] or y.dtype.kind not in "iu":
            raise ValueError(
                f"y must be integer labels of shape ({self.X.shape[0]},), got {y.dtype} {y.shape}"
            )
        if y.size and y.min() < 0:
            raise ValueError(f"label {y.min()} out of range: labels are class indices >= 0")
        self.y = y.astype(np.int64)
        self.batch_size = checks.positive_int("batch_size", batch_size)  # -1: rows unwritten
        self._probs: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        model = trainer.model
        p = np.empty(self.X.shape[0], np.float32)
        ok = np.empty(self.X.shape[0], bool)
        for start in range(0, self.X.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            out = model.forward(self.X[sl])
            if out.ndim != 2 or out.shape[1] < 2:
                raise ValueError(
                    f"Cartography needs class scores (n, n_classes >= 2), got outputs {out.shape}"
                )
            if (top := int(self.y.max(initial=0))) >= out.shape[1]:
                raise ValueError(f"label {top} out of range for {out.shape[1]} classes")
            logp = special.log_softmax(out.astype(np.float64), axis=1)
            p[sl] = np.exp(logp[np.arange(len(logp)), self.y[sl]])
            ok[sl] = out.argmax(axis=1) == self.y[sl]
        self._probs.append(p)
        self._correct.append(ok)

    # -- results ----------------------------------------------------------------------------------
    @property
    def probabilities(self) -> np.ndarray:
        if not self._probs:
            return np.empty((0, self.X.shape[0]), np.float32)
        return np.stack(self._probs)

    @property
    def correct(self) -> np.ndarray:
        if not self._correct:
            return np.empty((0, self.X.shape[0]), bool)
        return np.stack(self._correct)

    def _need_epochs(self) -> None:
        if not self._probs:
            raise RuntimeError("Cartography has recorded no epoch yet: train with it first")

    def confidence(self) -> np.ndarray:
        """Mean over epochs of ``p(given label)``, ``(n_samples,)``."""
        self._need_epochs()
        return self.probabilities.mean(axis=0, dtype=np.float64)

    def variability(self) -> np.ndarray:
        """Standard deviation over epochs of ``p(given label)``, ``(n_samples,)``."""
        self._need_epochs()
        return self.probabilities.std(axis=0, dtype=np.float64)

    def correctness(self) -> np.ndarray:
        """Fraction of epochs whose prediction matched the given label, ``(n_samples,)``."""
        self._need_epochs()
        return self.correct.mean(axis=0)

    def suspicious(self, k: int | None = None) -> np.ndarray:
        """Indices of the samples most likely mislabeled, most suspicious first (lowest
        confidence; ties broken by lower variability). ``k`` limits the list.

        Returns
        -------
        ndarray of int
        """
        if k is not None and not (checks.is_integer(k) and k >= 0):  # -1 dropped the last one
            raise ValueError(f"k must be a non-negative integer or None, got {k!r}")
        order = np.lexsort((self.variability(), self.confidence()))
        return order if k is None else order[:k]

    def state_dict(self) -> dict[str, Any]:
        return {"probabilities": self.probabilities, "correct": self.correct}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        probs, correct = np.asarray(state["probabilities"]), np.asarray(state["correct"])
        n = self.X.shape[0]
        if probs.ndim != 2 or probs.shape[1] != n or correct.shape != probs.shape:
            raise ValueError(
                f"Cartography records must be (epochs, {n}) arrays of the same shape, got "
                f"probabilities {probs.shape} and correct {correct.shape}"
            )
        self._probs = [np.asarray(r, np.float32) for r in probs]
        self._correct = [np.asarray(r, bool) for r in correct]


__all__ = ["Cartography"]
