"""Figures of a training run (matplotlib, Agg backend: files only, no window).

Each ``fig_*`` function returns a Figure; :func:`draw_run` writes every figure that applies to a
run directory into ``RUN_DIR/figures/`` from the files the run left behind::

    history.csv      -> loss.png, metrics.png, lr.png, grad_norms.png
    model.npz        -> weights.png, first_layer.png (square inputs: 8x8 digits, 28x28 MNIST),
                        conv_filters.png (a model with a Conv2D layer)
    predictions.npz  -> confusion.png (classification), pred_vs_true.png (regression),
                        decision_boundary.png (2-D inputs), feature_maps.png (a convolutional
                        model: the first test image as the model
                        takes it, stored as ``image``, layer by layer)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

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
    """The first ``n`` units' input weights as images, tiled into one mosaic (one ``imshow``
    is far faster to draw than a grid of axes). Each unit is scaled by its own max |w|."""
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
    fig, ax = plt.subplots(figsize=(1.1 * cols + 1.2, 1.1 * rows + 0.8))
    im = ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks([(w + 1) * c + w / 2 - 0.5 for c in range(cols)], [str(c) for c in range(cols)])
    ax.set_yticks(
        [(h + 1) * r + h / 2 - 0.5 for r in range(rows)], [str(r * cols) for r in range(rows)]
    )
    ax.set(
        title=f"First-layer weights of units 0-{n - 1} as {h}x{w} images",
        xlabel="unit (column offset)",
        ylabel="unit (row start)",
    )
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
    predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, classes: list
) -> plt.Figure:
    """``predict`` maps raw 2-D points ``(n, 2)`` to class codes."""
    pad = 0.5 * (X.max(axis=0) - X.min(axis=0)).max() / 4 + 0.1
    (x0, y0), (x1, y1) = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    zz = predict(grid).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    k = len(classes)
    cmap = plt.get_cmap("coolwarm" if k == 2 else "tab10")
    ax.contourf(gx, gy, zz, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.3)
    for c in range(k):
        pts = X[np.asarray(y) == c]
        color = cmap(c / max(k - 1, 1)) if k == 2 else cmap(c)
        size = 14 if len(X) > 50 else 60  # a handful of points (XOR) must stay visible
        ax.scatter(
            pts[:, 0], pts[:, 1], s=size, color=color, edgecolor="k", lw=0.3, label=str(classes[c])
        )
    ax.set(title="Decision regions and test points", xlabel="feature 0", ylabel="feature 1")
    ax.legend(title="class", framealpha=0.7)
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

                def predict(P):
                    return class_codes(model_file.obj.predict(transform_X(prep, P)))

                figures["decision_boundary"] = fig_decision_boundary(
                    predict, pred["X"], pred["y_true"], meta["classes"]
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
