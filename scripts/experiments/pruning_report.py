"""The page of the pruning experiment (:mod:`scripts.experiments.pruning`): its two figures
and the tables of ``summary.md``, from the results the stages measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scripts.experiments._common import fmt, plt, save_figure, table

LABELS = {
    "magnitude": "magnitude, one-shot + fine-tune",
    "random": "random, one-shot + fine-tune",
    "ticket": "lottery ticket (rewound to init)",
    "reinit": "same mask, random re-init",
}


def figures(results: dict[str, Any], cfg: dict[str, Any], out_dir: Path) -> None:
    curve = results["curve"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"magnitude": "o-", "random": "s--", "ticket": "^-", "reinit": "v:"}
    for method, style in styles.items():
        points = [
            (1 - float(s), 100 * p[method]["test_error"]) for s, p in curve.items() if method in p
        ]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=LABELS[method])
    ax.axhline(100 * results["dense"]["test_error"], color="k", lw=0.8, label="dense")
    ax.set_xscale("log")
    ax.set_yscale("log")
    kept_ticks = sorted(1 - float(s) for s in curve)
    ax.set_xticks(kept_ticks, [f"{100 * k:g}%" for k in kept_ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    err_ticks = [1, 2, 3, 5, 10, 20, 50]
    ax.set_yticks(err_ticks, [str(e) for e in err_ticks])
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("weights kept")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
    ax.set_title("LeNet-300-100 on MNIST: accuracy against sparsity")
    save_figure(fig, out_dir, "pruning_accuracy")

    g = results["gradual"][f"{cfg['gradual_targets'][0]} from init"]
    per_layer = g["per_layer_sparsity"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(per_layer)
    axes[0].bar(names, [100 * (1 - per_layer[k]) for k in names])
    axes[0].set_ylabel("weights kept (%)")
    axes[0].set_title(f"Per-layer density, gradual pruning to {100 * g['kept']:.0f}%")
    epochs = np.arange(1, len(g["error_per_epoch"]) + 1)
    axes[1].plot(epochs, [100 * e for e in g["error_per_epoch"]], "o-", ms=3)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("test error (%)")
    ax2 = axes[1].twinx()
    ax2.plot(epochs, [100 * s for s in g["sparsity_per_epoch"]], "r--")
    ax2.set_ylabel("sparsity (%)", color="r")
    axes[1].set_title("Gradual pruning (Zhu & Gupta): error and sparsity")
    save_figure(fig, out_dir, "pruning_layers")


def pct(x: float, digits: int = 2) -> str:
    """A fraction as a percentage: the page quotes errors this way (0.0161 -> "1.61%")."""
    return f"{100 * x:.{digits}f}%"


def summary(results: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The page's tables; pieces that did not run are left out (and said so)."""
    rows = [
        {
            "model": "dense",
            "weights kept": "100%",
            "test error": pct(results["dense"]["test_error"]),
        }
    ]
    for g in results["gradual"].values():
        plan = " + ".join(str(e) for e in g["epochs"])
        rows.append(
            {
                "model": f"gradual from {g['start']}, Adam lr {g['lr']:g}, {plan} epochs",
                "weights kept": pct(g["kept"], 1),
                "test error": pct(g["test_error"]),
            }
        )
    if "han" in results:
        rows.append(
            {
                "model": f"iterative (Han), {cfg['han_rounds']} rounds",
                "weights kept": pct(results["han"]["kept"], 1),
                "test error": pct(results["han"]["test_error"]),
            }
        )
    t = results["tickets"]
    for key, label in (
        ("ticket", "lottery ticket, rewound to init"),
        ("ticket_rewind_k", f"lottery ticket, rewound to update {cfg['rewind_step']}"),
        ("reinit", "same mask, random re-init"),
    ):
        rows.append(
            {
                "model": label,
                "weights kept": pct(t[key]["kept"], 1),
                "test error": pct(t[key]["test_error"]),
            }
        )
    body = "## Test error\n\n" + table(rows)
    curve_rows = []
    for s, point in results["curve"].items():
        row: dict[str, Any] = {"weights kept": pct(1 - float(s), 0)}
        row.update(
            {LABELS[m]: pct(point[m]["test_error"]) if m in point else "not run" for m in LABELS}
        )
        curve_rows.append(row)
    body += "\n\n## Test error against weights kept\n\n" + table(curve_rows)
    layers = [
        {"weight": k, "sparsity": v}
        for k, v in results["gradual"][f"{cfg['gradual_targets'][0]} from init"][
            "per_layer_sparsity"
        ].items()
    ]
    body += "\n\n## Per-layer sparsity (gradual)\n\n" + table(layers)
    st = results.get("structured")
    if st is None:
        return body + "\n\nStructured pruning: not run.\n"
    body += "\n\n## Structured pruning\n\n" + table(
        [
            {
                "model": "dense",
                "parameters": st["parameters"]["dense"],
                "test error": pct(st["dense_test_error"]),
                "predict s (test set)": st["predict_seconds"]["dense"],
            },
            {
                "model": "units removed + fine-tuned",
                "parameters": st["parameters"]["structured"],
                "test error": pct(st["test_error"]),
                "predict s (test set)": st["predict_seconds"]["structured"],
            },
        ]
    )
    body += (
        f"\n\nSpeed-up {fmt(st['speedup'])}x. Dead units (zero on all of the first 10,000 "
        f"training images) per layer: {st['dead_units']}; removing them changes the outputs on "
        f"those images by at most {fmt(st['dead_removed_max_abs_change_on_X'])} and on the "
        f"test images by at most {fmt(st['dead_removed_max_abs_change'])} (test error "
        f"{pct(st['dead_removed_test_error'])}).\n"
    )
    return body
