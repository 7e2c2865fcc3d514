"""Training curves: a run's ``history.csv`` and the figures drawn from it, one per quantity.

==================  ==========================================================================
function            draws, per epoch (x: the ``epoch`` column, else 1, 2, ...)
==================  ==========================================================================
fig_loss            train and validation loss (log scale when every value is positive)
fig_metrics         accuracy or R^2, train and validation (None without a metric)
fig_lr              the rate of each epoch's last update (None without one, e.g. L-BFGS)
fig_grad_norms      ``||dL/dparam||`` per parameter (None without ``GradientMonitor`` columns)
==================  ==========================================================================

``read_history``/``write_history`` convert between ``{column: values}`` and the CSV file (an
empty cell is NaN: columns may start late); ``write_json`` writes a run's metrics as JSON, and
``earlier_seconds`` reads back the training time a resumed run had before.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .mpl import plt


def _finish(fig: plt.Figure, ax) -> plt.Figure:
    """The curves' common ending: a light grid, the legend, a tight layout."""
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


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


def write_json(obj: Any, path: str | Path) -> None:
    """``obj`` as JSON, NaN and infinities written as null: JSON has no such numbers, and
    ``json.dumps`` would write the non-standard ``NaN`` that strict readers refuse (an R^2 over
    one validation row is NaN). Other types it cannot write become strings."""

    def finite(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [finite(x) for x in v]
        return None if isinstance(v, float) and not math.isfinite(v) else v

    Path(path).write_text(json.dumps(finite(obj), indent=2, allow_nan=False, default=str) + "\n")


def _epochs(history: dict[str, list[float]]) -> np.ndarray:
    n = len(history.get("loss", []))
    return np.asarray(history.get("epoch", range(1, n + 1)), dtype=float)


def fig_loss(history: dict[str, list[float]]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = _epochs(history)
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            ax.plot(x, history[key], label=label, marker="." if len(x) < 40 else None)
    # log scale only when every drawn value (validation too) is positive: on a log axis a loss
    # of 0 (float32 cross-entropy reaches it) would vanish from its curve
    values = np.asarray([v for k in ("loss", "val_loss") for v in history.get(k, [])], float)
    if values.size and np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="loss (incl. L1/L2 penalty)")
    return _finish(fig, ax)


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
    return _finish(fig, ax)


def fig_lr(history: dict[str, list[float]]) -> plt.Figure | None:
    if "lr" not in history or not np.all(np.isfinite(history["lr"])):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(_epochs(history), history["lr"], label="learning rate", color="tab:purple")
    # logged after the epoch: an epoch schedule's rate, or an update schedule's last one
    ax.set(title="Learning rate (of each epoch's last update)", xlabel="epoch", ylabel="lr")
    return _finish(fig, ax)


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


def earlier_seconds(run_dir: Path, epoch: int, history: dict[str, list[float]]) -> float:
    """Training time of a resumed run's first ``epoch`` epochs: the ``time_seconds`` of its
    ``metrics.json`` when that file is of the same epoch (wall time, callbacks included, as a
    run records it), else the sum of the checkpoint's per-epoch times (which leave out the
    callbacks: checkpoint writes, monitors)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        recorded = metrics.get("time_seconds") if metrics.get("epochs") == epoch else None
    except (OSError, ValueError, AttributeError):  # no file, not JSON, not an object
        recorded = None
    if isinstance(recorded, (int, float)) and math.isfinite(recorded) and recorded >= 0:
        return float(recorded)
    return float(sum(history.get("time", [])))
