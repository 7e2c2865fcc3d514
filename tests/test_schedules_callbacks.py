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
    # A second fit with validation data once appended rows with two more values than the
    # header had columns (the "lr" column then held the validation loss); the rows follow the
    # file's header, and the values it has no column for are named in a warning
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


class _Crash(bp.Callback):
    """Raises at the end of one epoch, after the CSVLogger wrote its row (a crash)."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.at:
            raise RuntimeError("crash")


def _csv_epochs(path):
    rows = list(csv.DictReader(path.open()))
    return [int(r["epoch"]) for r in rows], [float(r["loss"]) for r in rows]


def test_csv_logger_keeps_the_earlier_epochs_of_a_resumed_or_continued_run(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 2, 20)

    def trainer(*extra):
        model = bp.Sequential([bp.Dense(3, 2)], seed=0, dtype="float64")
        logger = bp.CSVLogger(str(tmp_path / "h.csv"))
        ckpt = bp.Checkpoint(tmp_path / "c.npz", every=2)
        return bp.Trainer(model, "cross_entropy", "sgd", seed=0, callbacks=[logger, *extra, ckpt])

    whole = trainer().fit(X, y, epochs=4)
    t = trainer(_Crash(at=2))  # dies after epoch 3 was logged; the checkpoint holds epoch 2
    with pytest.raises(RuntimeError, match="crash"):
        t.fit(X, y, epochs=4)
    assert _csv_epochs(tmp_path / "h.csv")[0] == [1, 2, 3]
    t = trainer()
    t.callbacks[-1].resume(t)
    t.fit(X, y, epochs=2)
    # epochs 1-2 kept from the first run, its epoch 3 (past the checkpoint) logged once again
    epochs, losses = _csv_epochs(tmp_path / "h.csv")
    assert epochs == [1, 2, 3, 4] and losses == pytest.approx(whole["loss"], rel=1e-12)
    t.fit(X, y, epochs=1)  # a second fit continues the file as it continues the history
    assert _csv_epochs(tmp_path / "h.csv")[0] == [1, 2, 3, 4, 5]
    trainer().fit(X, y, epochs=1)  # a fresh run starts the file over
    assert _csv_epochs(tmp_path / "h.csv")[0] == [1]
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    appending = [bp.CSVLogger(str(tmp_path / "h.csv"), append=True)]
    bp.Trainer(model, "cross_entropy", "sgd", callbacks=appending).fit(X, y, epochs=1)
    assert _csv_epochs(tmp_path / "h.csv")[0] == [1, 1]  # append=True never removes a row


@pytest.mark.parametrize(
    "name, needs", [("cosine", "total"), ("step", "step_size"), ("exponential", "gamma")]
)
def test_a_schedule_name_that_needs_arguments_says_which_and_how(name, needs):
    from backprop.estimators import MLPClassifier, NeuralNetRegressor

    X, y = np.eye(4, 3), np.array([0, 1, 0, 1])
    cls = bp.schedules.REGISTRY[name]
    message = rf"schedule '{name}' needs {needs}.*schedule=bp\.{cls.__name__}\({needs}=\.\.\.\)"
    with pytest.raises(ValueError, match=message):
        bp.Trainer(bp.Sequential([bp.Dense(3, 2)]), "cross_entropy", "sgd", schedule=name)
    mlp = MLPClassifier(schedule=name, max_iter=1)
    with pytest.raises(ValueError, match=message):
        mlp.fit(X, y)
    assert not hasattr(mlp, "model_")  # refused with the other parameters, before fitting
    with pytest.raises(ValueError, match=message):
        NeuralNetRegressor(layers=[bp.Dense(2)], schedule=name, epochs=1).fit(X, y * 1.0)
    assert bp.schedules.get(name, **{needs: 3}).__class__ is cls  # with them, the name works


def test_callbacks_that_began_are_ended_when_a_later_one_refuses_to_begin(tmp_path):
    # on_train_end came only once every on_train_begin had returned: a CSVLogger before an
    # EarlyStopping that refuses (val_loss without validation data) kept its file open, a
    # ProgressBar its bar; the callbacks that began are now ended, the others are not called.
    calls = []

    class Spy(bp.Callback):
        def on_train_begin(self, trainer):
            calls.append("begin")

        def on_train_end(self, trainer):
            calls.append("end")

    class After(bp.Callback):
        def on_train_end(self, trainer):
            calls.append("after ended without beginning")

    csv_logger = bp.CSVLogger(str(tmp_path / "log.csv"))
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        "sgd",
        epochs=1,
        callbacks=[Spy(), csv_logger, bp.EarlyStopping("val_loss"), After()],
    )
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no validation data"):
        trainer.fit(rng.normal(size=(8, 3)), rng.integers(0, 2, 8))
    assert calls == ["begin", "end"]
    assert csv_logger._file.closed


def test_csv_logger_names_a_value_that_first_appears_after_its_header(tmp_path):
    # The header is the first epoch's keys; a value logged from a later epoch on (a layer
    # unfrozen for fine-tuning starts its update_ratio column) was dropped with no word
    class LateKey(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch >= 1:
                logs["late"] = float(epoch)

    path = tmp_path / "log.csv"
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", "sgd", epochs=3, callbacks=[LateKey(), bp.CSVLogger(str(path))]
    )
    with pytest.warns(RuntimeWarning, match="late not in its header") as caught:
        trainer.fit(np.eye(2), [0, 1])
    assert sum("late" in str(w.message) for w in caught) == 1  # once, not every epoch
    assert len(list(csv.DictReader(path.open()))) == 3


class _BadRate(bp.Schedule):
    def lr_at(self, t):
        return -0.1 if t >= 1 else self.base_lr


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_a_callback_or_schedule_setting_a_bad_rate_is_refused(bad):
    # a negative rate would climb the loss, NaN would fill the weights with NaN: both silently
    class SetRate(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.lr = bad

    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), callbacks=[SetRate()], seed=0)
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        trainer.fit(np.eye(2), [0, 1], epochs=2)
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), schedule=_BadRate(), seed=0)
    with pytest.raises(ValueError, match="_BadRate.*gave lr -0.1"):
        trainer.fit(np.eye(2), [0, 1], epochs=3)
    view = bp.TrainingView(trainer)
    view.lr = 0.0  # a rate of 0 (a cosine's end) is fine
    assert trainer.optimizer.lr == 0.0


@pytest.mark.parametrize("patience", [0, 2])
def test_plateau_tolerates_patience_bad_epochs_and_reduces_at_the_next(patience):
    # as documented (and as torch's ReduceLROnPlateau): patience + 1 bad epochs in a row
    s = bp.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=patience)
    s.base_lr = 1.0
    s.observe(1.0)  # the first value is the best so far
    lrs = []
    for _ in range(2 * (patience + 1)):
        s.observe(2.0)
        lrs.append(s.lr())
    assert lrs == [1.0] * patience + [0.5] * (patience + 1) + [0.25]


def test_a_schedule_started_by_one_trainer_refuses_another():
    # a learning-rate sweep reusing one schedule object: every run after the first silently
    # took the first run's base rate (start() keeps the first one, for resuming)
    X, y = np.eye(2), [0, 1]
    schedule = bp.StepDecay(step_size=1, gamma=0.5)
    first = bp.Trainer(
        bp.Sequential([bp.Dense(2, 2)], seed=0),
        "cross_entropy",
        bp.SGD(0.1),
        schedule=schedule,
        seed=0,
    )
    first.fit(X, y, epochs=2)
    first.fit(X, y, epochs=1)  # its own trainer again: fine
    assert first.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    second = bp.Trainer(
        bp.Sequential([bp.Dense(2, 2)], seed=0),
        "cross_entropy",
        bp.SGD(0.01),
        schedule=schedule,
        seed=0,
    )
    with pytest.raises(ValueError, match="started by another Trainer.*its own schedule"):
        second.fit(X, y, epochs=1)


def test_a_plateau_started_on_one_model_refuses_another():
    # reused over two runs it gave the second the first one's base rate and reduced scale
    X, y = np.eye(2), [0, 1]
    plateau = bp.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1.0)
    model = bp.Sequential([bp.Dense(2, 2)], seed=0)
    bp.Trainer(model, "cross_entropy", bp.SGD(0.1), callbacks=[plateau], seed=0).fit(X, y, epochs=3)
    assert plateau.scale < 1
    again = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), callbacks=[plateau], seed=0)
    again.fit(X, y, epochs=1)  # the same model, continued by a new Trainer: fine
    other = bp.Sequential([bp.Dense(2, 2)], seed=1)
    trainer = bp.Trainer(other, "cross_entropy", bp.SGD(0.01), schedule=plateau, seed=0)
    with pytest.raises(ValueError, match="started on another model.*new instance"):
        trainer.fit(X, y, epochs=1)


def test_interrupted_or_diverged_runs_say_early_stopping_puts_back_its_best_weights():
    # the messages said the model keeps the weights reached so far / from before the batch,
    # but EarlyStopping's on_train_end then put back its best epoch's
    X, y = np.eye(2), [0, 1]

    class Stop(bp.Callback):
        def __init__(self, error):
            self.error = error

        def on_epoch_begin(self, trainer, epoch):
            if epoch == 3 and self.error is KeyboardInterrupt:
                raise KeyboardInterrupt
            if epoch == 3:
                trainer.model.flat_parameters[0] = np.inf  # the next loss is not finite

    for error, kind in [(KeyboardInterrupt, RuntimeWarning), (bp.TrainingDivergedError, None)]:
        model = bp.Sequential([bp.Dense(2, 2)], seed=0)
        es = bp.EarlyStopping(monitor="loss", patience=10, min_delta=10.0)  # best: epoch 1
        trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.5), callbacks=[es, Stop(error)])
        message = "EarlyStopping puts back the weights of epoch 1"
        if kind is RuntimeWarning:
            with pytest.warns(RuntimeWarning, match=message):
                trainer.fit(X, y, epochs=6)
        else:
            with pytest.raises(error, match=message):
                trainer.fit(X, y, epochs=6)
        assert np.array_equal(model.flat_parameters, es.best_params)
