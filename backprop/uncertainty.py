"""Predictive uncertainty: Monte Carlo dropout and calibration.

**MC dropout** (Gal & Ghahramani 2016). Dropout stays on at inference and the model is run ``T``
times on the same input, each time with fresh masks ``m_t``; the outputs ``p_t = s(f(x; m_t))``
(``s`` = softmax for SoftmaxCrossEntropy, over each step's classes for SequenceCrossEntropy;
sigmoid for BinaryCrossEntropy; exp for Poisson's log-rates; identity for the other regression
losses) approximate samples from the predictive distribution (``k`` classes; ``(n, t, k)`` and
``(n, t)`` for a sequence loss)::

    mean = 1/T sum_t p_t                      (n, k)
    std  = sqrt(1/T sum_t (p_t - mean)^2)     (n, k)
    entropy = -sum_c mean_c log mean_c        (n,)   classification: total uncertainty
    mutual_information = entropy - 1/T sum_t H(p_t)  (n,)   the part due to the weights (BALD)

Only the Dropout layers (inside containers too) switch to training behaviour; the rest is the
model's own inference forward (padding masks, token ids): BatchNorm keeps its running
statistics and nothing is cached or updated. The masks come from the generator passed in, not
from the model's dropout stream, so a later training run is not disturbed.

**Calibration** of a classifier. With ``M`` equal-width bins of the confidence ``max_c p_c``,
bin ``b`` holding the confidences in ``((b - 1) / M, b / M]`` (Guo et al.; the first bin
includes 0)::

    ECE = sum_b (n_b / n) |accuracy_b - confidence_b|

and **temperature scaling** (Guo et al. 2017) divides the logits by one scalar ``T > 0`` fitted
on validation data by minimizing the negative log-likelihood::

    T* = argmin_T  -1/n sum_i log softmax(z_i / T)[y_i]

It changes no prediction (the argmax is the same), only the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from . import checks
from .data import check_X
from .layers import Dropout
from .layers.containers import named_layers
from .losses import BinaryCrossEntropy, SequenceCrossEntropy, SoftmaxCrossEntropy


def output_transform(loss: Any) -> str:
    """``"softmax"``, ``"sigmoid"``, ``"exp"`` (Poisson's log-rates to rates) or
    ``"identity"``: what turns the model's outputs into predictions for this loss (an instance
    or one of those names)."""
    if isinstance(loss, str):
        if loss not in ("softmax", "sigmoid", "exp", "identity"):
            raise ValueError(
                f"output must be 'softmax', 'sigmoid', 'exp', 'identity' or a Loss, got {loss!r}"
            )
        return loss
    if getattr(loss, "link", None) == "exp":  # log-rates out (Poisson): the rate exp(z)
        return "exp"
    if isinstance(loss, SoftmaxCrossEntropy | SequenceCrossEntropy):  # per step for sequences
        return "softmax"
    if isinstance(loss, BinaryCrossEntropy):
        return "sigmoid"
    return "identity"


def _transform(out: np.ndarray, kind: str) -> np.ndarray:
    if kind == "softmax":
        return special.softmax(out, axis=-1)
    if kind == "sigmoid":
        return special.expit(out)
    if kind == "exp":
        return np.exp(out)
    return out


@dataclass
class MCPrediction:
    """The result of :func:`mc_dropout_predict`.

    Attributes
    ----------
    mean, std : ndarray (n, k)
        Mean and standard deviation over the ``n_samples`` passes (probabilities for
        classification losses, outputs for regression).
    entropy, mutual_information : ndarray (n,) or None
        Predictive entropy of ``mean`` and its epistemic part (softmax outputs only; per step,
        ``(n, t)``, for a sequence loss).
    """

    mean: np.ndarray
    std: np.ndarray
    entropy: np.ndarray | None
    mutual_information: np.ndarray | None


def _entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(special.xlogy(p, p), axis=-1)


def _always_on(layer: Dropout):
    """``layer``'s forward in training mode whatever it is asked (MC dropout's passes)."""

    def forward(x: np.ndarray, training: bool = False) -> np.ndarray:
        return type(layer).forward(layer, x, training=True)

    return forward


def mc_dropout_predict(
    model: Any,
    X: Any,
    n_samples: int = 30,
    output: Any = "softmax",
    batch_size: int = 1024,
    seed: int | np.random.Generator | None = 0,
) -> MCPrediction:
    """Monte Carlo dropout predictions of a ``Sequential`` with at least one Dropout layer.

    Parameters
    ----------
    model : Sequential
        Not modified (its dropout stream is not used either).
    X : array-like of shape ``(n_samples, *in_shape)``
    n_samples : int
        Forward passes per input, each with new masks (>= 2).
    output : Loss or {"softmax", "sigmoid", "exp", "identity"}
        How outputs become predictions (see :func:`output_transform`).
    batch_size : int
        Rows per chunk: memory holds one chunk's activations and its ``n_samples`` outputs.
        The masks are drawn chunk by chunk, so a row's estimate depends on ``batch_size`` and
        on the rows before it (``mc(X)[:7]`` is not ``mc(X[:7])`` for the same seed): equally
        valid draws, reproducible for the same ``X``, ``batch_size`` and seed.
    seed : int, Generator or None
        The dropout masks.

    Returns
    -------
    MCPrediction
    """
    checks.integer("n_samples", n_samples, 2)
    checks.positive_int("batch_size", batch_size)
    kind = output_transform(output)
    # Every Dropout, inside containers too, is switched on for these passes; the rest of the
    # model runs its own inference forward (padding masks and token ids included).
    dropouts = [la for _, la, _ in named_layers(model.layers) if isinstance(la, Dropout)]
    if not dropouts:
        raise ValueError(
            "MC dropout needs a model with at least one Dropout layer; this one has none "
            f"({', '.join(type(la).__name__ for la in model.layers)})"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = check_X(X)  # at least one row: an empty X has no outputs to average
    saved = [layer.rng for layer in dropouts]
    means, stds, ents, mis = [], [], [], []
    try:
        for layer in dropouts:
            layer.rng = rng
            layer.forward = _always_on(layer)  # an instance attribute, deleted below
        for start in range(0, X.shape[0], batch_size):
            xb = X[start : start + batch_size]
            samples = []
            for _ in range(n_samples):
                out = model.forward(xb)
                samples.append(_transform(out.astype(np.float64), kind))
            P = np.stack(samples)  # (T, chunk, k)
            mean = P.mean(axis=0)
            means.append(mean)
            stds.append(P.std(axis=0))
            if kind == "softmax":
                ent = _entropy(mean)
                ents.append(ent)
                mis.append(ent - _entropy(P).mean(axis=0))
    finally:
        for layer, r in zip(dropouts, saved, strict=True):
            layer.rng = r
            layer.__dict__.pop("forward", None)
            layer._scaled_mask = None  # the last pass's mask: no backward will release it
    return MCPrediction(
        mean=np.concatenate(means),
        std=np.concatenate(stds),
        entropy=np.concatenate(ents) if ents else None,
        mutual_information=np.concatenate(mis) if mis else None,
    )


def _check_probs(probs: Any, y: Any, rows: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(n, k)`` as float64 and integer labels in ``[0, k)``, ``n >= 1``; with ``rows``,
    the scores must be probability rows (finite entries in [0, 1], each row summing to 1 within
    0.05, as SoftmaxCrossEntropy's target rows): logits or a single sigmoid column would give
    an ECE above 1, or a bin index out of range."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(y)
    if probs.ndim != 2 or y.ndim != 1 or probs.shape[0] != y.shape[0]:
        raise ValueError(
            f"expected probabilities (n, n_classes) and labels (n,), got {probs.shape} and "
            f"{y.shape}"
        )
    if not y.size:
        raise ValueError("no samples: calibration needs at least one")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"y must hold integer labels, got {y.dtype} values such as {y[0]!r}")
    if np.any(bad := (y < 0) | (y >= probs.shape[1])):
        raise ValueError(f"label {y[bad][0]:g} out of range for {probs.shape[1]} classes")
    if rows:
        sums = probs.sum(axis=1)
        bad = ~((probs >= 0) & (probs <= 1)).all(axis=1) | ~(np.abs(sums - 1) <= 0.05)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                "probs must be predicted probabilities (n, n_classes): entries in [0, 1], each "
                f"row summing to 1; row {i} is {probs[i].tolist()!r:.80} (sum {sums[i]:.6g}). "
                "Logits go through softmax first; a binary classifier's p(1) as [1 - p, p]"
            )
    return probs, y.astype(np.int64)


def reliability_curve(
    probs: Any, y: Any, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and count (empty bins have NaN means).

    Parameters
    ----------
    probs : array-like (n, n_classes)
        Predicted probabilities.
    y : array-like (n,)
        Integer labels.
    n_bins : int
        Equal-width bins over [0, 1], closed on the right: ``((b - 1) / M, b / M]``.

    Returns
    -------
    confidence, accuracy : ndarray (n_bins,)
    counts : ndarray (n_bins,) of int
    """
    checks.positive_int("n_bins", n_bins)
    probs, y = _check_probs(probs, y, rows=True)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    # Edges from linspace, not floor(conf * M): 0.7 * 10 rounds to 7.000000000000001.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(bins, conf, n_bins) / counts
        accuracy = np.bincount(bins, correct, n_bins) / counts
    return confidence, accuracy, counts


def expected_calibration_error(probs: Any, y: Any, n_bins: int = 15) -> float:
    """``sum_b (n_b / n) |accuracy_b - confidence_b|`` over equal-width confidence bins.

    Parameters
    ----------
    probs : Any
        Predicted class probabilities ``(n, k)``.
    y : Any
        Integer labels ``(n,)``.
    n_bins : int, default 15
        Number of equal-width confidence bins.

    Returns
    -------
    float
        The ECE, in ``[0, 1]``.
    """
    confidence, accuracy, counts = reliability_curve(probs, y, n_bins)
    used = counts > 0
    return float(np.sum(counts[used] * np.abs(accuracy[used] - confidence[used])) / counts.sum())


class TemperatureScaling:
    """Divide logits by a scalar temperature fitted on held-out data (Guo et al. 2017).

    Attributes
    ----------
    temperature_ : float
        The fitted ``T`` (1.0 before :meth:`fit`).

    Parameters
    ----------
    bounds : tuple[float, float], default (0.05, 20.0)
        Search interval of the temperature ``T``.
    """

    def __init__(self, bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
        self.bounds = bounds
        self.temperature_ = 1.0

    @staticmethod
    def _nll(logits: np.ndarray, y: np.ndarray, T: float) -> float:
        logp = special.log_softmax(logits / T, axis=1)
        return float(-np.mean(logp[np.arange(len(y)), y]))

    def fit(self, logits: Any, y: Any) -> TemperatureScaling:
        """Fit ``T`` by minimizing the NLL of ``softmax(logits / T)``; returns self.

        Parameters
        ----------
        logits : array-like (n, n_classes)
        y : array-like (n,) integer labels

        Returns
        -------
        TemperatureScaling
        """
        logits, y = _check_probs(logits, y)
        if not np.isfinite(logits).all():  # a NaN objective: minimize_scalar returns any T
            i, j = np.argwhere(~np.isfinite(logits))[0]
            raise ValueError(f"logits must be finite, got {logits[i, j]} in row {i}")
        lo, hi = np.log(self.bounds[0]), np.log(self.bounds[1])
        res = optimize.minimize_scalar(
            lambda log_t: self._nll(logits, y, float(np.exp(log_t))),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        self.temperature_ = float(np.exp(res.x))
        return self

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits / T)``, ``(n, n_classes)``.

        Parameters
        ----------
        logits : array-like (n, n_classes)

        Returns
        -------
        ndarray (n, n_classes)
        """
        logits = np.asarray(logits, np.float64)
        if logits.ndim != 2:
            raise ValueError(f"logits must be 2-D (n, n_classes), got shape {logits.shape}")
        return special.softmax(logits / self.temperature_, axis=1)


__all__ = [
    "MCPrediction",
    "TemperatureScaling",
    "expected_calibration_error",
    "mc_dropout_predict",
    "output_transform",
    "reliability_curve",
]
