"""The command line as a hostile user meets it: every error is one line and the right exit code,
nothing already written is lost, and Ctrl-C keeps the model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.app import sources
from backprop.app.cli import main

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
[data]
source = "{source}"
n_samples = 160
validation_size = 0.2

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 8
[[model.layers]]
type = "Tanh"
[[model.layers]]
type = "Dense"

[loss]
name = "{loss}"

[optimizer]
name = "adam"
lr = 0.01

[trainer]
epochs = {epochs}
batch_size = 32

[early_stopping]
patience = 50

[output]
plots = false
gradient_monitor = false
"""


def small_config(tmp_path, source="classification", loss="cross_entropy", epochs=3, name="c"):
    path = tmp_path / f"{name}.toml"
    path.write_text(SMALL.format(source=source, loss=loss, epochs=epochs))
    return path


def one_line_error(capsys, code, expected, *fragments):
    err = capsys.readouterr().err
    assert code == expected, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("backprop: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    run = tmp / "run"
    assert main(["train", str(small_config(tmp)), "--out", str(run), "--quiet"]) == 0
    return run


# -- 5: resuming a finished run keeps what it found ---------------------------------------------
def test_resuming_a_finished_run_keeps_its_best_model_and_best_epoch(tmp_path):
    # min_delta = 10 means no epoch after the first counts as better: the best model is epoch 1's
    run = tmp_path / "done"
    sets = ["--quiet", "--set", "early_stopping.min_delta=10.0"]
    assert main(["train", str(small_config(tmp_path)), "--out", str(run), *sets]) == 0
    first = json.loads((run / "metrics.json").read_text())
    assert first["epochs"] == 3 and first["best_epoch"] == 1 and not first["stopped_early"]
    best = bp.load(run / "model.npz").flat_parameters.copy()
    last = bp.io.read_archive(run / "checkpoint.npz")[1]
    assert not np.array_equal(best[:3], last["model/0.W"].ravel()[:3])  # the two differ
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert again["best_epoch"] == 1 and again["epochs"] == 3
    assert again["test"] == first["test"]
    assert np.array_equal(bp.load(run / "model.npz").flat_parameters, best)


# -- 7: predict refuses what it cannot predict ----------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_predict_refuses_non_finite_input(trained, tmp_path, capsys, bad, suffix):
    n = bp.load(trained / "model.npz").n_features_in
    X = np.ones((4, n))
    X[2, 1] = bad
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, X)
    else:
        path.write_text("\n".join(",".join(str(v) for v in row) for row in X) + "\n")
    out = tmp_path / "p.npy"
    code = main(["predict", str(trained / "model.npz"), str(path), "--output", str(out)])
    one_line_error(capsys, code, 2, f"x{suffix}", f"{bad} at row 3, column 2")
    assert not out.exists()


# -- 19: a CSV without a header keeps all its rows ------------------------------------------------
def test_a_headerless_csv_loses_no_row(trained, tmp_path, capsys):
    n = bp.load(trained / "model.npz").n_features_in
    X = np.random.default_rng(0).normal(size=(5, n))
    body = "\n".join(",".join(repr(v) for v in row) for row in X.tolist()) + "\n"
    (tmp_path / "bare.csv").write_text(body)
    (tmp_path / "named.csv").write_text(",".join(f"f{j}" for j in range(n)) + "\n" + body)
    np.save(tmp_path / "x.npy", X)
    model = str(trained / "model.npz")
    got = {}
    for name in ("bare.csv", "named.csv", "x.npy"):
        out = tmp_path / f"{name}.pred.npy"
        assert main(["predict", model, str(tmp_path / name), "--output", str(out)]) == 0
        assert "wrote 5 predictions" in capsys.readouterr().out
        got[name] = np.load(out)
    assert np.array_equal(got["bare.csv"], got["x.npy"])
    assert np.array_equal(got["named.csv"], got["x.npy"])


@pytest.mark.parametrize(
    "rows, header",
    [
        ([["1", "2"], ["3", "4"]], False),
        ([["a", "b"], ["3", "4"]], True),
        ([["x1", "label"], ["1.5", "cat"]], True),  # a text label column: the first cell decides
        ([["1.5", "cat"], ["2.5", "dog"]], False),
        ([["1e3", "-inf"], ["nan", "2"]], False),  # numbers, however written
        ([["a", "b"]], True),
        ([["7", "8"]], False),
    ],
)
def test_the_header_is_decided_by_content(rows, header):
    assert sources.has_header(rows) is header


def test_a_headerless_csv_names_columns_by_index(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,cat\n3,4,dog\n\n5,6,cat\n")
    X, y = sources.read_table(path, "2")
    assert X.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == ["cat", "dog", "cat"]
    with pytest.raises(ValueError, match=r"no column 'label'; columns: \['0', '1', '2'\]"):
        sources.read_table(path, "label")


# -- 19: vacuous checks are refused ----------------------------------------------------------------
@pytest.mark.parametrize(
    "flag, value",
    [("--samples", "0"), ("--samples", "-3"), ("--max-entries", "0"), ("--samples", "x")],
)
def test_gradcheck_refuses_counts_below_one(tmp_path, capsys, flag, value):
    code = main(["gradcheck", str(small_config(tmp_path)), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and f"argument {flag}: must be a positive integer, got '{value}'" in err
    assert "Traceback" not in err


# -- 16: output errors are one line, and nothing is overwritten silently --------------------------
def test_out_naming_an_existing_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code = main(["train", str(small_config(tmp_path)), "--out", str(target), "--quiet"])
    one_line_error(capsys, code, 2, "notes.txt: is a file, not a directory")
    assert target.read_text() == "keep me"


def test_an_existing_run_is_not_reused_without_force(trained, tmp_path, capsys):
    config = small_config(tmp_path, epochs=2)
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    before = (run / "model.npz").read_bytes()
    code = main(["train", str(config), "--out", str(run), "--quiet", "--set", "trainer.epochs=1"])
    one_line_error(capsys, code, 2, "already holds a run", "--force", "--resume")
    assert (run / "model.npz").read_bytes() == before
    (run / "notes.txt").write_text("mine")
    forced = ["--quiet", "--force", "--set", "trainer.epochs=1"]
    assert main(["train", str(config), "--out", str(run), *forced]) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    assert (run / "notes.txt").read_text() == "mine"  # --force replaces only a run's own files


@pytest.mark.parametrize(
    "item", ["trainer.epochs=0", "optimizer.lr=-1", "output.checkpoint_every=0", "loss.name=mse"]
)
def test_a_bad_value_from_set_is_blamed_on_the_set_not_the_file(tmp_path, capsys, item):
    """``--set trainer.epochs=0`` was reported as "c.toml: [trainer]: epochs must be a positive
    integer, got 0", sending the user to a file whose epochs were fine."""
    code = main(["train", str(small_config(tmp_path)), "--quiet", "--set", item])
    one_line_error(capsys, code, 2, f"c.toml (--set {item}): ")


def test_metrics_json_is_strict_json_when_a_figure_is_nan(tmp_path):
    """One validation row gives an R^2 of NaN, which metrics.json held as the bare token NaN:
    not JSON (jq and JavaScript refuse the file); it is null now, as the code meant."""
    config = small_config(tmp_path, source="regression", loss="mse", epochs=1)
    run = tmp_path / "run"
    args = ["--quiet", "--set", "data.validation_size=0.008"]  # 1 of 120 training rows
    assert main(["train", str(config), "--out", str(run), *args]) == 0
    text = (run / "metrics.json").read_text()

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    metrics = json.loads(text, parse_constant=refuse)
    assert metrics["data"]["n_val"] == 1 and metrics["validation"]["r2"] is None


def test_force_removes_every_file_the_old_run_wrote(tmp_path, capsys):
    """--force kept the old run's activations.npz (and `backprop uncertainty`'s json): a new run
    without the gradient monitor then showed the old run's activations as its own figure."""
    config = small_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    monitor = ["--set", "output.gradient_monitor=true"]
    assert main(["train", str(config), "--out", str(run), "--quiet", *monitor]) == 0
    assert (run / "activations.npz").is_file()
    (run / "uncertainty.json").write_text("{}")
    assert main(["train", str(config), "--out", str(run), "--quiet", "--force"]) == 0
    assert not (run / "activations.npz").exists() and not (run / "uncertainty.json").exists()


@pytest.mark.parametrize("item", ["loss.name=mse", "data.validation_size=0"])
def test_force_keeps_the_old_run_when_the_new_config_is_refused(tmp_path, capsys, item):
    """--force deleted the old run's files first; a config then refused (a loss that does not
    fit the data, early stopping on a missing validation split) left an empty folder."""
    config = small_config(tmp_path, epochs=1)
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code = main(["train", str(config), "--out", str(run), "--quiet", "--force", "--set", item])
    one_line_error(capsys, code, 2)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def _unwritable_dirs(tmp_path):
    dirs = []
    if os.geteuid() != 0:  # root writes anywhere: chmod cannot stop it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        dirs.append(locked / "run")
    if Path("/sys/kernel").is_dir():
        dirs.append(Path("/sys/kernel/backprop-run"))  # read-only even for root
    dirs.append(Path("/dev/full/run"))  # a path through a file
    return dirs


def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    for run in _unwritable_dirs(tmp_path):
        code = main(["train", str(small_config(tmp_path)), "--out", str(run), "--quiet"])
        one_line_error(capsys, code, 2, str(run))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("suffix", [".csv", ".npy", ".npz"])
def test_a_full_disk_is_one_line(trained, tmp_path, capsys, suffix):
    X = tmp_path / "x.npy"
    np.save(X, np.zeros((3, bp.load(trained / "model.npz").n_features_in)))
    out = tmp_path / f"full{suffix}"
    out.symlink_to("/dev/full")  # every write to it fails with ENOSPC, like a full disk
    code = main(["predict", str(trained / "model.npz"), str(X), "--output", str(out)])
    one_line_error(capsys, code, 2, "No space left on device")


# -- 18: messages that point at the real problem ---------------------------------------------------
@pytest.mark.parametrize(
    "source, loss, message",
    [
        ("classification", "huber", "loss.name = 'huber' does not fit the data"),
        ("classification", "mse", "a classification task); use cross_entropy"),
        ("regression", "cross_entropy", "a regression task); use mse"),
    ],
)
def test_a_loss_that_cannot_score_the_data_is_refused_before_the_run(
    tmp_path, capsys, source, loss, message
):
    run = tmp_path / "run"
    config = small_config(tmp_path, source=source, loss=loss)
    code = main(["train", str(config), "--out", str(run), "--quiet"])
    one_line_error(capsys, code, 2, message)
    assert not run.exists()  # no half-made run directory


@pytest.mark.parametrize(
    "override", ["optimizer.lr=-1", "trainer.batch_size=0", "early_stopping.patience=-1"]
)
def test_config_errors_name_the_file_once(tmp_path, capsys, override):
    config = small_config(tmp_path, name="moons")
    code = main(["train", str(config), "--set", override, "--out", str(tmp_path / "r")])
    err = one_line_error(capsys, code, 2)
    assert err.count("moons.toml") == 1, err


def test_resume_of_a_missing_or_foreign_folder_says_so(tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path / "nowhere")])
    one_line_error(capsys, code, 2, "nowhere: run directory not found")
    code = main(["train", "--resume", str(tmp_path)])
    one_line_error(capsys, code, 2, "not a run directory (it has no config.toml)")


# -- 20: Ctrl-C ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_keeps_the_model_and_exits_130(tmp_path):
    config = small_config(tmp_path, epochs=100_000)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "backprop", "train", str(config), "--out", str(run), "--quiet"]
    cmd += ["--set", "early_stopping.enabled=false"]  # still training when the signal comes
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.npz").is_file() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err and "Warning" not in err, err
    assert err.startswith("backprop: interrupted after ") and "--resume" in err
    model = bp.load(run / "model.npz")  # the trained weights, saved as a usable model
    from backprop.app.config import build_model, load_config

    untrained = build_model(load_config(config), 20, 2)
    assert model.n_parameters == untrained.n_parameters
    assert not np.array_equal(model.flat_parameters, untrained.flat_parameters)
    saved = bp.io.read_archive(run / "checkpoint.npz")[0]["trainer"]["epoch"]
    assert saved >= 1 and model.n_parameters > 0
    rows = (run / "history.csv").read_text().strip().splitlines()
    # (a Ctrl-C between the Checkpoint's and the History's end-of-epoch hooks leaves the
    # history one epoch behind the checkpoint; resuming rebuilds it from the checkpoint)
    assert len(rows) - 1 >= saved - 1
    resumed = ["train", "--resume", str(run), "--quiet", "--set", f"trainer.epochs={saved + 1}"]
    assert main(resumed) == 0


def test_an_output_stream_on_a_full_disk_is_one_line(trained, capsys, monkeypatch):
    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    code = main(["evaluate", str(trained / "model.npz"), "--data", str(trained / "config.toml")])
    one_line_error(capsys, code, 2, "I/O error: No space left on device")


def test_a_default_run_directory_is_never_reused(tmp_path, capsys, monkeypatch):
    from backprop.app import experiment

    class Frozen(experiment.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(experiment, "datetime", Frozen)
    config = small_config(tmp_path, epochs=1)
    sets = ["--quiet", "--set", f"output.dir={tmp_path / 'runs'}"]
    assert main(["train", str(config), *sets]) == 0
    assert main(["train", str(config), *sets]) == 0
    first, second = tmp_path / "runs/c-20260102-030405", tmp_path / "runs/c-20260102-030405-2"
    assert (first / "model.npz").is_file() and (second / "model.npz").is_file()
    assert f"{first} exists; this run writes to {second}" in capsys.readouterr().err


def test_evaluate_refuses_non_finite_input(trained, tmp_path, capsys):
    n = bp.load(trained / "model.npz").n_features_in
    X = np.zeros((4, n))
    X[1, 0] = np.inf
    np.savez(tmp_path / "d.npz", X=X, y=np.zeros(4))
    code = main(["evaluate", str(trained / "model.npz"), "--data", str(tmp_path / "d.npz")])
    one_line_error(capsys, code, 2, "d.npz: the input holds inf at row 2, column 1")


@pytest.mark.parametrize("name", ["lr.txt", "lr"])
def test_lr_find_refuses_a_figure_name_it_cannot_write_before_the_range_test(
    tmp_path, capsys, monkeypatch, name
):
    """`lr-find --out lr.txt` ran the whole range test, then died in matplotlib's savefig with
    a traceback (exit 1): "Format 'txt' is not supported"."""
    ran = []
    monkeypatch.setattr("backprop.app.tools.lr_find", lambda *a, **k: ran.append(1))
    code = main(["lr-find", str(small_config(tmp_path)), "--out", str(tmp_path / name)])
    one_line_error(capsys, code, 2, f"--out {tmp_path / name}:", ".png")
    assert not ran and not (tmp_path / name).exists()


def test_a_resume_keeps_the_runs_recorded_training_time(tmp_path, capsys):
    """metrics.json's time_seconds is the run's whole training time, earlier sessions included.
    A resume summed the checkpoint's per-epoch times instead, which leave out the callbacks
    (checkpoint writes, monitors): a resume with nothing to train lowered the recorded time,
    and a resume that trained on could record less time than the run before it."""
    run = tmp_path / "run"
    config = small_config(tmp_path).read_text().replace("gradient_monitor = false", "")
    (tmp_path / "m.toml").write_text(config)  # the monitors' time is the callbacks' time
    assert main(["train", str(tmp_path / "m.toml"), "--out", str(run), "--quiet"]) == 0
    first = json.loads((run / "metrics.json").read_text())["time_seconds"]
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # nothing to train
    assert json.loads((run / "metrics.json").read_text())["time_seconds"] == first
    assert main(["train", "--resume", str(run), "--quiet", "--set", "trainer.epochs=4"]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert again["epochs"] == 4 and again["time_seconds"] > first
    assert f"(4 epochs, {again['time_seconds']:.1f}s)" in capsys.readouterr().out


def test_a_diverged_run_is_one_line_without_numpys_overflow_warnings(tmp_path, capsys):
    """lr = 1e8 stopped with the one-line "training failed: non-finite loss" (exit 1), after
    four numpy RuntimeWarnings (overflow in matmul, invalid value in divide, ...), each with
    a file path and a source line: eight lines of noise before the one that explains."""
    import warnings

    sets = ["--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e8", "--quiet"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        config = small_config(tmp_path, source="regression", loss="mse")
        code = main(["train", str(config), "--out", str(tmp_path / "r"), *sets])
    one_line_error(capsys, code, 1, "training failed: non-finite loss")
    assert not [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("which", ["model", "input"])
def test_predict_does_not_write_over_its_model_or_input(trained, tmp_path, capsys, which):
    """`predict run/model.npz X.npy --output run/model.npz` replaced the model with its own
    predictions ("wrote 160 predictions"); the next evaluate found no model in the file."""
    import shutil

    model = tmp_path / "model.npz"
    shutil.copy(trained / "model.npz", model)
    X = tmp_path / "X.npz"
    np.savez(X, X=np.zeros((3, bp.load(model).in_shape[0])))
    target = model if which == "model" else X
    before = target.read_bytes()
    code = main(["predict", str(model), str(X), "--output", str(target)])
    one_line_error(capsys, code, 2, f"--output {target}: that is the {which} file")
    assert target.read_bytes() == before
