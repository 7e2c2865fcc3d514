"""Figures of a model's predictions on the test set.

======================  ========================================================================
function                draws
======================  ========================================================================
fig_confusion           the confusion matrix ``cm[true, predicted]`` (counts), with the accuracy
fig_pred_vs_true        predicted against true targets (regression), with ``R^2``
fig_decision_boundary   a classifier's decision regions (or probabilities) over 2-D inputs
======================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data import R2
from .mpl import plt


def fig_confusion(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list, part: str = "test set"
) -> plt.Figure:
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * k, 0.6 + 0.5 * k) if k > 6 else (4.5, 4))
    im = ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    labels = [str(c) for c in classes]
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set(title=f"Confusion matrix, {part} (accuracy {acc:.3f})", xlabel="predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="samples")
    fig.tight_layout()
    return fig


def fig_pred_vs_true(y_true: np.ndarray, y_pred: np.ndarray, part: str = "test set") -> plt.Figure:
    """Predicted against true targets, one colour per output; the title's R² is the uniform
    average over outputs of ``1 - SS_res / SS_tot``, as metrics.json's ``r2`` (``bp.data.R2``)."""
    T = np.asarray(y_true, float).reshape(len(y_true), -1)
    P = np.asarray(y_pred, float).reshape(T.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    for j in range(T.shape[1]):
        label = part.replace("set", "samples") + (f", output {j}" if T.shape[1] > 1 else "")
        ax.scatter(T[:, j], P[:, j], s=12, alpha=0.7, label=label)
    lo, hi = float(min(T.min(), P.min())), float(max(T.max(), P.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="perfect prediction")
    metric = R2()  # the metric itself: a constant output counts out exactly as there
    metric.reset()
    metric.update(P, T)
    r2 = metric.result()
    ax.set(title=f"Predicted vs true, {part} (R² {r2:.3f})", xlabel="true", ylabel="predicted")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def fig_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    classes: list,
    proba: Callable[[np.ndarray], np.ndarray] | None = None,
    points: str = "test points",
) -> plt.Figure:
    """Decision regions of a classifier on 2-D inputs, with the points ``X`` coloured by class.

    ``predict`` maps raw points ``(m, 2)`` to class codes; ``proba``, when given, to class
    probabilities ``(m, k)``: the background is then shaded by the probability of the predicted
    class (pale near a boundary, where the model is unsure), with the 0.5 contour drawn for two
    classes. ``points`` names the points in the title ("test points", "training points").
    """
    pad = 0.5 * (X.max(axis=0) - X.min(axis=0)).max() / 4 + 0.1
    (x0, y0), (x1, y1) = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    zz = predict(grid).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(6.8, 4.5))
    k = len(classes)
    cmap = plt.get_cmap("coolwarm" if k == 2 else "tab10")

    def color(c: int):
        return cmap(c / max(k - 1, 1)) if k == 2 else cmap(c)

    if proba is None:
        ax.contourf(gx, gy, zz, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.3)
    else:
        P = proba(grid)
        if k == 2:
            p1 = P[:, -1].reshape(gx.shape)
            im = ax.contourf(gx, gy, p1, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.45)
            ax.contour(gx, gy, p1, levels=[0.5], colors="k", linewidths=1)
            fig.colorbar(im, ax=ax, label=f"P(class {classes[-1]})", shrink=0.85)
        else:
            rgba = np.array([color(c) for c in range(k)])[zz]
            rgba[..., 3] = 0.6 * (P.max(axis=1).reshape(gx.shape) - 1 / k) / (1 - 1 / k)
            ax.imshow(rgba, origin="lower", extent=(x0, x1, y0, y1), aspect="auto")
    size = 14 if len(X) > 50 else 80  # a handful of points (XOR) must stay visible
    for c in range(k):
        pts = X[np.asarray(y) == c]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=size,
            color=color(c),
            edgecolor="k",
            lw=0.5,
            label=str(classes[c]),
            zorder=3,
        )
    if proba is None:
        title = f"Decision regions and the {points}"
    elif k == 2:
        title = f"P(class {classes[-1]}), decision boundary (black) and the {points}"
    else:
        title = f"Predicted class, paler where less sure, and the {points}"
    ax.set_title(title, fontsize=10)
    ax.set(xlabel="feature 0", ylabel="feature 1")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    # below the axes, so that no point is ever hidden behind it
    ax.legend(title="class", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(k, 6))
    fig.tight_layout()
    return fig
