"""Side-by-side training benchmarks: backprop against scikit-learn and PyTorch, one table.

Run from the repository root::

    python benchmarks/run.py                       # every workload (10-15 minutes here)
    python benchmarks/run.py --quick               # small subsets, well under a minute
    python benchmarks/run.py --workloads mnist128 digits --repeats 7 --threads 2

Method (nanoGPT ``bench.py`` style: warm up, then time, compare in the same run):

1. Every system trains on the same float32 arrays, layer sizes, optimizer settings, batch size
   and number of epochs (see ``workloads.py``), in this one process, with BLAS pinned to
   ``--threads`` threads for all of them (threadpoolctl for NumPy's OpenBLAS,
   ``torch.set_num_threads`` for PyTorch).
2. Per workload: one warm-up fit per system on a slice of the data, then ``--repeats`` rounds;
   each round fits every system once from scratch, in an order rotated round by round
   (interleaved, so drifting machine load hits every system alike). The GEMM-only bound is
   timed in the same rotation. Reported times are medians over the rounds; ratios (and the
   GEMM fraction) are medians of per-round ratios, each between runs made back to back.
3. Untimed extra runs measure memory with tracemalloc (NumPy reports its allocations there):
   the peak of fit and of predict above what was allocated before (the data is not counted).

Columns: seconds per epoch, microseconds per optimizer update, this system's time divided by
sklearn's and by torch's (< 1 is faster), the GEMM-only time divided by this system's time (1.0
would be nothing but matrix products), peak extra MB during fit and during predict (test set),
and the test score (accuracy, or R2 for regression) after the same number of epochs.

This machine is shared: absolute times move with the load; the same-run ratios are what counts.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `backprop` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks import systems as systems_mod
from benchmarks import workloads as workloads_mod
from benchmarks.report import format_table, paired_ratio, targets

PEERS = ("sklearn", "torch")


def _default_repeats(name: str, quick: bool) -> int:
    if name.startswith(("mnist", "sgd")):  # sgd128 is an MNIST workload too
        return 2 if quick else 5
    return 3 if quick else 9


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small subsets, few repetitions")
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=workloads_mod.NAMES,
        default=None,
        help="which workloads (default: all)",
    )
    p.add_argument("--systems", nargs="+", choices=[s.name for s in systems_mod.ALL])
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per workload (default: 5 for MNIST, 9 for the small ones; quick: 2, 3)",
    )
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for every system")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per timed run of the MNIST workloads"
    )
    p.add_argument("--data-dir", default=os.environ.get("BACKPROP_DATA", "data"))
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    return args


def _pin_threads(n: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def _timed_fit(system, w):
    gc.collect()
    start = time.perf_counter()
    fitted, steps = system.fit(w)
    return time.perf_counter() - start, fitted, steps


def _traced(fn):
    """(result, peak bytes allocated by ``fn`` above what was live when it started)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


def bench_workload(w, systems, repeats: int, memory: bool, log, notes: list[str]) -> list[dict]:
    rng = np.random.default_rng(0)
    warm = w.subset(max(10 * (w.batch_size or 0), 512))
    working = []
    for s in systems:
        try:  # a system that fails its warm-up is reported, not allowed to stop the run
            s.fit(warm)
        except Exception as exc:
            notes.append(f"{w.name}/{s.name}: skipped: warm-up failed: {type(exc).__name__}: {exc}")
        else:
            working.append(s)
    systems = working
    systems_mod.gemm_epoch_seconds(warm, rng)
    times: dict[str, list[float]] = {s.name: [] for s in systems}
    gemm: list[float] = []
    last: dict[str, tuple] = {}
    runners = [*systems, None]  # None: the GEMM-only bound
    for r in range(repeats):
        k = r % len(runners)
        for s in runners[k:] + runners[:k]:
            if s is None:
                gemm.append(systems_mod.gemm_epoch_seconds(w, rng))
                continue
            seconds, fitted, steps = _timed_fit(s, w)
            times[s.name].append(seconds)
            last[s.name] = (fitted, steps)
        log(f"  round {r + 1}/{repeats} done")
    rows = []
    for s in systems:
        fitted, steps = last[s.name]
        epochs_done = steps / w.steps_per_epoch
        seconds = statistics.median(times[s.name])
        row = {
            "workload": w.name,
            "system": s.name,
            "s_per_epoch": seconds / epochs_done,
            "us_per_step": seconds / steps * 1e6,
            "steps": steps,
            "epochs": epochs_done,
            # Paired by round: the GEMM-only time of a round over this system's time that round.
            "gemm_fraction": statistics.median(
                g / w.steps_per_epoch * steps / t for g, t in zip(gemm, times[s.name], strict=True)
            ),
            "score": systems_mod.score(w, s.predict(fitted, w.X_test)),
            "fit_mb": math.nan,
            "predict_mb": math.nan,
            "times": times[s.name],
            "gemm_times": gemm,
        }
        if memory and s.reports_to_tracemalloc:
            (fitted, _), peak = _traced(lambda s=s: s.fit(w))
            row["fit_mb"] = peak / 2**20
            _, peak = _traced(lambda s=s, f=fitted: s.predict(f, w.X_test))
            row["predict_mb"] = peak / 2**20
            if s.name == "backprop":
                # Predict memory must not grow with rows: the same model on 4x the test rows.
                big = np.concatenate([w.X_test] * 4)
                _, peak_4x = _traced(lambda s=s, f=fitted, b=big: s.predict(f, b))
                row["predict_mb_4x"] = peak_4x / 2**20
        rows.append(row)
    for row in rows:
        for peer in PEERS:
            ref = next((x for x in rows if x["system"] == peer), None)
            row[f"vs_{peer}"] = math.nan if ref is None else paired_ratio(row, ref)
    return rows


def environment(args) -> list[str]:
    rounds = args.repeats or "5 (MNIST) / 9 (others)" if not args.quick else args.repeats or "2-3"
    blas = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} thr)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    env = {k: os.environ.get(k, "unset") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    try:
        import torch

        torch_v = torch.__version__
    except ImportError:
        torch_v = "not installed"
    import sklearn

    return [
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"# numpy {np.__version__}, scikit-learn {sklearn.__version__}, torch {torch_v}; "
        f"threads pinned to {args.threads}; medians of {rounds} interleaved rounds",
        f"# BLAS: {'; '.join(blas)}; " + ", ".join(f"{k}={v}" for k, v in env.items()),
    ]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = args.workloads or list(workloads_mod.NAMES)
    wanted = args.systems or [s.name for s in systems_mod.ALL]
    notes: list[str] = []
    systems = []
    for s in systems_mod.ALL:
        if s.name not in wanted:
            continue
        reason = s.unavailable()
        if reason:
            notes.append(f"{s.name}: {reason}")
        else:
            systems.append(s)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows: list[dict] = []
    descriptions: dict[str, str] = {}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        _pin_threads(args.threads)
        header = environment(args)
        for name in names:
            w = workloads_mod.make(name, args.quick, args.data_dir, args.epochs)
            if isinstance(w, str):
                notes.append(f"{name}: {w}")
                continue
            descriptions[name] = w.description
            active = []
            for s in systems:
                reason = s.supports(w)
                if reason:
                    notes.append(f"{name}/{s.name}: skipped: {reason}")
                else:
                    active.append(s)
            log(f"{name}: {w.description}")
            repeats = args.repeats or _default_repeats(name, args.quick)
            rows += bench_workload(w, active, repeats, not args.no_memory, log, notes)
    lines = [
        *header,
        f"# command: python benchmarks/run.py {' '.join(argv)}".rstrip(),
        "",
        format_table(rows),
        "",
        *[f"{name}: {desc}" for name, desc in descriptions.items()],
    ]
    if notes:
        lines += ["", *[f"note: {n}" for n in notes]]
    checks = targets(
        rows,
        {n: workloads_mod.make(n, args.quick, args.data_dir, args.epochs) for n in descriptions},
    )
    if checks:
        lines += ["", "targets (quick mode: indicative only):" if args.quick else "targets:"]
        lines += checks
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
