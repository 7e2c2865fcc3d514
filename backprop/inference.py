"""Predictions that know the loss: probabilities, class labels and a score.

A network outputs raw numbers; the loss says what they mean::

    loss                    outputs z (n, k)       probabilities               classes
    SoftmaxCrossEntropy     logits                 softmax(z), rows sum to 1   argmax_k z
    BinaryCrossEntropy      logits                 sigmoid(z), (n, k)          z > 0 (k = 1)
    MSE / MAE / Huber       values                 (none: a regression)        (none)

``score`` is accuracy for the cross-entropies and R^2 for the regression losses, as
scikit-learn's ``score`` is. :class:`~backprop.Trainer` has these as methods (it knows its loss);
for a bare model pass the loss: ``predict_proba(model, X, "cross_entropy")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from . import losses as losses_mod
from .data import R2, Accuracy, check_targets, check_X

_CLASSIFIERS = (losses_mod.SoftmaxCrossEntropy, losses_mod.BinaryCrossEntropy)


def _classification_loss(loss: losses_mod.Loss | str, what: str) -> losses_mod.Loss:
    loss = losses_mod.get(loss)
    if not isinstance(loss, _CLASSIFIERS):
        raise ValueError(
            f"{what} needs a classification loss (SoftmaxCrossEntropy or BinaryCrossEntropy), "
            f"got {type(loss).__name__}: its outputs are values, use predict"
        )
    return loss


def proba_from_outputs(outputs: np.ndarray, loss: losses_mod.Loss | str) -> np.ndarray:
    """Class probabilities ``(n, k)`` from raw outputs ``(n, k)`` under ``loss``.

    Softmax cross-entropy: ``softmax(z)`` row-wise. Binary cross-entropy with one output:
    ``[1 - sigmoid(z), sigmoid(z)]`` (two columns, as scikit-learn's ``predict_proba``); with
    several outputs (multi-label): ``sigmoid(z)`` per output.
    """
    loss = _classification_loss(loss, "predict_proba")
    z = np.asarray(outputs)
    if isinstance(loss, losses_mod.SoftmaxCrossEntropy):
        return special.softmax(z, axis=1).astype(z.dtype, copy=False)
    p = special.expit(z).astype(z.dtype, copy=False)
    return np.column_stack([1 - p[:, 0], p[:, 0]]) if p.shape[1] == 1 else p


def classes_from_outputs(outputs: np.ndarray, loss: losses_mod.Loss | str) -> np.ndarray:
    """Class codes ``(n,)`` (argmax, or ``z > 0`` for one binary output); multi-label
    binary cross-entropy gives ``(n, k)`` 0/1 indicators."""
    loss = _classification_loss(loss, "predict_classes")
    z = np.asarray(outputs)
    if isinstance(loss, losses_mod.SoftmaxCrossEntropy):
        return z.argmax(axis=1)
    codes = (z > 0).astype(np.int64)
    return codes[:, 0] if codes.shape[1] == 1 else codes


def values_from_outputs(outputs: np.ndarray, loss: losses_mod.Loss | str) -> np.ndarray:
    """Predicted values ``(n, k)`` from a regression model's raw outputs under ``loss``: the
    rates ``exp(z)`` for Poisson, whose outputs are log-rates ``z``; the outputs themselves for
    every other loss."""
    z = np.asarray(outputs)
    return np.exp(z) if losses_mod.get(loss).link == "exp" else z


def _check_score_targets(y: Any, z: np.ndarray, loss: losses_mod.Loss) -> np.ndarray:
    """``y`` checked against the outputs ``z`` ``(n, k)``: as many rows, and one target per
    output, except class labels ``(n,)`` (or ``(n, 1)``) for the softmax cross-entropy."""
    if z.ndim != 2 or isinstance(loss, losses_mod.SequenceCrossEntropy):
        y = np.asarray(y)
    else:
        y = check_targets(y, z.shape[0])
        labels = isinstance(loss, losses_mod.SoftmaxCrossEntropy) and (
            y.ndim == 1 or y.shape[1] == 1
        )
        if not labels and y.reshape(len(y), -1).shape[1] != z.shape[1]:
            raise ValueError(
                f"y has shape {y.shape} for outputs of shape {z.shape}: "
                f"{type(loss).__name__} scores one target per output"
                + (
                    ", or class labels (n,)"
                    if isinstance(loss, losses_mod.SoftmaxCrossEntropy)
                    else ""
                )
            )
    return y


def score_outputs(outputs: np.ndarray, y: Any, loss: losses_mod.Loss | str) -> float:
    """Accuracy (cross-entropies; labels or one-hot rows) or R^2 (regression losses; for
    Poisson, of the rates ``exp(z)``; a sequence loss raises a ValueError naming it).

    The accuracy is :class:`~backprop.data.Accuracy`'s, the one ``evaluate`` reports: binary
    cross-entropy counts a sample right only when every label is (scikit-learn's subset
    accuracy for multi-label), a target being on when it is > 0.5.
    """
    loss = losses_mod.get(loss)
    z = np.asarray(outputs)
    y = _check_score_targets(y, z, loss)
    if isinstance(loss, _CLASSIFIERS):
        accuracy = Accuracy("threshold" if loss.decision == "threshold" else "argmax")
        accuracy.update(z, y)
        return accuracy.result()
    if isinstance(loss, losses_mod.SequenceCrossEntropy):
        raise ValueError(
            f"score needs a classification loss (accuracy) or a regression loss (R^2) on "
            f"(n, k) outputs, got {type(loss).__name__} with outputs {z.shape}; use evaluate"
        )
    # scikit-learn's r2_score: R^2 per output, averaged uniformly; Poisson's of the rates exp(z)
    metric = R2(rates=loss.link == "exp")
    metric.update(z, y)
    return metric.result()


def predict_proba(model: Any, X: Any, loss: losses_mod.Loss | str) -> np.ndarray:
    """``proba_from_outputs(model.predict(X), loss)``: probabilities ``(n, k)``."""
    return proba_from_outputs(model.predict(X), loss)


def predict_classes(model: Any, X: Any, loss: losses_mod.Loss | str) -> np.ndarray:
    """``classes_from_outputs(model.predict(X), loss)``: class codes ``(n,)``."""
    return classes_from_outputs(model.predict(X), loss)


def score(model: Any, X: Any, y: Any, loss: losses_mod.Loss | str) -> float:
    """Accuracy or R^2 of ``model`` on ``(X, y)`` (see :func:`score_outputs`)."""
    return score_outputs(model.predict(X), y, loss)


class Predictions:
    """Mixin of :class:`~backprop.Trainer`: its model's outputs read through its loss. Needs
    ``self.model`` (a Sequential) and ``self.loss`` (a Loss)."""

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """The model's outputs (logits for classification losses) in chunks.

        Parameters
        ----------
        X : Any
            Input rows.
        batch_size : int, default 1024
            Rows per chunk.

        Returns
        -------
        np.ndarray
            The model's outputs ``(n, *out_shape)``.
        """
        X = check_X(X)
        return self.model.predict(X, batch_size=batch_size)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, k)``: softmax of the logits for SoftmaxCrossEntropy,
        sigmoid for BinaryCrossEntropy (see :mod:`backprop.inference`)."""
        return proba_from_outputs(self.predict(X), self.loss)

    def predict_classes(self, X: Any) -> np.ndarray:
        """Class codes ``(n,)`` in ``0..k-1``: argmax of the logits (``z > 0`` for one output)."""
        return classes_from_outputs(self.predict(X), self.loss)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy for the cross-entropies, R^2 for the regression losses."""
        return score_outputs(self.predict(X), y, self.loss)


__all__ = [
    "Predictions",
    "classes_from_outputs",
    "predict_classes",
    "predict_proba",
    "proba_from_outputs",
    "score",
    "score_outputs",
]
