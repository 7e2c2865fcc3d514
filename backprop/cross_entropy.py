"""The cross-entropies: classification losses that take logits.

==========================  =====================================================================
loss                        l_i (from logits z; targets t)
==========================  =====================================================================
SoftmaxCrossEntropy         -sum_k t_ik log softmax(z_i)_k = logsumexp_k z_ik - sum_k t_ik z_ik
                            (t: labels, or rows of probabilities summing to 1)
BinaryCrossEntropy          mean_k  max(z,0) - z t + log1p(exp(-|z|))  (binary and multi-label)
SequenceCrossEntropy        mean over real steps of the softmax cross-entropy, (n, t, k) logits
==========================  =====================================================================

They take logits, not probabilities, and are computed so that huge logits never overflow. Their
gradients are the fused ``(softmax(z) - t)`` and ``(sigmoid(z) - t)`` (scaled by ``w_i / sum w``
and, for BCE, ``1 / n_outputs``). The protocol and the scaling convention are in
:mod:`backprop.losses`; every name is importable from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from . import checks
from .data import check_sample_weight
from .loss_base import Loss, _targets_like


def _check_rows(t: np.ndarray) -> np.ndarray:
    """Probability rows: entries >= 0, each row summing to 1 (within 0.05, so that rows rounded
    to a few decimals pass). A negative entry makes ``-sum_k t_ik log softmax(z_i)_k``
    unbounded below; a row far from summing to 1 is a mistake (multi-hot rows meant for
    BinaryCrossEntropy, an all-zero row that silently drops its sample, a column of labels)."""
    if not t.size:
        return t
    sums = t.sum(axis=1, dtype=np.float64)
    bad = ~(np.abs(sums - 1.0) <= 0.05)  # NaN rows are bad too
    if bad.any() or t.min() < 0:
        i = int(np.flatnonzero(bad | (t < 0).any(axis=1))[0])
        raise ValueError(
            "SoftmaxCrossEntropy targets (n, k) must be probability rows (entries >= 0, each "
            f"row summing to 1); row {i} is {t[i].tolist()!r:.80} (sum {sums[i]:.6g}). Integer "
            "class labels go as (n,); several labels on at once need BinaryCrossEntropy"
        )
    return t


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of ``softmax(z)`` against integer labels ``(n,)`` or probability rows
    ``(n, k)`` (one-hot or soft: entries >= 0, rows summing to 1 within 0.05, else a
    ValueError), from logits ``z`` ``(n, k)``.

    ``l_i = -sum_k t_ik log softmax(z_i)_k``; ``label_smoothing = e`` replaces the target ``t``
    by ``(1 - e) t + e / k``. Gradient: ``dl_i/dz = T_i softmax(z_i) - t_i`` with
    ``T_i = sum_k t_ik``, which is 1 for labels and probability rows (up to their rounding).

    Parameters
    ----------
    label_smoothing : float, default 0.0
        ``e`` in ``[0, 1)``: the target ``t`` becomes ``(1 - e) t + e / k``.
    """

    gradient = (
        "softmax(z) - t        (softmax and cross-entropy fused: no division by a probability;\n"
        "    T softmax(z) - t for rows t that sum to T, a rounding away from 1)"
    )
    decision = "argmax"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = checks.real("label_smoothing", label_smoothing, 0.0, 1.0, "left")
        self._rows: np.ndarray | None = None

    def _labels(self, z: np.ndarray, y_true: Any) -> np.ndarray | None:
        """Validated integer labels ``(n,)``, or None when ``y_true`` holds probability rows."""
        n, k = z.shape
        t = np.asarray(y_true)
        if not (t.ndim == 1 or (t.ndim == 2 and t.shape[1] == 1 and k > 1)):
            return None
        labels = t.reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"y_true has {labels.shape[0]} labels for {n} predictions")
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
                raise ValueError("integer class labels expected, got non-integer values")
            out = (labels < 0) | (labels >= k)  # before the cast: 1e20 would wrap to -2**63
            if np.any(out):
                bad = labels[out][0]
                bad = int(bad) if abs(float(bad)) < 2**53 else bad
                raise ValueError(f"class label {bad} out of range for {k} outputs")
        elif labels.dtype.kind not in "iub":
            raise ValueError(f"class labels must be integers, got dtype {labels.dtype}")
        labels = labels.astype(np.intp, copy=False)
        # One reduction checks both ends: seen as unsigned, a negative label is huge.
        if labels.size and labels.view(np.uintp).max() >= k:
            bad = labels[(labels < 0) | (labels >= k)][0]
            raise ValueError(f"class label {bad} out of range for {k} outputs")
        return labels

    def _targets(self, z: np.ndarray, y_true: Any) -> np.ndarray:
        """Target rows ``(n, k)`` (one-hot for labels), label smoothing applied."""
        n, k = z.shape
        labels = self._labels(z, y_true)
        if labels is not None:
            t = np.zeros((n, k), dtype=z.dtype)
            t[np.arange(n), labels] = 1
        else:
            t = _check_rows(_targets_like(z, y_true))
        if self.label_smoothing:
            e = self.label_smoothing
            t = (1 - e) * t + e / k
        return t.astype(z.dtype, copy=False)

    def _forward(self, z, y_true):
        # Fused softmax and cross-entropy, shifted by the row maximum m so nothing overflows:
        #   s_i = sum_k exp(z_ik - m_i),   logsumexp_i = log s_i + m_i,
        #   l_i = logsumexp_i - sum_k t_ik z_ik,   dl_i/dz = exp(z_i - m_i) / s_i - t_i.
        # Integer labels (no smoothing) index the one target entry instead of a one-hot matrix,
        # and their l_i = log s_i - (z_iy - m_i) avoids adding and subtracting m_i.
        labels = None if self.label_smoothing else self._labels(z, y_true)
        m = z.max(axis=1, keepdims=True)
        shifted = z - m
        rows = self._rows
        if rows is None or rows.shape[0] != z.shape[0]:
            rows = self._rows = np.arange(z.shape[0])  # kept: every batch has the same size
        if labels is not None:
            target_logit = shifted[rows, labels]
        else:
            # Rows: l_i = -sum_k t_ik log softmax(z_i)_k = T_i log s_i - sum_k t_ik (z_ik - m_i)
            # with T_i = sum_k t_ik (1 up to rounding), from the shifted logits: t . z - m
            # cancels (a float32 logit of 1e4 has an ulp of 1e-3) and a rounded T_i != 1
            # would add m_i (1 - T_i). Gradient T_i softmax(z_i) - t_i.
            t = self._targets(z, y_true)
            row_sums = t.sum(axis=1)
            target_logit = np.einsum("ij,ij->i", t, shifted)
        p = np.exp(shifted, out=shifted)
        s = p.sum(axis=1, keepdims=True)
        p /= s
        per_sample = np.log(s[:, 0])
        if labels is not None:
            per_sample -= target_logit
            p[rows, labels] -= 1
        else:
            per_sample *= row_sums
            per_sample -= target_logit
            p *= row_sums[:, None]
            p -= t
        return per_sample, p

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}


class BinaryCrossEntropy(Loss):
    """Binary (and multi-label) cross-entropy from logits ``z`` ``(n, k)`` against targets in
    [0, 1] of the same shape (``(n,)`` is accepted for ``k = 1``).

    ``l_i = mean_k max(z,0) - z t + log1p(exp(-|z|))``; ``dl_i/dz = (sigmoid(z) - t) / k``.
    """

    gradient = "(sigmoid(z) - t) / k"
    decision = "threshold"

    def _forward(self, z, y_true):
        t = _targets_like(z, y_true)
        if t.size and not (t.min() >= 0 and t.max() <= 1):  # NaN fails both comparisons
            raise ValueError(
                f"BinaryCrossEntropy targets must lie in [0, 1], got {t.min()}..{t.max()}"
            )
        k = z.shape[1]
        per_elem = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        dl = special.expit(z)
        dl -= t
        dl *= z.dtype.type(1.0 / k)
        return per_elem.mean(axis=1), dl


class SequenceCrossEntropy(Loss):
    """Per-step cross-entropy for sequence-to-sequence tasks: logits ``z`` ``(n, t, k)``, integer
    labels ``(n, t)``; a label equal to ``ignore_index`` marks a padded step, which adds nothing
    to the loss or its gradient. With ``V`` the set of real steps and weights ``w_i`` (1 without
    ``sample_weight``)::

        L = sum_{(i,s) in V} w_i ce(z_is, y_is) / sum_{(i,s) in V} w_i
        dL/dz_is = w_i (softmax(z_is) - onehot(y_is)) / sum_{(i,s) in V} w_i     (0 off V)

    so the loss is the mean over real steps (torch's ``ignore_index`` with ``reduction="mean"``).

    Parameters
    ----------
    ignore_index : int, default -1
        The label that marks a padded step.
    """

    gradient = (
        "w_i (softmax(z_is) - onehot(y_is)) / sum_V w   per step s of (n, t, k) logits; "
        "0 at ignored steps (the 1/n is this sum)"
    )

    def __init__(self, ignore_index: int = -1) -> None:
        super().__init__()
        self.ignore_index = checks.integer("ignore_index", ignore_index)

    def forward(self, y_pred: Any, y_true: Any, sample_weight: Any = None) -> float:
        z = np.asarray(y_pred)
        if z.ndim != 3 or z.dtype.kind != "f":
            raise ValueError(
                f"y_pred must be float logits (n, t, classes), got {z.dtype} {z.shape}"
            )
        n, t, k = z.shape
        labels = np.asarray(y_true)
        if labels.shape != (n, t):
            raise ValueError(f"y_true must have shape {(n, t)}, got {labels.shape}")
        if labels.dtype.kind not in "iu":
            if labels.dtype.kind != "f" or np.any(labels != np.round(labels)):
                raise ValueError(f"y_true must hold integer labels, got dtype {labels.dtype}")
        valid = labels != self.ignore_index
        # The range is checked before float labels are cast: inf or 1e20 would wrap to -2**63.
        if np.any(valid & ((labels < 0) | (labels >= k))):
            bad = labels[valid & ((labels < 0) | (labels >= k))][0]
            bad = int(bad) if abs(float(bad)) < 2**53 else bad
            raise ValueError(f"class label {bad} out of range for {k} outputs")
        labels = labels.astype(np.intp, copy=False)
        w = check_sample_weight(sample_weight, n)
        # w_i / sum_V w in float64, cast once: weights cast first overflowed (1e39 in float32)
        # or went subnormal (1e-40), as Loss's _check_weights also avoids.
        weight = valid.astype(np.float64) if w is None else valid * w[:, None]
        total = weight.sum()
        if total <= 0:
            raise ValueError("SequenceCrossEntropy: no real (non-ignored, weighted) step")
        # Softmax and log-sum-exp shifted by each step's maximum, as in SoftmaxCrossEntropy.
        p = z - z.max(axis=2, keepdims=True)
        safe = np.where(valid, labels, 0)
        target = np.take_along_axis(p, safe[:, :, None], axis=2)[:, :, 0]
        np.exp(p, out=p)
        s = p.sum(axis=2, keepdims=True)
        p /= s
        per_step = np.log(s[:, :, 0]) - target
        weight /= total
        value = float(np.einsum("ij,ij->", per_step, weight, dtype=np.float64))
        np.put_along_axis(p, safe[:, :, None], np.take_along_axis(p, safe[:, :, None], 2) - 1, 2)
        p *= weight.astype(z.dtype)[:, :, None]
        self._grad = p
        return value

    def total_weight(self, y_true: Any, sample_weight: Any, n: int) -> float:
        """``sum_{(i,s) in V} w_i``: the weight of the real steps, which ``forward`` divides by."""
        valid = np.asarray(y_true) != self.ignore_index
        if sample_weight is None:
            return float(np.count_nonzero(valid))
        w = np.asarray(sample_weight, dtype=np.float64)
        return float(np.dot(valid.sum(axis=1), w)) if valid.ndim == 2 else float(valid.sum())

    def config(self) -> dict[str, Any]:
        return {"ignore_index": self.ignore_index}


__all__ = ["BinaryCrossEntropy", "SequenceCrossEntropy", "SoftmaxCrossEntropy"]
