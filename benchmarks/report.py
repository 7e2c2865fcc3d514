"""The results table and the project's performance goals, checked against the measured rows."""

from __future__ import annotations

import math
import statistics

COLUMNS = (
    ("workload", "workload", "{}"),
    ("system", "system", "{}"),
    ("s_per_epoch", "s/epoch", "{:.3f}"),
    ("us_per_step", "us/step", "{:.0f}"),
    ("vs_sklearn", "vs sklearn", "{:.2f}"),
    ("vs_torch", "vs torch", "{:.2f}"),
    ("gemm_fraction", "GEMM frac", "{:.2f}"),
    ("fit_mb", "fit MB", "{:.1f}"),
    ("predict_mb", "predict MB", "{:.1f}"),
    ("score", "test score", "{:.4f}"),
)


def _cell(fmt: str, value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table, one line per (workload, system)."""
    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[_cell(fmt, row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(COLUMNS))]
    lines = []
    for i, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(wd) if j < 2 else c.rjust(wd)
                for j, (c, wd) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def paired_ratio(row: dict, ref: dict) -> float:
    """Median over rounds of (this system's time per epoch / the reference's, in the same
    round): both ran back to back, so a load change between rounds cancels out."""
    return statistics.median(
        (t / row["epochs"]) / (u / ref["epochs"])
        for t, u in zip(row["times"], ref["times"], strict=True)
    )


def _find(rows, workload, system):
    return next((r for r in rows if r["workload"] == workload and r["system"] == system), None)


def fit_memory_budget_mb(w) -> float:
    """The memory allowance: 5% of the training data, plus parameters, gradients and Adam's two
    moments, plus one batch of activations (input, pre- and post-ReLU, output) and their
    gradients."""
    item = 4  # float32
    acts = (w.batch_size or w.X_train.shape[0]) * (
        w.layer_sizes[0] + 2 * sum(w.hidden) + w.n_outputs
    )
    budget = 0.05 * w.X_train.nbytes + 4 * w.n_parameters * item + 2 * acts * item
    return budget / 2**20


def targets(rows: list[dict], workloads: dict) -> list[str]:
    """One line per performance goal this run measured: met / not met, value and bound."""
    out: list[str] = []

    def check(label: str, value: float, bound: float, at_most: bool = True) -> None:
        if value is None or math.isnan(value):
            return
        ok = value <= bound if at_most else value >= bound
        sign = "<=" if at_most else ">="
        out.append(f"  [{'met' if ok else 'not met'}] {label}: {value:.2f} (target {sign} {bound})")

    def ratio(workload: str, peer: str) -> float | None:
        row = _find(rows, workload, "backprop")
        return None if row is None or _find(rows, workload, peer) is None else row[f"vs_{peer}"]

    # The speed issue's targets (issue 16), measured over 3 epochs with 2 threads.
    check("mnist128 backprop/torch epoch time", ratio("mnist128", "torch"), 0.6)
    check("mnist32 backprop/torch epoch time", ratio("mnist32", "torch"), 0.5)
    est = _find(rows, "mnist128", "backprop-est")
    if est is not None and _find(rows, "mnist128", "sklearn") is not None:
        check("mnist128 MLPClassifier/sklearn epoch time", est["vs_sklearn"], 0.45)
    row = _find(rows, "digits", "backprop")
    check("digits microseconds per update", row and row["us_per_step"], 60)
    check("digits backprop/sklearn epoch time", ratio("digits", "sklearn"), 0.25)
    for name, label, bound in (("mnist128", "Adam", 0.55), ("sgd128", "SGD momentum", 0.75)):
        row = _find(rows, name, "backprop")
        check(
            f"{name} ({label}) GEMM-only bound / epoch time",
            row and row["gemm_fraction"],
            bound,
            False,
        )
    for r in rows:
        if r["system"] == "backprop-est":
            base = _find(rows, r["workload"], "backprop")
            if base is not None:
                check(f"{r['workload']} estimator/Trainer time", paired_ratio(r, base), 1.1)
    for name in ("mnist128", "mnist32", "mnist1024"):
        row = _find(rows, name, "backprop")
        if row is not None and name in workloads:
            budget = fit_memory_budget_mb(workloads[name])
            check(
                f"{name} fit peak extra MB (budget {budget:.1f} MB)",
                row["fit_mb"],
                round(budget, 1),
            )
            break
    for r in rows:
        if r["system"] == "backprop" and "predict_mb_4x" in r and r["workload"] in workloads:
            w = workloads[r["workload"]]
            out_mb = w.X_test.shape[0] * w.n_outputs * 4 / 2**20  # the float32 outputs
            one = r["predict_mb"] - out_mb
            four = r["predict_mb_4x"] - 4 * out_mb
            ok = four <= 1.25 * one + 0.1
            out.append(
                f"  [{'met' if ok else 'not met'}] {r['workload']} predict peak MB beyond its "
                f"output: {one:.2f} for the test set, {four:.2f} for 4x its rows (target: no growth)"
            )
            break
    return out
