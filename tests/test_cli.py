"""The backprop command end to end: train, resume, evaluate, predict, plot, gradcheck, bench."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.app.cli import main
from backprop.app.config import ConfigError, evaluation_split, load_config

ROOT = Path(__file__).parent.parent

DIGITS = """\
[data]
source = "digits"
validation_size = 0.15

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 24
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Dropout"
drop_rate = 0.1
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[schedule]
name = "step"
step_size = 2
gamma = 0.7

[trainer]
epochs = 6
batch_size = 64

[early_stopping]
patience = 10

[output]
checkpoint_every = 2
"""


def _write(path, text):
    path.write_text(text)
    return path


def _regression_run(tmp_path, X, y, units, loss="mse", lr=0.01, epochs=20, data=""):
    """Train a one-hidden-layer regression config on ``X, y`` (saved as an .npz) into
    ``tmp_path / "run"``; returns ``(config, run)``. ``data``: more ``[data]`` lines."""
    np.savez(tmp_path / "m.npz", X=X, y=y)
    dense = '[[model.layers]]\ntype = "Dense"\n'
    layers = f"{dense}out_features = {units}\n{dense}"
    config = _write(
        tmp_path / "c.toml",
        f'[data]\nsource = "file"\npath = "{tmp_path / "m.npz"}"\ntask = "regression"\n{data}'
        f'[model]\nseed = 0\n{layers}\n[loss]\nname = "{loss}"\n[optimizer]\nname = "adam"\n'
        f"lr = {lr}\n[trainer]\nepochs = {epochs}\nseed = 0\n[output]\nplots = false\n",
    )
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    return config, run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    config = _write(tmp / "digits.toml", DIGITS)
    code = main(["train", str(config), "--out", str(tmp / "run"), "--quiet"])
    assert code == 0
    return config, tmp / "run"


def test_train_writes_a_complete_run_directory(digits_run):
    _, run = digits_run
    for name in ("config.toml", "metrics.json", "history.csv", "model.npz", "checkpoint.npz"):
        assert (run / name).is_file(), name
    figures = {p.name for p in (run / "figures").iterdir()}
    expected = {"loss.png", "metrics.png", "lr.png", "grad_norms.png", "weights.png"}
    assert expected | {"confusion.png", "first_layer.png"} <= figures
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 6 and metrics["test"]["accuracy"] > 0.85
    assert set(metrics) >= {"train", "validation", "test", "time_seconds"}
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 7 and "val_loss" in history[0] and "grad_norm/0.W" in history[0]
    resolved = bp.load_config(run / "config.toml")
    assert resolved["trainer"]["epochs"] == 6 and resolved["optimizer"]["lr"] == 0.01


def test_resume_continues_to_the_same_weights(digits_run, tmp_path, capsys):
    config, full = digits_run
    half = tmp_path / "half"
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(half), *args, "--set", "trainer.epochs=3"]) == 0
    first_rows = (half / "history.csv").read_text().splitlines()
    capsys.readouterr()
    assert main(["train", "--resume", str(half), *args, "--set", "trainer.epochs=6"]) == 0
    assert f"resuming {half} at epoch 3 of 6" in capsys.readouterr().out
    a, b = bp.load(full / "model.npz"), bp.load(half / "model.npz")
    assert np.array_equal(a.flat_parameters, b.flat_parameters)
    metrics = json.loads((half / "metrics.json").read_text())
    assert metrics["epochs"] == 6
    rows = (half / "history.csv").read_text().splitlines()
    # the first three rows (with their measured times) come from the checkpoint, not a re-run
    assert len(rows) == 7 and rows[:4] == first_rows


@pytest.mark.parametrize("flag", [["--out", "copy"], ["--force"]])
def test_resume_refuses_out_and_force_instead_of_ignoring_them(digits_run, tmp_path, flag, capsys):
    """``--resume RUN --out COPY`` trained on in RUN, overwriting it, and never made COPY."""
    config, _ = digits_run
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(run), *args, "--set", "trainer.epochs=1"]) == 0
    before = (run / "metrics.json").read_text()
    flag = [flag[0], str(tmp_path / flag[1])] if flag[0] == "--out" else flag
    assert main(["train", "--resume", str(run), *flag, *args, "--set", "trainer.epochs=2"]) == 2
    assert "does not go with --resume" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == before and not (tmp_path / "copy").exists()


def test_a_resume_with_nothing_to_train_keeps_the_runs_config(digits_run, tmp_path, capsys):
    """--resume with trainer.epochs below the checkpoint's trained nothing, yet rewrote the run's
    config.toml with the smaller epochs (and any other --set), so the file no longer described
    the run it sat in."""
    config, _ = digits_run
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(run), *args, "--set", "trainer.epochs=3"]) == 0
    before = (run / "config.toml").read_text()
    more = ["--set", "trainer.epochs=2", "--set", "optimizer.lr=0.5"]
    assert main(["train", "--resume", str(run), *args, *more]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (run / "config.toml").read_text() == before


def test_ctrl_c_in_a_resumed_run_leaves_no_stale_metrics(digits_run, tmp_path, monkeypatch):
    """Ctrl-C saved the new model.npz but kept the first session's metrics.json and
    predictions.npz, which described the earlier model (`backprop plot` then drew its confusion
    matrix beside the new model's figures)."""
    from backprop.app.cli import _raw_data

    config, _ = digits_run
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(run), *args, "--set", "trainer.epochs=1"]) == 0
    fit = bp.Trainer.fit

    def fit_then_ctrl_c(self, *a, epochs=None, **k):  # two more epochs, then Ctrl-C
        fit(self, *a, epochs=2, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(bp.Trainer, "fit", fit_then_ctrl_c)
    assert main(["train", "--resume", str(run), *args, "--set", "trainer.epochs=6"]) == 130
    assert not (run / "metrics.json").exists()  # it described the 1-epoch model
    X, _ = _raw_data(str(config), None)
    expected = bp.load(run / "model.npz").predict(X).argmax(axis=1)
    assert np.array_equal(np.load(run / "predictions.npz")["y_pred"], expected)


def test_ctrl_c_before_the_first_checkpoint_does_not_point_to_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C before any checkpoint was written (in the first epoch, or before the first
    output.checkpoint_every) said 'checkpoint.npz the last saved epoch (continue with: backprop train --resume
    RUN)', and that --resume then failed with 'no checkpoint to resume from'."""
    config = _write(tmp_path / "c.toml", DIGITS)
    run = tmp_path / "run"

    def ctrl_c(self, *a, **k):  # in the first epoch: no checkpoint yet
        raise KeyboardInterrupt

    monkeypatch.setattr(bp.Trainer, "fit", ctrl_c)
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(run), *args]) == 130
    err = capsys.readouterr().err
    assert not (run / "checkpoint.npz").exists() and "--resume" not in err
    assert "no checkpoint was saved yet" in err and f"--out {run} --force" in err
    # the command it gives runs as written (without a CONFIG, train refuses it)
    assert f"backprop train {run / 'config.toml'} --out {run} --force" in err


def test_resume_with_another_optimizer_is_refused_by_name(digits_run, tmp_path, capsys):
    """The checkpoint holds Adam's moments: resuming with sgd failed on an unknown key
    optimizer.amsgrad of the run's config.toml (and, past that, on the checkpoint's header)."""
    config, _ = digits_run
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(run), *args, "--set", "trainer.epochs=1"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), *args, "--set", "optimizer.name=sgd"]) == 2
    err = capsys.readouterr().err
    assert "optimizer and seed cannot change (optimizer.name: 'adam' -> 'sgd')" in err


SCHEDULES = {
    "step": '[schedule]\nname = "step"\nstep_size = 2\ngamma = 0.7\n',
    "none": "",
    "plateau": '[schedule]\nname = "plateau"\npatience = 0\nfactor = 0.5\n',
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_resume_with_a_new_learning_rate_trains_at_that_rate(tmp_path, schedule, capsys):
    """cli.md says optimizer.lr may change on --resume, and config.toml recorded the new rate,
    but the checkpoint's optimizer rate (and the schedule's or plateau's base rate) overrode
    it: the resumed epochs ran at the old rate. The new rate is now the run's base rate; the
    schedule keeps its position and the plateau its reductions."""
    text = DIGITS.replace(SCHEDULES["step"], SCHEDULES[schedule])
    config = _write(tmp_path / "c.toml", text)
    args = ["--quiet", "--set", "output.plots=false", "--set", "output.checkpoint_every=1"]
    rates = {}
    for name, lr in (("full", "0.01"), ("half", "0.001")):
        run = tmp_path / name
        more = ["--set", "trainer.epochs=2"] if name == "half" else []
        assert main(["train", str(config), "--out", str(run), *args, *more]) == 0
        if name == "half":
            capsys.readouterr()
            more = ["--set", "trainer.epochs=6", "--set", f"optimizer.lr={lr}"]
            assert main(["train", "--resume", str(run), *args, *more]) == 0
            said = capsys.readouterr().out
        history = (run / "history.csv").read_text().splitlines()
        column = history[0].split(",").index("lr")
        rates[name] = [float(row.split(",")[column]) for row in history[1:]]
    assert rates["half"][:2] == rates["full"][:2]
    # the third epoch's rate: the schedule's position, or the plateau's reductions, kept
    assert rates["half"][2] == pytest.approx(rates["full"][2] / 10, rel=1e-12)
    if schedule != "plateau":  # (a plateau's later reductions follow the new run's losses)
        assert rates["half"][2:] == pytest.approx([r / 10 for r in rates["full"][2:]], rel=1e-12)
    assert "optimizer.lr 0.01 -> 0.001 from epoch 3 on" in said


@pytest.mark.parametrize(
    "key", ["early_stopping.enabled", "output.gradient_monitor", "output.trajectory"]
)
def test_resume_that_turns_off_a_callback_with_state_names_the_setting(tmp_path, key, capsys):
    """Turning off early stopping or the monitors on --resume was refused by the checkpoint
    loader in its own words: 'state the configured objects refuse: ValueError('the saved state
    holds callbacks this trainer lacks: EarlyStopping; build it with the same callbacks')',
    which names no setting a command-line user can change. The setting is now named."""
    config = _write(tmp_path / "c.toml", DIGITS)
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false", "--set", "trainer.epochs=1"]
    assert main(["train", str(config), "--out", str(run), *args, "--set", f"{key}=true"]) == 0
    capsys.readouterr()
    more = ["--set", "trainer.epochs=2", "--set", f"{key}=false"]
    assert main(["train", "--resume", str(run), *args[:3], *more]) == 2
    err = capsys.readouterr().err
    assert f"--resume {run}: {key}: true -> false" in err and "checkpoint holds" in err


def test_resume_of_a_pruned_run_that_stopped_early_rebuilds_the_same_results(tmp_path):
    """Rebuilding a finished run put back early stopping's best weights (from before the later
    pruning steps) without re-applying the mask: metrics.json and predictions.npz described
    weights that model.npz (masked when saved) does not hold: test accuracy 0.92 where the
    run had reported 0.87 for the same model.npz."""
    config = _write(tmp_path / "c.toml", DIGITS)
    run = tmp_path / "run"
    args = ["--quiet", "--set", "output.plots=false", "--set", "output.checkpoint_every=1"]
    prune = ["pruning.sparsity=0.9", "pruning.end_step=150", "pruning.frequency=10"]
    more = [
        x for s in ["trainer.epochs=30", "early_stopping.patience=2", *prune] for x in ("--set", s)
    ]
    assert main(["train", str(config), "--out", str(run), *args, *more]) == 0
    first = json.loads((run / "metrics.json").read_text())
    assert first["stopped_early"] and first["best_epoch"] < first["epochs"]
    predicted = np.load(run / "predictions.npz")["y_pred"]
    assert main(["train", "--resume", str(run), *args]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert again["test"] == first["test"] and again["train"] == first["train"]
    assert np.array_equal(np.load(run / "predictions.npz")["y_pred"], predicted)


def test_evaluate_refuses_a_target_it_would_ignore(digits_run, capsys):
    """--target with a config was dropped without a word (the config names its target)."""
    config, run = digits_run
    assert main(["evaluate", str(run / "model.npz"), "--data", str(config), "--target", "x"]) == 2
    assert "names its own target" in capsys.readouterr().err


def test_evaluate_matches_the_run_metrics(digits_run, capsys):
    config, run = digits_run
    assert main(["evaluate", str(run / "model.npz"), "--data", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)


def test_evaluate_r2_of_several_outputs_is_the_runs(tmp_path, capsys):
    # evaluate pooled the outputs into one R² (0.917 where metrics.json said 0.755, averaged
    # per output like scikit-learn): outputs on different scales weighed by their variance
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    Y = np.column_stack(
        [X @ [1.0, 2, 3] * 100 + rng.normal(size=120) * 50, X[:, 0] * 0.01 + rng.normal(size=120)]
    )
    config, run = _regression_run(tmp_path, X, Y, units=8)
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.npz"), "--data", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["r2"] == pytest.approx(metrics["test"]["r2"], abs=1e-6)


def test_predict_writes_csv_npy_and_npz(digits_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    _, run = digits_run
    X, y = load_digits(return_X_y=True)
    header = ",".join([f"p{i}" for i in range(64)] + ["label"])
    rows = [",".join(str(v) for v in [*x, t]) for x, t in zip(X[:50], y[:50], strict=True)]
    _write(tmp_path / "in.csv", "\n".join([header, *rows]) + "\n")
    np.save(tmp_path / "in.npy", X[:50])
    out_csv, out_npy = tmp_path / "p.csv", tmp_path / "p.npy"
    model = str(run / "model.npz")
    assert (
        main(
            [
                "predict",
                model,
                str(tmp_path / "in.csv"),
                "--target",
                "label",
                "--output",
                str(out_csv),
            ]
        )
        == 0
    )
    assert main(["predict", model, str(tmp_path / "in.npy"), "--output", str(out_npy)]) == 0
    from_csv = np.array(out_csv.read_text().split()[1:], dtype=int)
    from_npy = np.load(out_npy, allow_pickle=False)
    assert np.array_equal(from_csv, from_npy)
    assert np.mean(from_npy == y[:50]) > 0.85
    assert (
        main(["predict", model, str(tmp_path / "in.npy"), "--output", str(tmp_path / "p.npz")]) == 0
    )
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        assert f["outputs"].shape == (50, 10)
        assert np.array_equal(f["y_pred"], f["outputs"].argmax(axis=1))
    capsys.readouterr()
    assert main(["evaluate", model, "--data", str(tmp_path / "in.csv"), "--target", "label"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"n_samples": 50, "accuracy": float(np.mean(from_npy == y[:50]))}
    # a .npy table with its target column: --target is a column index ("64" and "-1" alike);
    # it reached read_table as a string and every index was refused as "not below 65"
    np.save(tmp_path / "xy.npy", np.column_stack([X[:50], y[:50]]))
    for column in ("64", "-1"):
        assert (
            main(["evaluate", model, "--data", str(tmp_path / "xy.npy"), "--target", column]) == 0
        )
        assert json.loads(capsys.readouterr().out) == result
    out_xy = tmp_path / "p_xy.npy"
    args = ["predict", model, str(tmp_path / "xy.npy"), "--target", "64", "--output", str(out_xy)]
    assert main(args) == 0
    assert np.array_equal(np.load(out_xy, allow_pickle=False), from_npy)
    assert main(["evaluate", model, "--data", str(tmp_path / "xy.npy"), "--target", "65"]) == 2
    assert "column index below 65" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_on_rows_with_their_target_column_names_the_fix(digits_run, tmp_path, capsys):
    """A CSV with its label column said only "expects 64 features, the input has shape
    (5, 65)", not that --target leaves the column out."""
    _, run = digits_run
    header = ",".join([f"p{j}" for j in range(64)] + ["label"])
    rows = "\n".join(",".join(["0"] * 65) for _ in range(5))
    path = _write(tmp_path / "rows.csv", f"{header}\n{rows}\n")
    out = str(tmp_path / "p.csv")
    assert main(["predict", str(run / "model.npz"), str(path), "--output", out]) == 2
    assert "leave it out with --target COLUMN" in capsys.readouterr().err
    assert (
        main(["predict", str(run / "model.npz"), str(path), "--output", out, "--target", "label"])
        == 0
    )


def test_plot_redraws_the_figures(digits_run):
    _, run = digits_run
    for p in (run / "figures").iterdir():
        p.unlink()
    assert main(["plot", str(run)]) == 0
    assert (run / "figures" / "loss.png").stat().st_size > 5000
    assert (run / "figures" / "confusion.png").is_file()


def test_gradcheck_reports_agreement(digits_run, capsys):
    config, _ = digits_run
    assert main(["gradcheck", str(config), "--samples", "8", "--max-entries", "30"]) == 0
    out = capsys.readouterr().out
    assert "all gradients agree" in out and "0.W" in out


@pytest.mark.slow
def test_regression_and_2d_runs_draw_their_figures(tmp_path):
    diabetes = (ROOT / "configs" / "diabetes.toml").read_text()
    _write(tmp_path / "d.toml", diabetes)
    args = ["--quiet", "--set", "trainer.epochs=3", "--set", "output.gradient_monitor=false"]
    assert main(["train", str(tmp_path / "d.toml"), "--out", str(tmp_path / "d"), *args]) == 0
    assert (tmp_path / "d" / "figures" / "pred_vs_true.png").is_file()
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert "rmse" in metrics["test"] and "r2" in metrics["test"]
    _write(tmp_path / "m.toml", (ROOT / "configs" / "moons.toml").read_text())
    assert main(["train", str(tmp_path / "m.toml"), "--out", str(tmp_path / "m"), *args]) == 0
    assert (tmp_path / "m" / "figures" / "decision_boundary.png").is_file()


def test_exit_code_2_for_usage_and_config_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a failed run must not leave a run directory behind
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert main(["train", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    bad = _write(tmp_path / "bad.toml", DIGITS.replace("epochs = 6", "epochs = 6\nepoch = 2"))
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    line = bad.read_text().splitlines().index("epoch = 2") + 1
    assert "unknown key trainer.epoch" in err and f"bad.toml, line {line}:" in err
    good = _write(tmp_path / "good.toml", DIGITS)
    assert main(["train", str(good), "--set", "trainer.epochs=many"]) == 2
    assert "expected an integer, got 'many'" in capsys.readouterr().err
    missing = DIGITS.replace('source = "digits"', 'source = "file"\npath = "no/such.csv"')
    assert main(["train", str(_write(tmp_path / "f.toml", missing))]) == 2
    assert "data file not found: no/such.csv" in capsys.readouterr().err
    assert main(["train", str(good), "--set", "output.checkpoint_every=0"]) == 2
    assert "checkpoint_every: every must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    junk = _write(tmp_path / "junk.npz", "not a model")
    assert main(["evaluate", str(junk), "--data", str(good)]) == 2
    assert "not a backprop model file" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:overflow|invalid value:RuntimeWarning")
def test_exit_code_1_when_training_diverges(tmp_path, capsys):
    config = _write(tmp_path / "c.toml", DIGITS)
    args = ["--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e30", "--quiet"]
    assert main(["train", str(config), "--out", str(tmp_path / "r"), *args]) == 1
    assert "training failed: non-finite" in capsys.readouterr().err


def test_bench_runs_benchmarks_run_py_or_explains(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 2
    assert "benchmarks/run.py not found" in capsys.readouterr().err
    (tmp_path / "benchmarks").mkdir()
    _write(tmp_path / "benchmarks" / "helper.py", "NAME = 'bench args'\n")
    _write(
        tmp_path / "benchmarks" / "run.py",
        "from helper import NAME\n\ndef main(argv):\n    print(NAME, argv)\n    return 3\n",
    )
    assert main(["bench", "--quick", "digits"]) == 3
    assert "bench args ['--quick', 'digits']" in capsys.readouterr().out


@pytest.mark.slow
def test_python_dash_m_backprop_in_a_subprocess(tmp_path):
    config = _write(tmp_path / "xor.toml", (ROOT / "configs" / "xor.toml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "backprop", "train", str(config), "--out", str(tmp_path / "run")]
    cmd += ["--set", "output.plots=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/300" in proc.stderr and "epoch 300/300" in proc.stderr  # progress display
    assert "accuracy 1.0000" in proc.stdout
    bad = subprocess.run(
        [*cmd, "--set", "trainer.epochs=x"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "expected an integer" in bad.stderr


def test_resuming_a_run_that_stopped_early_changes_nothing(digits_run, tmp_path):
    config, _ = digits_run
    run = tmp_path / "r"
    args = ["--quiet", "--set", "output.plots=false", "--set", "early_stopping.min_delta=10.0"]
    assert (
        main(["train", str(config), "--out", str(run), *args, "--set", "early_stopping.patience=1"])
        == 0
    )
    first = json.loads((run / "metrics.json").read_text())
    assert first["stopped_early"] and first["epochs"] == 2 and first["best_epoch"] == 1
    before = bp.load(run / "model.npz").flat_parameters.copy()
    assert main(["train", "--resume", str(run), "--quiet", "--set", "output.plots=false"]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert after["epochs"] == 2 and after["stopped_early"]
    assert np.array_equal(bp.load(run / "model.npz").flat_parameters, before)
    # the run's training time is its epochs' (history.csv), not this session's 0.0 s
    rows = (run / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("time")
    epoch_seconds = sum(float(row.split(",")[column]) for row in rows[1:])
    assert epoch_seconds > 0 and after["time_seconds"] >= round(epoch_seconds, 3) - 1e-3


KILLABLE = """\
[data]
source = "classification"
n_samples = 240
n_features = 10
validation_size = 0.2

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 16
[[model.layers]]
type = "Tanh"
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9

[trainer]
mode = "stochastic"
epochs = 500

[early_stopping]
enabled = false

[output]
checkpoint_every = 1
plots = false
gradient_monitor = false
"""


@pytest.mark.slow
def test_resume_after_the_process_was_killed(tmp_path):
    import time

    from backprop.io import read_archive

    config = _write(tmp_path / "k.toml", KILLABLE)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "backprop", "train", str(config), "--out", str(run), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        epoch = 0
        while epoch < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if (run / "checkpoint.npz").is_file():
                epoch = read_archive(run / "checkpoint.npz")[0]["trainer"]["epoch"]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9, "the run should still have been going when it was killed"
    saved = read_archive(run / "checkpoint.npz")[0]["trainer"]
    k = saved["epoch"]
    assert k >= 2 and not (run / "model.npz").exists()
    total = f"trainer.epochs={k + 2}"
    assert main(["train", "--resume", str(run), "--quiet", "--set", total]) == 0
    whole = tmp_path / "whole"
    assert main(["train", str(config), "--out", str(whole), "--quiet", "--set", total]) == 0
    a, b = bp.load(run / "model.npz"), bp.load(whole / "model.npz")
    assert np.array_equal(a.flat_parameters, b.flat_parameters)
    # the killed run's first k epochs (with their measured times) were kept, not re-run
    from backprop.app.plotting import read_history

    assert read_history(run / "history.csv")["time"][:k] == saved["history"]["time"]


def test_predict_refuses_raw_pixels_for_a_model_of_scaled_mnist_pixels(tmp_path, capsys):
    """The mnist sources divide pixels by 255 outside the model, so a run's model.npz expects
    [0, 1]; raw 0..255 pixels (as data/mnist.npz stores them) were answered wrongly, silently."""
    model = bp.Sequential([bp.Dense(784, 10)], seed=0)
    metadata = {
        "task": "classification",
        "classes": list(range(10)),
        "image_shape": [28, 28],
        "n_features": 784,
        "source": "mnist",
        "loss": "cross_entropy",
        "preprocessing_layers": [0, 0],
    }
    bp.save(model, tmp_path / "model.npz", metadata=metadata)
    raw = np.random.default_rng(0).integers(0, 256, (5, 784)).astype(np.uint8)
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "scaled.npy", raw / 255.0)
    args = ["predict", str(tmp_path / "model.npz")]
    assert main([*args, str(tmp_path / "raw.npy"), "--output", str(tmp_path / "p.npy")]) == 2
    assert "divide raw pixels by 255" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "scaled.npy"), "--output", str(tmp_path / "p.npy")]) == 0


def test_a_poisson_run_reports_and_predicts_rates_not_log_rates(tmp_path, capsys):
    # A Poisson model's outputs are log-rates z: metrics.json's rmse/mae, predictions.npz,
    # `evaluate` and `predict` used z itself against the counts (rmse 165.8 on diabetes)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.8 * X[:, 0] + 2.0)).astype(np.float64)
    config, run = _regression_run(
        tmp_path, X, y, 8, "poisson", lr=0.02, epochs=60, data="standardize_target = false\n"
    )
    capsys.readouterr()
    model = bp.load(run / "model.npz")
    saved = np.load(run / "predictions.npz")
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    true, pred = saved["y_true"].ravel(), saved["y_pred"].ravel()
    assert np.all(pred > 0)  # rates, not log-rates
    assert metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - true) ** 2))))
    assert metrics["rmse"] < np.std(true)  # better than the mean: it learnt something
    assert main(["evaluate", str(run / "model.npz"), "--data", str(config)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rmse"] == pytest.approx(metrics["rmse"], rel=1e-6)
    np.save(tmp_path / "rows.npy", X[:5])
    out = tmp_path / "pred.npy"
    assert (
        main(["predict", str(run / "model.npz"), str(tmp_path / "rows.npy"), "--output", str(out)])
        == 0
    )
    np.testing.assert_allclose(
        np.load(out).ravel(), np.exp(model.predict(X[:5])).ravel(), rtol=1e-6
    )


def test_evaluate_prints_strict_json_when_a_figure_is_nan(tmp_path, capsys):
    # the R2 of a constant target is NaN: evaluate printed the token NaN, which strict JSON
    # readers refuse (metrics.json already writes null)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    _, run = _regression_run(tmp_path, X, X[:, 0] + 0.5 * X[:, 1], 4, epochs=2)
    np.savez(tmp_path / "flat.npz", X=X[:10], y=np.full(10, 3.0))
    capsys.readouterr()
    model = str(run / "model.npz")
    assert main(["evaluate", model, "--data", str(tmp_path / "flat.npz")]) == 0

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["r2"] is None and result["rmse"] > 0 and result["n_samples"] == 10


def test_the_model_figures_name_parameters_as_the_training_curves_do(tmp_path, monkeypatch):
    """weights.png titled the first Dense's matrix "1.W" (the index in model.npz, which holds a
    Standardize layer in front) while grad_norms.png, history.csv and gradcheck call it "0.W"."""
    from backprop.app import plotting

    drawn = {}

    def spy(name):
        real = getattr(plotting, name)

        def wrapper(model, *args, **kwargs):
            drawn[name] = sorted(model.parameters())
            return real(model, *args, **kwargs)

        monkeypatch.setattr(plotting, name, wrapper)

    spy("fig_weights")
    spy("fig_first_layer")
    run = tmp_path / "run"
    config = _write(tmp_path / "d.toml", DIGITS.replace("epochs = 6", "epochs = 1"))
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    columns = (run / "history.csv").read_text().splitlines()[0].split(",")
    trained = sorted(c.split("/", 1)[1] for c in columns if c.startswith("grad_norm/"))
    assert trained == ["0.W", "0.b", "3.W", "3.b"]
    assert drawn == {"fig_weights": trained, "fig_first_layer": trained}


def test_feature_maps_number_layers_as_the_config_does(tmp_path, monkeypatch):
    """feature_maps.png labelled the Conv2D of a standardized run "2: Conv2D": its index in
    model.npz, behind the Standardize layer, where the config and summary() say layer 1."""
    from backprop.app import plotting

    labels = []
    real = plotting.fig_feature_maps

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        labels.extend(row[0].get_ylabel() for row in np.reshape(fig.axes, (-1, 8)))
        return fig

    monkeypatch.setattr(plotting, "fig_feature_maps", spy)
    conv = '[[model.layers]]\ntype = "Reshape"\nshape = [8, 8, 1]\n[[model.layers]]\n'
    conv += 'type = "Conv2D"\nfilters = 8\nkernel_size = 3\n[[model.layers]]\ntype = "Flatten"\n'
    text = DIGITS.replace("epochs = 6", "epochs = 1")
    text = text.replace('[[model.layers]]\ntype = "Dense"\nout_features = 24\n', conv)
    config = _write(tmp_path / "c.toml", text)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert labels == ["input", "1: Conv2D"]


@pytest.mark.parametrize("change", ["seed = 1", "test_size = 0.2"])
def test_evaluate_refuses_a_config_that_splits_the_data_otherwise(
    digits_run, tmp_path, capsys, change
):
    """`evaluate --data` with the config edited after training (another data.seed or
    test_size) scored a "test" split holding rows the model had trained on: 0.998 for a model
    whose test accuracy was 0.982, without a word."""
    config, run = digits_run
    key = change.split(" = ")[0]
    text = config.read_text().replace('source = "digits"', f'source = "digits"\n{change}')
    other = _write(tmp_path / "other.toml", text)
    assert main(["evaluate", str(run / "model.npz"), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{other}: its [data] is not the one" in err, err
    assert f"data.{key}: " in err and "config.toml" in err, err
    scaled = text.replace('source = "digits"', 'source = "digits"\nstandardize = false')
    same = _write(tmp_path / "same.toml", scaled.replace(f"\n{change}", ""))
    assert main(["evaluate", str(run / "model.npz"), "--data", str(same)]) == 0  # the scaling
    assert main(["evaluate", str(run / "model.npz"), "--data", str(run / "config.toml")]) == 0


def test_the_lr_find_figure_is_not_flattened_by_the_diverged_tail(tmp_path, monkeypatch):
    """On moons the last raw batch loss of the range test was 185 against ~0.7 before: the
    linear y axis ran to 185 and every curve before the blow-up was a flat line at 0."""
    from backprop.app import tool_plots
    from backprop.lr_finder import LRFinderResult

    lrs = np.geomspace(1e-5, 10, 40)
    smoothed = np.r_[np.linspace(0.7, 0.1, 35), [0.3, 1.0, 5.0, 20.0, 60.0]]
    losses = smoothed * (1 + 0.1 * np.sin(np.arange(40)))
    losses[-1] = 185.0
    result = LRFinderResult(lrs, losses, smoothed, float(lrs[34] / 10), float(lrs[10]), True)
    figures = []
    monkeypatch.setattr(tool_plots, "_save", lambda fig, path: figures.append(fig) or path)
    tool_plots.plot_lr_find({"Adam": result}, tmp_path / "lr.png")
    low, high = figures[0].axes[0].get_ylim()
    assert high <= 3 * 0.7 + 1e-9 and low <= 0.1, (low, high)  # the dip fills the axis
    assert "cut" in figures[0].axes[0].get_ylabel()
    # a test that never diverged keeps its whole range
    calm = LRFinderResult(lrs[:30], smoothed[:30], smoothed[:30], 1e-3, 1e-4, False)
    tool_plots.plot_lr_find({"Adam": calm}, tmp_path / "lr2.png")
    assert figures[1].axes[0].get_ylim()[1] >= 0.7 and "cut" not in figures[1].axes[0].get_ylabel()


def test_a_run_without_a_test_split_does_not_print_training_figures_as_test(tmp_path, capsys):
    """With test_size = 0 (xor) the run printed "test: loss 0.0013, accuracy 1.0000" for the
    training points themselves; metrics.json says test_is_training_data, the line did not."""
    config = ROOT / "configs" / "xor.toml"
    args = ["--quiet", "--set", "trainer.epochs=2", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(tmp_path / "r"), *args]) == 0
    out = capsys.readouterr().out
    assert "test (the training data, test_size = 0): loss" in out, out
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["test_is_training_data"]


def test_evaluate_with_a_config_whose_data_file_is_missing_names_the_config(
    tmp_path, capsys, monkeypatch
):
    """evaluate --data CONFIG said only "data file not found: d.npz" (train names the config,
    its line and the working directory a relative path is read from)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(60, 3)), y=np.arange(60) % 2)
    config = _write(
        tmp_path / "c.toml",
        '[data]\nsource = "file"\npath = "d.npz"\n[loss]\nname = "cross_entropy"\n'
        '[[model.layers]]\ntype = "Dense"\n[trainer]\nepochs = 1\n',
    )
    monkeypatch.chdir(tmp_path)
    assert main(["train", "c.toml", "--out", "run", "--quiet"]) == 0
    monkeypatch.chdir(ROOT)
    assert main(["evaluate", str(tmp_path / "run" / "model.npz"), "--data", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}, line 3: data file not found: d.npz" in err, err
    assert "working directory" in err, err


def test_a_regression_run_says_its_loss_is_of_the_standardized_target(tmp_path, capsys):
    """diabetes printed "test: loss 0.5171, r2 0.4564, rmse 55.6424": the loss is the MSE of
    the standardized target, rmse is in the target's units (55.6**2 is 3096, not 0.517), and
    nothing said which was which."""
    config = ROOT / "configs" / "diabetes.toml"
    args = ["--quiet", "--set", "trainer.epochs=2", "--set", "output.plots=false"]
    assert main(["train", str(config), "--out", str(tmp_path / "r"), *args]) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if s.startswith("test")][0]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())["test"]
    assert line.startswith(f"test: loss (standardized target) {metrics['loss']:.4f}, r2 "), line
    assert f"rmse {metrics['rmse']:.4f}" in line, line
    unscaled = ["--set", "data.standardize_target=false", "--force"]
    assert main(["train", str(config), "--out", str(tmp_path / "r"), *args, *unscaled]) == 0
    assert "test: loss 2" in capsys.readouterr().out  # an MSE in the target's own units


def _labelled_csv_config(tmp_path, other: str, extra: str = "") -> Path:
    """A CSV of 80 points labelled "north, east" (x0 > 0) or ``other``, and a config training a
    one-layer classifier on it for 2 epochs."""
    import csv

    X = np.random.default_rng(0).normal(size=(80, 2))
    with open(tmp_path / "q.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x0", "x1", "label"])
        w.writerows([a, b, "north, east" if a > 0 else other] for a, b in X)
    return _write(
        tmp_path / "q.toml",
        f'[data]\nsource = "file"\npath = "{tmp_path / "q.csv"}"\ntarget = "label"\n'
        '[[model.layers]]\ntype = "Dense"\n[loss]\nname = "cross_entropy"\n'
        f"[trainer]\nepochs = 2\n{extra}",
    )


def test_predict_quotes_csv_labels_that_hold_commas_or_quotes(tmp_path, capsys):
    """Class names read from a CSV ("north, east", 'south "x"') were joined with bare commas:
    predict's .csv had rows of two cells under a one-column header, and the --proba header
    split "proba_north, east" in two."""
    import csv

    config = _labelled_csv_config(tmp_path, 'south "x"', "[output]\nplots = false\n")
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    model, data = str(tmp_path / "r" / "model.npz"), str(tmp_path / "q.csv")
    for out, extra in (("p.csv", []), ("pp.csv", ["--proba"])):
        args = ["predict", model, data, "--target", "label", "--output", str(tmp_path / out)]
        assert main([*args, *extra]) == 0
        with open(tmp_path / out, newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == 81 and {len(r) for r in rows} == {len(rows[0])}, rows[:3]
    assert rows[0] == ["proba_north, east", 'proba_south "x"']
    with open(tmp_path / "p.csv", newline="") as f:
        assert {r[0] for r in list(csv.reader(f))[1:]} <= {"north, east", 'south "x"'}


def test_cartography_lists_the_labels_the_data_gave(tmp_path, capsys):
    """suspicious.csv's given_label held the internal class code (0, 1), not the label of the
    data ("north, east"), and its rows were joined with bare commas."""
    import csv

    config = _labelled_csv_config(tmp_path, "south")
    assert main(["cartography", str(config), "--top", "5", "--out", str(tmp_path / "c")]) == 0
    with open(tmp_path / "c" / "suspicious.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["rank", "index", "given_label", "confidence", "variability"]
    assert len(rows) == 6 and {len(r) for r in rows} == {5}, rows
    assert {r[2] for r in rows[1:]} <= {"north, east", "south"}, rows
    out = capsys.readouterr().out
    assert "(north, east)" in out or "(south)" in out, out


def test_evaluate_takes_new_draws_and_mnist_test_size(tmp_path):
    """evaluate --data refused a config whose [data] differed from the run's, saying its test
    split would hold training rows, also where it could not: moons with another data.seed draws
    new points (a fair test on fresh data), and MNIST's test set is the official one whatever
    data.test_size says. Another test_size on moons still splits the same points otherwise."""
    layer = '[[model.layers]]\ntype = "Dense"\n'
    moons = _write(tmp_path / "moons.toml", f'[data]\nsource = "moons"\nseed = 3\n{layer}')
    trained = load_config(moons)["data"]
    X, _ = evaluation_split(moons, {**trained, "seed": 0})
    assert len(X) == 124  # a stratified quarter of 500 points
    with pytest.raises(ConfigError, match="data.test_size: 0.2 -> 0.25"):
        evaluation_split(moons, {**trained, "test_size": 0.2})
    rng, sizes = np.random.default_rng(0), (("train", 20), ("test", 8))
    images = {f"X_{k}": rng.integers(0, 256, (n, 784)).astype(np.uint8) for k, n in sizes}
    np.savez(
        tmp_path / "m.npz",
        **images,
        **{f"y_{k}": (np.arange(n) % 10).astype(np.uint8) for k, n in sizes},
    )
    text = f'[data]\nsource = "mnist"\nvalidation_size = 0\npath = "{tmp_path / "m.npz"}"\n{layer}'
    mnist = _write(tmp_path / "mnist.toml", text)
    trained = load_config(mnist)["data"]
    X, _ = evaluation_split(mnist, {**trained, "test_size": 0.1})
    assert len(X) == 8
