"""Learning-rate schedules (formulas) and the callbacks (CSV, progress, plateau)."""

import csv
import io
import math

import numpy as np
import pytest

import backprop as bp


def started(schedule, base=0.1):
    schedule.start(base)
    return schedule


def test_schedule_formulas():
    assert started(bp.Constant())(7) == 0.1
    s = started(bp.StepDecay(step_size=3, gamma=0.5))
    assert [s(t) for t in range(7)] == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025])
    s = started(bp.ExponentialDecay(gamma=0.9))
    assert s(2) == pytest.approx(0.1 * 0.81)
    s = started(bp.InverseScaling(power=0.5))
    assert s(3) == pytest.approx(0.1 / 2)  # 0.1 / (3 + 1)^0.5
    s = started(bp.CosineDecay(total=10, warmup=2, min_lr=0.01))
    # warm-up: 0.1 * 1/2, 0.1 * 2/2; then cosine from 0.1 to 0.01 over 8 steps
    assert s(0) == pytest.approx(0.05) and s(1) == pytest.approx(0.1)
    assert s(2) == pytest.approx(0.1)
    assert s(6) == pytest.approx(0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(10) == pytest.approx(0.01) and s(50) == pytest.approx(0.01)


def test_start_keeps_the_first_base_rate():
    s = started(bp.StepDecay(step_size=1, gamma=0.5), 0.1)
    s.start(0.025)  # a second fit (resume) must not rebase the schedule
    assert s(1) == pytest.approx(0.05)


@pytest.mark.parametrize("use_as", ["schedule", "callback"])
def test_reduce_lr_on_plateau(use_as):
    plateau = bp.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1)
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    kw = {"schedule": plateau} if use_as == "schedule" else {"callbacks": [plateau]}
    # lr so small the loss cannot improve by min_delta: every epoch after the first is a plateau
    plateau.min_delta = 1.0
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), epochs=6, seed=0, **kw)
    h = trainer.fit(np.eye(2), [0, 1])
    lrs = h["lr"] if use_as == "schedule" else [trainer.optimizer.lr]
    # epochs 2 and 3 without improvement (patience 1) -> halve; twice in 6 epochs
    assert min(lrs) == pytest.approx(0.1 * 0.5**2)


def test_plateau_ignores_nan_and_never_goes_below_min_lr():
    s = bp.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0, min_lr=0.05)
    s.base_lr = 0.1
    for v in [1.0, math.nan, math.nan, math.nan]:
        s.observe(v)
    assert s.best == 1.0  # NaN never improved on it
    assert s.lr() == pytest.approx(0.05)


def test_csv_logger_and_progress_bar(tmp_path):
    path = tmp_path / "history.csv"
    stream = io.StringIO()
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        "adam",
        epochs=3,
        seed=0,
        callbacks=[bp.CSVLogger(str(path)), bp.ProgressBar(stream=stream, force=True)],
    )
    h = trainer.fit(np.eye(2), [0, 1], validation_data=(np.eye(2), [0, 1]))
    rows = list(csv.DictReader(path.open()))
    assert [float(r["loss"]) for r in rows] == pytest.approx(h["loss"])
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3")
    assert "val_loss" in lines[-1] and "left" in lines[-1]


def test_csv_logger_appends_rows_under_the_files_own_header(tmp_path):
    # A second fit with validation data appended rows with two more values than the header
    # had columns: the "lr" column then held the validation loss
    path = str(tmp_path / "log.csv")
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", "adam", epochs=1, seed=0, callbacks=[bp.CSVLogger(path)]
    )
    trainer.fit(np.eye(2), [0, 1])
    trainer.callbacks = [bp.CSVLogger(path, append=True)]
    with pytest.warns(RuntimeWarning, match="val_loss, val_accuracy not in its header"):
        h = trainer.fit(np.eye(2), [0, 1], validation_data=(np.eye(2), [0, 1]))
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert {len(row) for row in table} == {len(table[0])}
    rows = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    for key in ("epoch", "loss", "lr"):
        assert [float(r[key]) for r in rows] == pytest.approx(h[key]), key


def test_progress_bar_prints_one_plain_line_per_epoch_when_not_a_terminal():
    stream = io.StringIO()  # not a tty: a log file or CI
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", "adam", epochs=2, callbacks=[bp.ProgressBar(stream=stream)]
    )
    trainer.fit(np.eye(2), [0, 1])
    lines = stream.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "\r" not in stream.getvalue()


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: bp.StepDecay(step_size=0), "step_size"),
        (lambda: bp.CosineDecay(total=5, warmup=5), "warmup"),
        (lambda: bp.ExponentialDecay(gamma=-1), "gamma"),
        (lambda: bp.Constant(interval="batch"), "interval"),
        (lambda: bp.ReduceLROnPlateau(factor=2), "factor"),
        (lambda: bp.schedules.get("linear"), "valid names"),
        (lambda: bp.EarlyStopping(patience=-1), "patience"),
    ],
)
def test_bad_schedule_and_callback_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()
