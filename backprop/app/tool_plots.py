"""Figures of the training-run tools: range test, loss landscapes, calibration, cartography.

Each function draws one figure into ``path`` (PNG) and returns the path. They take plain arrays,
so scripts and the command line share them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def check_figure_path(path: Path) -> None:
    """Refuse a file name whose suffix matplotlib cannot write (``.txt``, or none, which
    savefig would quietly turn into ``NAME.png``): a ValueError, before any work is done."""
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if Path(path).suffix.lower().lstrip(".") not in kinds:
        raise ValueError(
            f"{path}: a figure file name ends in .png, .pdf, .svg, ... (one of {', '.join(sorted(kinds))})"
        )


def plot_lr_find(curves: dict[str, object], path: Path) -> Path:
    """One range-test curve per entry of ``curves`` (name -> LRFinderResult), with the
    suggested rate marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (name, r), color in zip(curves.items(), plt.cm.tab10.colors, strict=False):
        ax.plot(r.lrs, r.smoothed, color=color, label=f"{name}: suggested lr {r.suggestion:.3g}")
        ax.plot(r.lrs, r.losses, color=color, alpha=0.25, lw=0.8)
        i = int(np.argmin(np.abs(np.log(r.lrs) - np.log(r.suggestion))))
        ax.plot([r.suggestion], [r.smoothed[i]], "o", color=color, ms=7)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale), raised every update")
    ylabel = "training loss (faint: raw batch loss; line: smoothed)"
    # A diverged tail (a batch loss hundreds of times the first) would stretch the axis until
    # the whole descent is a flat line at the bottom: cut the axis at 3x the first loss.
    first = max(float(r.smoothed[0]) for r in curves.values())
    low = min(float(np.nanmin(r.losses)) for r in curves.values())
    peak = max(float(np.nanmax(r.losses)) for r in curves.values())
    if first > 0 and peak > 3 * first:
        ax.set_ylim(min(0.0, low) if low < 0 else 0.9 * low, 3 * first)
        ylabel += ";\ny axis cut at 3x the first loss"
    ax.set_ylabel(ylabel)
    ax.set_title("Learning-rate range test (dot: minimum of the smoothed loss / 10)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def _positive(values) -> bool:
    """Whether every finite value is > 0 (a log scale shows them all; a Poisson loss, which
    drops log t!, can be negative and is drawn on a linear scale)."""
    v = np.concatenate([np.ravel(x) for x in values]).astype(float)
    return bool(np.all(v[np.isfinite(v)] > 0))


def plot_landscape_1d(profiles: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, xlabel: str):
    """Loss profiles ``name -> (alphas, losses)`` on one axis (log loss when all positive)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (a, loss) in profiles.items():
        ax.plot(a, loss, label=name)
    log = _positive([loss for _, loss in profiles.values()])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss (log scale)" if log else "training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _save(fig, path)


def plot_landscape_2d(
    panels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    path: Path,
    normalized: bool = True,
) -> Path:
    """Contours of ``log10(loss)`` (of the loss itself when some are <= 0) for
    ``name -> (alphas, betas, Z, trajectory or None)``, one panel each, on a shared color
    scale; the trajectory (k, 2) is drawn with its start marked.
    ``normalized``: the axes are filter-normalized random directions (else the path's
    principal directions, in parameter units)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.8), squeeze=False)
    log = _positive([Z for _, _, Z, _ in panels.values()])
    logs = [np.log10(Z) if log else Z for _, _, Z, _ in panels.values()]
    finite = np.concatenate([z[np.isfinite(z)] for z in logs])  # an overflowed point: blank
    if not finite.size:
        raise ValueError("every loss on the grid is infinite or NaN: nothing to draw")
    levels = np.linspace(finite.min(), finite.max() if np.ptp(finite) else finite.min() + 1, 25)
    for ax, (name, (a, b, _, traj)), logZ in zip(axes[0], panels.items(), logs, strict=True):
        cs = ax.contourf(a, b, logZ, levels=levels, cmap="viridis")
        ax.contour(a, b, logZ, levels=levels, colors="k", linewidths=0.3)
        if traj is not None:
            ax.plot(traj[:, 0], traj[:, 1], "w.-", lw=1, ms=3, label="training path")
            ax.plot(traj[0, 0], traj[0, 1], "ws", ms=6, label="initial weights (projected)")
            ax.legend(loc="lower right", fontsize=8)
        ax.plot(0, 0, "r*", ms=10)
        ax.set_title(name)
        kind = "filter-normalized" if normalized else "principal direction of the path"
        ax.set_xlabel(f"alpha (direction 1, {kind})")
        ax.set_ylabel(f"beta (direction 2, {kind})")
    fig.colorbar(cs, ax=axes[0].tolist(), label="log10 training loss" if log else "training loss")
    return _save(fig, path)


def plot_reliability(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]], path: Path
) -> Path:
    """Reliability diagrams ``name -> (confidence, accuracy, counts, ece)`` side by side."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 4.4), squeeze=False)
    for ax, (name, (conf, acc, counts, ece)) in zip(axes[0], curves.items(), strict=True):
        n_bins = len(counts)
        edges = np.linspace(0, 1, n_bins + 1)
        used = counts > 0
        ax.bar(
            edges[:-1][used],
            acc[used],
            width=1 / n_bins,
            align="edge",
            edgecolor="k",
            alpha=0.7,
            label="accuracy in the bin",
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.plot(conf[used], acc[used], "r.", ms=6, label="(mean confidence, accuracy)")
        ax.set_title(f"{name}: ECE {ece:.4f}")
        ax.set_xlabel("confidence (largest probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_cartography(
    confidence: np.ndarray,
    variability: np.ndarray,
    path: Path,
    flipped: np.ndarray | None = None,
    flagged: np.ndarray | None = None,
) -> Path:
    """Variability (x) against confidence (y), one point per training sample; ``flipped``
    (bool mask) in red when the truly mislabeled samples are known; ``flagged`` (indices)
    circled."""
    fig, ax = plt.subplots(figsize=(6.4, 5))
    if flipped is None:
        ax.scatter(variability, confidence, s=6, alpha=0.5, label="training samples")
    else:
        ax.scatter(
            variability[~flipped], confidence[~flipped], s=6, alpha=0.4, label="labels as given"
        )
        ax.scatter(
            variability[flipped], confidence[flipped], s=10, c="tab:red", label="flipped labels"
        )
    if flagged is not None and len(flagged):
        ax.scatter(
            variability[flagged],
            confidence[flagged],
            s=40,
            facecolors="none",
            edgecolors="k",
            lw=0.7,
            label=f"{len(flagged)} most suspicious",
        )
    ax.set_xlabel("variability: std over epochs of p(given label)")
    ax.set_ylabel("confidence: mean over epochs of p(given label)")
    ax.set_title("Dataset cartography")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    return _save(fig, path)
