"""Figures of a training run (matplotlib, Agg backend: files only, no window).

Each ``fig_*`` function returns a Figure; :func:`draw_run` writes every figure that applies to a
run directory into ``RUN_DIR/figures/`` from the files the run left behind::

    history.csv      -> loss.png, metrics.png, lr.png, grad_norms.png, and with the monitors
                        on: dead_relu.png, update_ratio.png
    activations.npz  -> activations.png (histograms per activation layer, start and end)
    model.npz        -> weights.png, first_layer.png (square inputs: 8x8 digits, 28x28 MNIST),
                        conv_filters.png (a model with a Conv2D layer)
    predictions.npz  -> confusion.png (classification), pred_vs_true.png (regression),
                        decision_boundary.png (2-D inputs), feature_maps.png (a convolutional
                        model: the first test image as the model
                        takes it, stored as ``image``, layer by layer)
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from ..progress import in_notebook

# Files only (no window) unless the user has chosen a backend already (pyplot imported) or works
# in a notebook, where the figures these functions return display inline.
if "matplotlib.pyplot" not in sys.modules and not in_notebook():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..filecheck import check_array_file  # noqa: E402
from .modelfile import checked_model_file  # noqa: E402


def read_history(path: str | Path) -> dict[str, list[float]]:
    """history.csv back into ``{column: values}`` (empty cells become NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = rows[0].keys() if rows else []
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in keys}


def write_history(history: dict[str, list[float]], path: str | Path) -> None:
    keys = list(history)
    n = max((len(v) for v in history.values()), default=0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for i in range(n):
            w.writerow([repr(float(history[k][i])) if i < len(history[k]) else "" for k in keys])


def _epochs(history: dict[str, list[float]]) -> np.ndarray:
    n = len(history.get("loss", []))
    return np.asarray(history.get("epoch", range(1, n + 1)), dtype=float)


def fig_loss(history: dict[str, list[float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = _epochs(history)
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            ax.plot(x, history[key], label=label, marker="." if len(x) < 40 else None)
    values = np.asarray(history.get("loss", []), dtype=float)
    if values.size and np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="loss (incl. L1/L2 penalty)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def fig_metrics(history: dict[str, list[float]]) -> plt.Figure | None:
    names = [k for k in ("accuracy", "r2") if k in history]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    x = _epochs(history)
    for name in names:
        ax.plot(x, history[name], label=f"train {name}")
        if f"val_{name}" in history:
            ax.plot(x, history[f"val_{name}"], label=f"validation {name}")
    ax.set(title="Metric per epoch", xlabel="epoch", ylabel=" / ".join(names))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def fig_lr(history: dict[str, list[float]]) -> plt.Figure | None:
    if "lr" not in history or not np.all(np.isfinite(history["lr"])):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(_epochs(history), history["lr"], label="learning rate", color="tab:purple")
    ax.set(title="Learning rate (set at the start of each epoch)", xlabel="epoch", ylabel="lr")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def fig_grad_norms(history: dict[str, list[float]]) -> plt.Figure | None:
    keys = [k for k in history if k.startswith("grad_norm/")]
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = _epochs(history)
    for k in keys:
        ax.plot(x, history[k], label=k.split("/", 1)[1])
    ax.set_yscale("log")
    ax.set(
        title="Gradient norm per parameter (mean over the epoch's batches)",
        xlabel="epoch",
        ylabel="||dL/dparam|| (log scale)",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=2, fontsize="small", title="parameter")
    fig.tight_layout()
    return fig


def fig_weights(model: Any) -> plt.Figure:
    weights = [(k, v) for k, v in model.parameters().items() if k.endswith(".W")]
    n = max(len(weights), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, (name, W) in zip(axes[0], weights, strict=False):
        ax.hist(np.ravel(W), bins=50, color="tab:blue")
        ax.set(title=f"{name} {W.shape}", xlabel="weight value", ylabel="count")
    fig.suptitle("Weight histograms per Dense layer")
    fig.tight_layout()
    return fig


def fig_first_layer(model: Any, image_shape: tuple[int, int], n: int = 32) -> plt.Figure | None:
    """The first ``n`` hidden units' input weights, each drawn as an image of the input's shape
    (a pixel's colour is the weight from that pixel), tiled 8 to a row into one mosaic (one
    ``imshow`` is far faster to draw than a grid of axes). Each unit is scaled by its own
    max |w|; each tile is labelled with its unit's number."""
    W = next((v for k, v in model.parameters().items() if k.endswith(".W")), None)
    if W is None or W.shape[0] != image_shape[0] * image_shape[1]:
        return None
    n = min(n, W.shape[1])
    cols = min(8, n)
    rows = math.ceil(n / cols)
    h, w = image_shape
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for j in range(n):
        unit = W[:, j].reshape(image_shape).astype(np.float64)
        r, c = divmod(j, cols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = unit / (
            np.abs(unit).max() or 1.0
        )
    fig, ax = plt.subplots(figsize=(1.1 * cols + 1.2, 1.1 * rows + 0.9))
    im = ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1)
    for j in range(n):
        r, c = divmod(j, cols)
        ax.text(
            c * (w + 1) + 0.2,
            r * (h + 1) + 0.2,
            str(j),
            fontsize=7,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.5, "lw": 0},
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"First-layer weights of hidden units 0-{n - 1}, each as a {h}x{w} image")
    ax.set_xlabel(f"hidden units {cols} to a row (number at each tile's top left)")
    ax.set_ylabel("pixel = weight from\nthat input pixel")
    fig.colorbar(im, ax=ax, label="weight / max |weight| of the unit", shrink=0.8)
    fig.tight_layout()
    return fig


def fig_conv_filters(model: Any, n: int = 32) -> plt.Figure | None:
    """The first Conv2D layer's filters ``W[:, :, ch, f]`` as ``kh x kw`` images (averaged over
    the input channels when there are several), each scaled by its own max |w|."""
    W = next((v for k, v in model.parameters().items() if k.endswith(".W") and v.ndim == 4), None)
    if W is None:
        return None
    kernels = W.astype(np.float64).mean(axis=2)  # (kh, kw, filters)
    n = min(n, kernels.shape[-1])
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols + 0.6, 1.25 * rows + 0.6))
    for j, ax in enumerate(np.ravel(axes)):
        ax.set_axis_off()
        if j < n:
            k = kernels[:, :, j]
            ax.imshow(k / (np.abs(k).max() or 1.0), cmap="RdBu_r", vmin=-1, vmax=1)
            ax.set_title(f"filter {j}", fontsize=8)
    c_in = W.shape[2]
    how = "" if c_in == 1 else f", mean over {c_in} input channels"
    fig.suptitle(f"First convolution: {n} filters, {W.shape[0]}x{W.shape[1]}{how}")
    fig.tight_layout()
    return fig


def fig_feature_maps(model: Any, x: np.ndarray, n: int = 8) -> plt.Figure | None:
    """One input sample ``x`` (a row as the model takes it) through the model: the input image
    and then, per layer whose output is an image ``(h, w, c)``, its first ``n`` channels."""
    out = np.asarray(x, dtype=model.dtype)[None]
    maps: list[tuple[str, np.ndarray]] = []
    if out.ndim == 4:
        maps.append(("input", out))
    for i, layer in enumerate(model.layers):
        out = layer.forward(out)
        if out.ndim == 4:  # a Reshape of the input rows shows the input image itself
            reshape = not layer.params and type(layer).__name__ == "Reshape"
            maps.append(("input" if reshape and not maps else f"{i}: {type(layer).__name__}", out))
    if not maps:
        return None
    cols = min(n, max(m.shape[-1] for _, m in maps))
    fig, axes = plt.subplots(
        len(maps), cols, figsize=(1.3 * cols + 1.4, 1.35 * len(maps) + 0.5), squeeze=False
    )
    for r, (name, m) in enumerate(maps):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c < m.shape[-1]:
                ax.imshow(m[0, :, :, c], cmap="gray" if r == 0 else "viridis")
            else:
                ax.set_axis_off()
        axes[r][0].set_ylabel(name, fontsize=8)
    fig.suptitle("Feature maps of one test image, layer by layer (first channels)")
    fig.tight_layout()
    return fig


def fig_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list) -> plt.Figure:
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
    ax.set(title=f"Confusion matrix, test set (accuracy {acc:.3f})", xlabel="predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="samples")
    fig.tight_layout()
    return fig


def fig_pred_vs_true(y_true: np.ndarray, y_pred: np.ndarray) -> plt.Figure:
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=12, alpha=0.7, label="test samples")
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="perfect prediction")
    ss = np.sum((y_true - y_true.mean()) ** 2)
    r2 = 1 - np.sum((y_true - y_pred) ** 2) / ss if ss > 0 else math.nan
    ax.set(title=f"Predicted vs true, test set (R² {r2:.3f})", xlabel="true", ylabel="predicted")
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


def draw_run(run_dir: str | Path) -> list[Path]:
    """(Re-)draw every figure that applies to ``run_dir``; returns the files written."""
    from .sources import transform_X

    run_dir = Path(run_dir)
    out_dir = run_dir / "figures"
    out_dir.mkdir(exist_ok=True)
    figures: dict[str, Any] = {}
    if (run_dir / "history.csv").is_file():
        history = read_history(run_dir / "history.csv")
        figures["loss"] = fig_loss(history)
        figures["metrics"] = fig_metrics(history)
        figures["lr"] = fig_lr(history)
        figures["grad_norms"] = fig_grad_norms(history)
        figures.update(_monitor_figures(run_dir, history))
    model_file = None
    if (run_dir / "model.npz").is_file():
        model_file = checked_model_file(run_dir / "model.npz")
        figures["weights"] = fig_weights(model_file.obj)
        shape = model_file.metadata.get("image_shape")
        if shape:
            figures["first_layer"] = fig_first_layer(model_file.obj, tuple(shape))
        figures["conv_filters"] = fig_conv_filters(model_file.obj)
    if (run_dir / "predictions.npz").is_file() and model_file is not None:
        meta = model_file.metadata
        check_array_file(run_dir / "predictions.npz")  # sizes against the file, before np.load
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as f:
            pred = {k: f[k] for k in f.files}
        if "image" in pred:
            figures["feature_maps"] = fig_feature_maps(model_file.obj, pred["image"][0])
        if meta.get("task") == "classification":
            figures["confusion"] = fig_confusion(pred["y_true"], pred["y_pred"], meta["classes"])
            if "X" in pred and pred["X"].shape[1] == 2:
                prep = Preprocessing(model_file.extras)

                def outputs(P):
                    return model_file.obj.predict(transform_X(prep, P))

                def proba(P):
                    from ..inference import proba_from_outputs

                    return proba_from_outputs(outputs(P), meta.get("loss", "cross_entropy"))

                figures["decision_boundary"] = fig_decision_boundary(
                    lambda P: class_codes(outputs(P)),
                    pred["X"],
                    pred["y_true"],
                    meta["classes"],
                    proba=proba,
                    points=_points_label(run_dir),
                )
        else:
            figures["pred_vs_true"] = fig_pred_vs_true(pred["y_true"], pred["y_pred"])
    written = []
    for name, fig in figures.items():
        if fig is None:
            continue
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _monitor_figures(run_dir: Path, history: dict[str, list[float]]) -> dict[str, Any]:
    """Figures of the monitors' columns and of activations.npz, where the run has them."""
    from . import plots

    figures: dict[str, Any] = {}
    if any(k.startswith("dead_relu/") for k in history):
        figures["dead_relu"] = plots.plot_dead_relu(history)
    if any(k.startswith("update_ratio/") for k in history):
        figures["update_ratio"] = plots.plot_update_ratio(history)
    if (run_dir / "activations.npz").is_file():
        with np.load(run_dir / "activations.npz", allow_pickle=False) as f:
            start = {k[6:]: f[k] for k in f.files if k.startswith("start/")}
            end = {k[4:]: f[k] for k in f.files if k.startswith("end/")}
        if start or end:
            figures["activations"] = plots.plot_activations(start, end)
    return figures


def _points_label(run_dir: Path) -> str:
    """ "training points" when the run's test set is its training set (XOR), else "test points"."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return "test points"
    return "training points" if metrics.get("test_is_training_data") else "test points"


class Preprocessing:
    """Preprocessing read back from a model file's extras (for :func:`transform_X`)."""

    def __init__(self, extras: dict[str, np.ndarray]) -> None:
        self.x_mean = extras.get("x_mean")
        self.x_scale = extras.get("x_scale")
        self.y_mean = extras.get("y_mean")
        self.y_scale = extras.get("y_scale")


def class_codes(out: np.ndarray) -> np.ndarray:
    """Class codes from logits: argmax, or ``logit > 0`` for a single output."""
    return (out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)
