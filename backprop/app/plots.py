"""Figures for Python users: ``bp.plot_history(history)`` and friends.

``import backprop`` does not import matplotlib; the first ``bp.plot_*`` call does (this module is
loaded on first use). Every function returns a matplotlib ``Figure``: show it (a notebook
displays it, ``plt.show()`` elsewhere) or save it (``fig.savefig("loss.png")``).

==============================  ============================================================
function                        what it draws
==============================  ============================================================
plot_history(history)           loss, and accuracy or R^2, per epoch (train and validation)
plot_gradient_norms(history)    per-parameter gradient norms (needs ``bp.GradientMonitor``)
plot_dead_relu(history)         fraction of dead ReLU units per layer (``GradientMonitor``)
plot_update_ratio(history)      ``||dW|| / ||W||`` per layer (``UpdateRatioMonitor``)
plot_weights(model)             a histogram of each weight matrix
plot_first_layer(model, shape)  first-layer weights as images of the input's shape
plot_decision_boundary(...)     a classifier's probabilities over 2-D inputs, with the points
plot_activations(start, end)    activation histograms per layer (``ActivationRecorder``)
==============================  ============================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..inference import classes_from_outputs, proba_from_outputs
from . import plotting

plt = plotting.plt


def plot_history(history: dict[str, list[float]]) -> Any:
    """Loss (left) and the metric (right, when there is one) per epoch, train and validation.

    Parameters
    ----------
    history : dict[str, list[float]]
        The trainer's history (``trainer.history`` or a run's ``history.json``), with the keys this figure draws.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    names = [k for k in ("accuracy", "r2") if k in history]
    fig, axes = plt.subplots(1, 1 + bool(names), figsize=(5.5 * (1 + bool(names)), 3.8))
    axes = np.atleast_1d(axes)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            axes[0].plot(epochs, history[key], label=label)
    axes[0].set(title="Loss per epoch", xlabel="epoch", ylabel="loss")
    for name in names:
        axes[1].plot(epochs, history[name], label=f"train {name}")
        if f"val_{name}" in history:
            axes[1].plot(epochs, history[f"val_{name}"], label=f"validation {name}")
        axes[1].set(title=f"{name} per epoch", xlabel="epoch", ylabel=name)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _per_layer(history: dict[str, list[float]], prefix: str, title: str, ylabel: str, log: bool):
    keys = [k for k in history if k.startswith(prefix)]
    if not keys:
        raise ValueError(f"the history has no {prefix}* columns; {_NEEDS[prefix]}")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    epochs = np.arange(1, len(history[keys[0]]) + 1)
    for k in keys:
        ax.plot(
            epochs, history[k], label=k[len(prefix) :], marker="." if len(epochs) < 30 else None
        )
    if log:
        ax.set_yscale("log")
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="layer" if prefix == "dead_relu/" else "parameter", fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


_NEEDS = {
    "grad_norm/": "train with callbacks=[bp.GradientMonitor()]",
    "dead_relu/": "train a network with ReLU layers with callbacks=[bp.GradientMonitor()]",
    "update_ratio/": "train with callbacks=[bp.UpdateRatioMonitor()]",
}


def plot_gradient_norms(history: dict[str, list[float]]) -> Any:
    """``||dL/dW||`` per parameter per epoch (mean over the epoch's batches), log scale.

    Parameters
    ----------
    history : dict[str, list[float]]
        The trainer's history (``trainer.history`` or a run's ``history.json``), with the keys this figure draws.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    return _per_layer(
        history, "grad_norm/", "Gradient norm per parameter", "||dL/dparam||, log scale", True
    )


def plot_dead_relu(history: dict[str, list[float]]) -> Any:
    """Fraction of each ReLU layer's units that output 0 for every sample of a batch.

    Parameters
    ----------
    history : dict[str, list[float]]
        The trainer's history (``trainer.history`` or a run's ``history.json``), with the keys this figure draws.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    # GradientMonitor counts on the epoch's last measured batch, not on all the data
    title = "Dead ReLU units per layer (each epoch's last measured batch)"
    fig = _per_layer(
        history, "dead_relu/", title, "fraction of units at 0 on the whole batch", False
    )
    top = max(np.nanmax(v) for k, v in history.items() if k.startswith("dead_relu/"))
    fig.axes[0].set_ylim(-0.01, max(0.1, 1.15 * float(top)))  # a fraction: 0 sits at the bottom
    return fig


def plot_update_ratio(history: dict[str, list[float]]) -> Any:
    """``||W_after - W_before|| / ||W||`` per update, averaged over each epoch (1e-3 marked).

    Parameters
    ----------
    history : dict[str, list[float]]
        The trainer's history (``trainer.history`` or a run's ``history.json``), with the keys this figure draws.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    fig = _per_layer(
        history, "update_ratio/", "Update-to-weight ratio per layer", "||dW|| / ||W||", True
    )
    fig.axes[0].axhline(1e-3, color="k", lw=0.8, ls=":", label="1e-3 (a common rule of thumb)")
    fig.axes[0].legend(fontsize="small", ncol=2)
    return fig


def plot_weights(model: Any) -> Any:
    """A histogram of each weight matrix of ``model``.

    Parameters
    ----------
    model : Any
        A built Sequential.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    return plotting.fig_weights(model)


def plot_first_layer(model: Any, image_shape: tuple[int, int], n: int = 32) -> Any:
    """The first ``n`` hidden units' input weights as ``image_shape`` images.

    Parameters
    ----------
    model : Any
        A model whose first layer is Dense.
    image_shape : tuple[int, int]
        ``(h, w)`` of one input image.
    n : int, default 32
        Number of hidden units shown.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    fig = plotting.fig_first_layer(model, tuple(image_shape), n)
    if fig is None:
        raise ValueError(f"the first weight matrix does not have {np.prod(image_shape)} rows")
    return fig


def plot_decision_boundary(
    model: Any,
    X: Any,
    y: Any,
    loss: Any = "cross_entropy",
    classes: list | None = None,
    points: str = "points",
) -> Any:
    """Class probabilities of a classifier over 2-D inputs ``X`` ``(n, 2)``, with the points
    coloured by their labels ``y`` (class codes ``0..k-1``). ``loss`` says how the model's
    outputs become probabilities (softmax or sigmoid); ``points`` names the points in the title.

    Parameters
    ----------
    model : Any
        A trained 2-input classifier (Sequential).
    X : Any
        Points ``(n, 2)``.
    y : Any
        Class codes ``0..k-1`` ``(n,)``.
    loss : Any, default 'cross_entropy'
        How outputs become probabilities: a cross-entropy loss or its name (softmax) or binary cross-entropy (sigmoid).
    classes : list | None, default None
        Class names for the legend (codes by default).
    points : str, default 'points'
        What the points are, for the title.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary needs 2-D inputs (n, 2), got shape {X.shape}")
    y = np.asarray(y)
    k = max(2, int(y.max()) + 1)
    classes = list(range(k)) if classes is None else list(classes)
    return plotting.fig_decision_boundary(
        lambda P: classes_from_outputs(model.predict(P), loss),
        X,
        y,
        classes,
        proba=lambda P: proba_from_outputs(model.predict(P), loss),
        points=points,
    )


def plot_activations(start: dict[str, np.ndarray], end: dict[str, np.ndarray]) -> Any:
    """Histograms of each activation layer's outputs at the start and end of training.

    Parameters
    ----------
    start : dict[str, np.ndarray]
        Activation outputs by layer name before training (from :class:`ActivationRecorder`).
    end : dict[str, np.ndarray]
        The same after training.

    Returns
    -------
    Any
        A matplotlib Figure.
    """
    names = list(end or start)
    if not names:
        raise ValueError("no activations recorded (bp.monitors.ActivationRecorder)")
    width = max(5.0, 3.3 * len(names))
    fig, axes = plt.subplots(1, len(names), figsize=(width, 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        both = [v for v in (start.get(name), end.get(name)) if v is not None]
        lo, hi = min(float(v.min()) for v in both), max(float(v.max()) for v in both)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
        for values, label, color in (
            (start.get(name), "start", "tab:gray"),
            (end.get(name), "end", "tab:blue"),
        ):
            if values is not None:
                ax.hist(values, bins=bins, alpha=0.55, color=color, label=label)
        ax.set_yscale("log")
        ax.set(title=f"layer {name}", xlabel="output value", ylabel="count (log)")
        ax.legend(fontsize="small")
    fig.suptitle("Activations on a fixed sample of training inputs: start vs end", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = [
    "plot_activations",
    "plot_dead_relu",
    "plot_decision_boundary",
    "plot_first_layer",
    "plot_gradient_norms",
    "plot_history",
    "plot_update_ratio",
    "plot_weights",
]
