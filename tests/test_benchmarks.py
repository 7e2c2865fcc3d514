"""Smoke test of the benchmark harness on tiny workloads. It checks the table's rows and that every
ratio is a finite positive number; it never asserts a speed (timings are the benchmark's job)."""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_main():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.run").main


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_quick_run_prints_every_row_with_finite_ratios(bench_main, tmp_path, capsys):
    report = tmp_path / "results.json"
    argv = ["--quick", "--repeats", "1", "--workloads", "digits", "regression", "lbfgs", "mnist128"]
    # An empty data folder: MNIST is missing, so its workload must be skipped with a note.
    argv += ["--data-dir", str(tmp_path), "--json", str(report)]
    assert bench_main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads(report.read_text())
    rows = {(r["workload"], r["system"]): r for r in results["rows"]}

    peers = ["backprop", "sklearn"] + (["torch"] if _torch_available() else [])
    expected = {(w, s) for w in ("digits", "regression") for s in peers}
    expected |= {("lbfgs", "backprop"), ("lbfgs", "sklearn")}
    assert expected <= set(rows)
    assert not any(w == "mnist128" for w, _ in rows)
    assert any("mnist128" in n and "fetch_data.py" in n for n in results["notes"])

    for (workload, system), r in rows.items():
        for key in ("s_per_epoch", "us_per_step", "gemm_fraction", "vs_sklearn"):
            assert math.isfinite(r[key]) and r[key] > 0, (workload, system, key, r[key])
        if workload != "lbfgs" and "torch" in peers:
            assert math.isfinite(r["vs_torch"]) and r["vs_torch"] > 0
        assert math.isfinite(r["score"]) and r["score"] <= 1.0  # accuracy or R2
        if system != "torch":
            assert r["fit_mb"] > 0 and r["predict_mb"] > 0
        # The table line of this row, with its ratio to sklearn printed the same way.
        line = next(ln for ln in printed.splitlines() if ln.split()[:2] == [workload, system])
        assert f"{r['vs_sklearn']:.2f}" in line.split()
    assert rows[("digits", "sklearn")]["vs_sklearn"] == 1.0
    assert "targets" in printed


def test_a_failing_system_is_noted_and_the_others_still_run(bench_main, tmp_path, monkeypatch):
    systems = importlib.import_module("benchmarks.systems")

    def broken(self, w):
        raise RuntimeError("boom")

    monkeypatch.setattr(systems.Sklearn, "fit", broken)
    report = tmp_path / "results.json"
    argv = [
        "--quick",
        "--repeats",
        "1",
        "--workloads",
        "digits",
        "--systems",
        "backprop",
        "sklearn",
    ]
    assert bench_main([*argv, "--no-memory", "--json", str(report)]) == 0
    results = json.loads(report.read_text())
    assert [(r["workload"], r["system"]) for r in results["rows"]] == [("digits", "backprop")]
    assert math.isnan(results["rows"][0]["vs_sklearn"])  # no peer, no ratio (printed as "-")
    assert any("digits/sklearn" in n and "RuntimeError: boom" in n for n in results["notes"])


@pytest.mark.slow
def test_sequence_benchmark_runs_and_reports_finite_ratios(tmp_path):
    pytest.importorskip("torch")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    out = tmp_path / "sequence.txt"
    rows = importlib.import_module("benchmarks.sequence").main(
        ["--batches", "2", "--repeats", "1", "--threads", "1", "--out", str(out)]
    )
    assert [r["benchmark"][:4] for r in rows] == ["LSTM", "tran"]
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rows)
    # the report names its data (real MNIST when the file is there) and holds both rows
    mnist = (ROOT / "data" / "mnist.npz").is_file()
    assert rows[0]["data"].startswith("MNIST" if mnist else "RANDOM")
    report = out.read_text()
    assert "a partial epoch" in report and report.count("load average") == 2
    assert all(r["line"] in report and r["detail"] in report for r in rows)
    assert [len(r["round_ratios"]) for r in rows] == [1, 4]  # the block runs 4x the rounds
    assert all(r["ratio_of_fastest"] > 0 for r in rows)


def test_steps_benchmark_times_every_window_of_updates():
    """benchmarks/steps.py (speed over many epochs): its backprop runs, with and without the
    subnormal flush, return one time per 100 updates, all positive (no speed is asserted)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    steps = importlib.import_module("benchmarks.steps")
    rng = np.random.default_rng(0)
    X = rng.random((3200, 784), dtype=np.float32)
    y = rng.integers(0, 10, 3200)
    for flush in (True, False):
        times = steps.run_backprop(X, y, 32, 2, flush=flush)  # 200 updates: 2 windows
        assert times.shape == (2,) and np.all(times > 0)
    summary = steps.summarize(np.array([1.0, 2.0, 1.0, 1.0]), epochs=2)
    assert summary["slowest_over_median"] == 2.0
    # "last / first" is the last epoch's median window over the first's: with 2 epochs of 3
    # windows, median(2, 2, 3) / median(1, 1, 2), not the last fifth over the first fifth.
    summary = steps.summarize(np.array([1.0, 1.0, 2.0, 2.0, 2.0, 3.0]), epochs=2)
    assert summary["last_epoch_over_first"] == 2.0


def test_steps_benchmark_systems_take_turns():
    """In ``in_turns`` only one system computes at a time and they alternate every K windows, so
    a load change hits all of them alike; a system that finishes early or fails frees the
    others instead of leaving them waiting."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    steps = importlib.import_module("benchmarks.steps")
    log: list[str] = []
    active: list[str] = []

    def fake(windows, hold_until_done=None):
        def fn(X, y, batch, epochs, turns, name):
            turns.start(name)
            try:
                for _ in range(2000 if hold_until_done else 0):  # keep the turn a while
                    if hold_until_done in turns.done:
                        break
                    time.sleep(0.005)
                for _ in range(windows):
                    active.append(name)
                    assert active == [name], active  # nobody else is computing
                    log.append(name)
                    active.remove(name)
                    turns.tick(name)
            finally:
                turns.stop(name)

        return fn

    out = steps.in_turns({"a": fake(3), "b": fake(1), "c": fake(2)}, None, None, 32, 1, timeout=20)
    assert log == ["a", "b", "c", "a", "c", "a"]
    assert [len(out[k]) for k in "abc"] == [3, 1, 2]
    log.clear()
    steps.in_turns(
        {"a": fake(3), "b": fake(1), "c": fake(2)}, None, None, 32, 1, every=2, timeout=20
    )
    assert log == ["a", "a", "b", "c", "c", "a"]
    log.clear()
    steps.in_turns(
        {"a": fake(3), "b": fake(1), "c": fake(2)}, None, None, 32, 1, every=None, timeout=20
    )
    assert log == ["a", "a", "a", "b", "c", "c"]

    def broken(X, y, batch, epochs, turns, name):
        turns.start(name)
        try:
            raise RuntimeError("boom")
        finally:
            turns.stop(name)

    with pytest.raises(RuntimeError, match="boom"):
        steps.in_turns({"ok": fake(2), "bad": broken}, None, None, 32, 1, timeout=20)

    def fails_before_its_turn(X, y, batch, epochs, turns, name):
        raise RuntimeError("early")

    log.clear()
    # "ok" holds the first turn until "early" has failed: that must not hand the turn to "c"
    fns = {"ok": fake(2, hold_until_done="early"), "early": fails_before_its_turn, "c": fake(1)}
    with pytest.raises(RuntimeError, match="early"):
        steps.in_turns(fns, 0, 0, 32, 1, timeout=20)
    assert log == ["ok", "c", "ok"]
    rng = np.random.default_rng(0)
    X = rng.random((3200, 784), dtype=np.float32)
    y = rng.integers(0, 10, 3200)
    fns = {k: v for k, v in steps.systems(torch_ok=False).items()}
    out = steps.in_turns(fns, X, y, 32, 2)  # 200 updates each: 2 windows each
    assert {k: v.shape for k, v in out.items()} == {k: (2,) for k in fns}


def test_sgd_workload_and_epochs_option_reach_every_system(bench_main, tmp_path, monkeypatch):
    """``sgd128`` trains every system with SGD + momentum 0.9 and ``--epochs`` sets the MNIST
    workloads' epochs (random stand-in data: only the plumbing is checked here)."""
    workloads = importlib.import_module("benchmarks.workloads")
    systems = importlib.import_module("benchmarks.systems")
    rng = np.random.default_rng(0)

    def fake_mnist(data_dir, quick):
        X = rng.random((300, 784), dtype=np.float32)
        y = np.arange(300) % 10
        return X[:200], y[:200], X[200:], y[200:]

    monkeypatch.setattr(workloads, "_mnist", fake_mnist)
    w = workloads.make("sgd128", epochs=2)
    assert (w.solver, w.lr, w.momentum, w.epochs) == ("sgd", 0.01, 0.9, 2)
    params = systems.sklearn_params(w)
    assert params["solver"] == "sgd" and params["momentum"] == 0.9
    assert params["nesterovs_momentum"] is False and params["max_iter"] == 2
    report = tmp_path / "results.json"
    argv = ["--quick", "--repeats", "1", "--workloads", "sgd128", "--epochs", "2", "--no-memory"]
    assert bench_main([*argv, "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["rows"]
    assert {"backprop", "sklearn"} <= {r["system"] for r in rows}
    for r in rows:
        assert r["epochs"] == 2 and r["steps"] == 2 * 2  # 200 rows at batch 128: 2 steps a epoch
    with pytest.raises(SystemExit):
        bench_main(["--epochs", "0"])


def test_every_mnist_workload_gets_the_mnist_round_count(bench_main):
    # The header says "medians of 5 (MNIST) / 9 (others)": sgd128 trains on MNIST too, and ran
    # 9 full MNIST rounds under that header.
    run = importlib.import_module("benchmarks.run")
    workloads = importlib.import_module("benchmarks.workloads")
    for name in workloads.NAMES:
        mnist = name.startswith(("mnist", "sgd"))
        assert run._default_repeats(name, False) == (5 if mnist else 9), name
        assert run._default_repeats(name, True) == (2 if mnist else 3), name


def test_out_of_core_columns_say_what_they_hold(capsys):
    # The fifth column is 16 bytes a row (the training indices and their permutation); it was
    # headed "labels+index MB", though the labels are allocated before tracing and not in it.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.out_of_core")
    assert bench.main(["--rows", "1000", "--features", "8"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "labels" not in header and "index arrays MB" in header
    assert row.split()[4] == f"{16 * 1000 / 1e6:.2f}"


def test_steps_thread_scaling_reports_a_whole_epoch(monkeypatch, capsys):
    # Only complete 100-update windows are timed: 150 updates give one window. The "one epoch"
    # cell summed the windows (here 0.1 s for 100 of the 150 updates, at batch 128 on MNIST 400
    # of 469); it now scales their time per update to the whole epoch.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    steps = importlib.import_module("benchmarks.steps")
    rows = 150 * 128

    def fake(X, y, batch, epochs, turns=None, name=""):
        return np.full(len(X) * epochs // batch // steps.WINDOW, 0.1)

    names = ("backprop", "torch", "torch, FTZ")
    monkeypatch.setattr(steps, "load", lambda r, d: (np.zeros((rows, 1)), np.zeros(rows, int)))
    monkeypatch.setattr(steps, "systems", lambda torch_ok: dict.fromkeys(names, fake))
    monkeypatch.setattr(
        steps, "in_turns", lambda fns, X, y, b, e, k: {n: fake(X, y, b, e) for n in fns}
    )
    assert steps.main(["--batch", "128", "--epochs", "1", "--threads", "1", "--scaling"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    row = lines[lines.index(next(x for x in lines if x.startswith("| system | 1 threads"))) + 2]
    assert row.startswith("| backprop |")
    assert row.split("|")[2].strip() == "0.15"
    assert steps.epoch_seconds(np.array([0.2, 0.3]), 60000, 128) == pytest.approx(0.5 / 200 * 469)
