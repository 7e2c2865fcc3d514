"""Pictures of a trained model: its weights, its sparsity, its first layer, its filters and
what its layers make of one input.

=================  ============================================================================
function           draws
=================  ============================================================================
fig_weights        a histogram of each weight matrix (parameters of kind "weight")
fig_sparsity       per-matrix density of a pruned model, and the sparsity per epoch if logged
fig_first_layer    the first layer's weights of each hidden unit as an image of the input shape
fig_conv_filters   the first Conv2D's filters ``(kh, kw)``, averaged over input channels
fig_feature_maps   one input through the model: every image-shaped ``(h, w, c)`` output
=================  ============================================================================

Functions that do not apply to the model return None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .curves import _epochs
from .mpl import plt


def fig_weights(model: Any) -> plt.Figure:
    """A histogram of each parameter of kind "weight" (Dense and convolution kernels, a
    recurrent layer's input and recurrent matrices); biases and gains are left out."""
    params, slices = model.parameters(), model.param_slices()
    weights = [(k, params[k]) for k, sl in slices.items() if sl.stop <= model.n_weights]
    n = max(len(weights), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, (name, W) in zip(axes[0], weights, strict=False):
        ax.hist(np.ravel(W), bins=50, color="tab:blue")
        ax.set(title=f"{name} {W.shape}", xlabel="weight value", ylabel="count")
    fig.suptitle("Weight histograms per weight matrix")
    fig.tight_layout()
    return fig


def fig_sparsity(model: Any, history: dict[str, list[float]] | None = None) -> plt.Figure:
    """Per-layer density of a pruned model (fraction of each weight matrix kept), and the
    total sparsity per epoch when the history has it (the GradualPruning callback logs it)."""
    per_layer = {k: v for k, v in model.sparsity().items() if k != "total"}
    curve = (history or {}).get("sparsity")
    fig, axes = plt.subplots(
        1, 2 if curve else 1, figsize=(9 if curve else 4.5, 3.4), squeeze=False
    )
    ax = axes[0][0]
    shapes = model.parameters()
    names = list(per_layer)
    ax.bar(names, [100 * (1 - per_layer[k]) for k in names], color="tab:blue")
    ax.set_xticks(range(len(names)), [f"{k}\n{shapes[k].shape}" for k in names], fontsize=8)
    total = 100 * (1 - model.sparsity()["total"])
    ax.set(ylabel="weights kept (%)", title=f"Density per weight matrix (total {total:.1f}%)")
    if curve:
        ax = axes[0][1]
        ax.plot(_epochs(history), [100 * c for c in curve], "o-", ms=3, color="tab:red")
        ax.set(xlabel="epoch", ylabel="sparsity (%)", title="Sparsity while training")
        ax.grid(alpha=0.3)
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


def fig_feature_maps(model: Any, x: np.ndarray, n: int = 8, skip: int = 0) -> plt.Figure | None:
    """One input sample ``x`` (a row as the model takes it) through the model: the input image
    and then, per layer whose output is an image ``(h, w, c)``, its first ``n`` channels. Layers
    are numbered from the ``skip``-th (a model file's preprocessing layers come first)."""
    out = np.asarray(x, dtype=model.dtype)[None]
    maps: list[tuple[str, np.ndarray]] = []
    if out.ndim == 4:
        maps.append(("input", out))
    for i, layer in enumerate(model.layers):
        out = layer.forward(out)
        if out.ndim == 4:  # a Reshape of the input rows shows the input image itself
            reshape = not layer.params and type(layer).__name__ == "Reshape"
            name = f"{i - skip}: {type(layer).__name__}"
            maps.append(("input" if reshape and not maps else name, out))
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
