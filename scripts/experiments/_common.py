"""Shared pieces of the guided experiments: data, recording callbacks, figures, summaries.

Every experiment module has ``run(out_dir, fast=False) -> dict`` (the measured numbers, also
written with its figures into ``out_dir``) and ends with ``main(run, NAME)`` so that
``python -m scripts.experiments.NAME [--fast] [--out DIR]`` reproduces its page in ``docs/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import backprop as bp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "experiments"  # full runs: the figures and numbers the docs show
FAST = ROOT / "runs" / "experiments"  # fast runs (runs/ is not tracked by git)
SEED = 0  # every experiment derives its model and trainer seeds from this one
DPI = 100


def digits(
    test_size: float = 0.25, val_size: float = 0.0, seed: int = SEED
) -> dict[str, np.ndarray]:
    """sklearn's 8x8 digits scaled to [0, 1] as float32, split stratified into train / (val) /
    test. Returns a dict with ``X_train, y_train, X_val, y_val, X_test, y_test``."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    out = {"X_test": X_test, "y_test": y_test}
    if val_size:
        X_rest, X_val, y_rest, y_val = train_test_split(
            X_rest, y_rest, test_size=val_size, stratify=y_rest, random_state=seed
        )
        out.update(X_val=X_val, y_val=y_val)
    out.update(X_train=X_rest, y_train=y_rest)
    return out


def data_loss(model: bp.Sequential, loss: bp.Loss, X: np.ndarray, y: np.ndarray) -> float:
    """The loss of the model on (X, y) in inference mode, without any penalty."""
    return float(loss.forward(model.predict(X), y))


def accuracy(model: bp.Sequential, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(X), axis=1) == y))


class BatchRecorder(bp.Callback):
    """Per update: the batch loss, the pre-clip global gradient norm, the wall-clock time since
    training began, and (every ``every`` updates, when ``X`` is given) the loss on the whole of
    ``(X, y)`` in inference mode."""

    def __init__(self, X: np.ndarray | None = None, y: np.ndarray | None = None, every: int = 1):
        self.X, self.y, self.every = X, y, every
        self.batch_loss: list[float] = []
        self.grad_norm: list[float] = []
        self.full_step: list[int] = []
        self.full_loss: list[float] = []
        self.full_time: list[float] = []

    def on_train_begin(self, trainer):
        self._start = time.perf_counter()
        self._paused = 0.0
        if self.X is not None and not self.full_step:
            self._record(trainer)

    def _record(self, trainer):
        t0 = time.perf_counter()
        elapsed = t0 - self._start - self._paused  # time spent measuring is not training time
        self.full_step.append(trainer.step)
        self.full_loss.append(data_loss(trainer.model, trainer.loss, self.X, self.y))
        self.full_time.append(elapsed)
        self._paused += time.perf_counter() - t0

    def on_batch_end(self, trainer, batch, logs):
        self.batch_loss.append(float(logs["loss"]))
        self.grad_norm.append(float(logs["grad_norm"]))
        if self.X is not None and trainer.step % self.every == 0:
            self._record(trainer)


class CurveRecorder(bp.Callback):
    """Per epoch, the penalty-free loss and accuracy on each named data set, in inference mode
    (the trainer's own ``loss`` includes L1/L2 and is measured with dropout on)."""

    def __init__(self, sets: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.sets = sets
        self.curves: dict[str, list[float]] = {}

    def on_epoch_end(self, trainer, epoch, logs):
        for name, (X, y) in self.sets.items():
            out = trainer.model.predict(X)
            self.curves.setdefault(f"{name}_loss", []).append(float(trainer.loss.forward(out, y)))
            acc = float(np.mean(np.argmax(out, axis=1) == y))
            self.curves.setdefault(f"{name}_accuracy", []).append(acc)


def save_figure(fig: plt.Figure, out_dir: Path, name: str) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` at a small size and close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"


def environment() -> dict[str, str]:
    """What a reader needs to reproduce the numbers: commit, NumPy and its BLAS, machine."""
    from threadpoolctl import threadpool_info

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "backprop", "scripts"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return {
        "commit": (commit or "unknown") + (" with local changes" if dirty else ""),
        "numpy": np.__version__,
        "blas": ", ".join(sorted(blas)) or "unknown",
        "machine": f"{machine()}, {os.cpu_count()} cores",
    }


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A markdown table from a list of dicts (columns in the order given, or of the first row)."""
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_summary(out_dir: Path, title: str, body: str, results: dict[str, Any]) -> None:
    """``summary.md`` (human-readable, with the machine and seed) and ``results.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    head = (
        f"# {title}\n\nMeasured at commit {env['commit']} on {env['machine']}; NumPy "
        f"{env['numpy']} with {env['blas']}, BLAS pinned to one thread; seed {SEED}.\n\n"
    )
    if results.get("fast"):
        head += (
            "**Fast form** (a subset, a few epochs): enough for the tests' qualitative checks, "
            "too short to rank close competitors. The page's numbers and conclusions come from "
            "the full run (without `--fast`).\n\n"
        )
    (out_dir / "summary.md").write_text(head + body.strip() + "\n")
    results = {**results, "environment": env}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")


def main(run: Callable[..., dict], name: str) -> None:
    """Command line of one experiment: ``--out DIR`` (default docs/experiments/NAME, or
    runs/experiments/NAME with ``--fast``), ``--fast``."""
    parser = argparse.ArgumentParser(description=(run.__module__ or name))
    parser.add_argument(
        "--out", type=Path, help=f"output folder (default {DOCS / name}; with --fast {FAST / name})"
    )
    parser.add_argument("--fast", action="store_true", help="the reduced form the tests run")
    args = parser.parse_args()
    if args.out is None:  # a fast run never overwrites the documented full run
        args.out = (FAST if args.fast else DOCS) / name
    start = time.perf_counter()
    with threadpool_limits(limits=1):  # small matrices: one BLAS thread, repeatable timings
        run(args.out, fast=args.fast)
    print(f"{name}: {time.perf_counter() - start:.1f} s -> {args.out}")
    print((args.out / "summary.md").read_text())
