"""Checkpoints: a run stopped mid-way and resumed ends bitwise equal to an uninterrupted run."""

import warnings
from contextlib import nullcontext

import numpy as np
import pytest

import backprop as bp
from backprop.checkpoint import Checkpoint
from backprop.io import ModelFileError
from backprop.landscape import TrajectoryRecorder


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1)
    return X[:240], y[:240], X[240:], y[240:]


class StopAfter(bp.Callback):
    def __init__(self, k):
        self.k = k

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch + 1 == self.k:
            trainer.stop_training = True


def _build(path, extra=(), schedule="step"):
    model = bp.Sequential(
        [bp.Dense(6, 16), bp.ReLU(), bp.Dropout(0.25), bp.BatchNorm(16), bp.Dense(16, 3)],
        seed=0,
    )
    # min_delta makes the counters matter: this run stops after epoch 8, best at epoch 5
    es = bp.EarlyStopping(patience=3, min_delta=0.02, restore_best_weights=True)
    sched = bp.StepDecay(2, 0.5) if schedule == "step" else bp.ReduceLROnPlateau(patience=0)
    ckpt = Checkpoint(path, every=1, best_path=str(path) + ".best")
    as_callback = schedule == "plateau-callback"  # ReduceLROnPlateau in callbacks=
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.Adam(0.01),
        batch_size=16,
        schedule=None if as_callback else sched,
        callbacks=[bp.GradientMonitor(), es, *([sched] if as_callback else []), *extra, ckpt],
        seed=5,
    )
    return model, trainer, es, ckpt


def _same_state(a, b):
    """Equal state dicts, arrays compared bitwise."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same_state, a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b or (a != a and b != b)  # NaN == NaN here


@pytest.mark.parametrize("schedule", ["step", "plateau", "plateau-callback"])
@pytest.mark.parametrize("stop_at", [1, 6, 7])  # the plateau reduces after epoch 7
def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path, schedule, stop_at):
    X, y, Xv, yv = _data()
    total = 8
    model_a, trainer_a, es_a, _ = _build(tmp_path / "a.npz", schedule=schedule)
    trainer_a.fit(X, y, validation_data=(Xv, yv), epochs=total)

    _, trainer_b, _, _ = _build(tmp_path / "b.npz", [StopAfter(stop_at)], schedule=schedule)
    trainer_b.fit(X, y, validation_data=(Xv, yv), epochs=total)
    assert trainer_b.epoch == stop_at

    model_c, trainer_c, es_c, ckpt = _build(tmp_path / "b.npz", schedule=schedule)
    ckpt.resume(trainer_c)
    assert trainer_c.epoch == stop_at
    trainer_c.fit(X, y, validation_data=(Xv, yv), epochs=total - trainer_c.epoch)

    assert np.array_equal(model_a.flat_parameters, model_c.flat_parameters)
    for key, value in model_a.buffers().items():
        assert np.array_equal(value, model_c.buffers()[key])
    assert trainer_a.epoch == trainer_c.epoch and trainer_a.step_count == trainer_c.step_count
    assert trainer_a.history["val_loss"] == trainer_c.history["val_loss"]
    assert trainer_a.history["grad_norm/0.W"] == trainer_c.history["grad_norm/0.W"]
    assert _same_state(es_a.state_dict(), es_c.state_dict())
    state_a, state_c = trainer_a.state_dict(), trainer_c.state_dict()
    del state_a["history"]["time"], state_c["history"]["time"]  # seconds differ, nothing else
    assert _same_state(state_a, state_c)  # every callback's state too
    if schedule == "step":
        assert es_a.stopped_epoch == 7 and es_a.best_epoch == 4
    else:  # the plateau reduced the rate before the stop, and the resumed run kept it
        assert trainer_a.history["lr"] == trainer_c.history["lr"]
        assert min(trainer_a.history["lr"]) < 0.01
    assert trainer_a.optimizer.lr == trainer_c.optimizer.lr


def test_checkpoint_holds_every_piece_of_state(tmp_path):
    X, y, Xv, yv = _data()
    model, trainer, es, ckpt = _build(tmp_path / "c.npz")
    trainer.fit(X, y, validation_data=(Xv, yv), epochs=3)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        names = set(f.files)
    assert {"model/0.W", "model/3.running_mean", "model/3.gamma"} <= names
    assert "state/optimizer/state.m" in names and "state/optimizer/state.v" in names
    assert "state/callbacks/1/state/best_params" in names  # EarlyStopping's, by its place
    header = bp.load_checkpoint(tmp_path / "c.npz", _build(tmp_path / "x.npz")[1])
    assert header["trainer"]["epoch"] == 3
    assert header["trainer"]["shuffle_rng"]["bit_generator"] == "PCG64"
    assert header["model_rng"] == model.rng.bit_generator.state
    assert len(header["trainer"]["history"]["loss"]) == 3
    assert (tmp_path / "c.npz.best").is_file()


def test_resume_into_a_different_model_is_refused(tmp_path):
    X, y, Xv, yv = _data()
    _, trainer, _, _ = _build(tmp_path / "c.npz")
    trainer.fit(X, y, validation_data=(Xv, yv), epochs=1)
    other = bp.Sequential([bp.Dense(6, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
    other_trainer = bp.Trainer(other, "cross_entropy", "adam")
    with pytest.raises(ModelFileError, match="do not match"):
        bp.load_checkpoint(tmp_path / "c.npz", other_trainer)
    model_file = tmp_path / "m.npz"
    bp.save(other, model_file)
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        bp.load_checkpoint(model_file, other_trainer)


def test_resume_with_a_validation_split_is_bitwise_equal(tmp_path):
    """The split is drawn once and saved: the resumed run validates on the same rows."""
    X, y, _, _ = _data()
    model_a, trainer_a, _, _ = _build(tmp_path / "a.npz")
    trainer_a.fit(X, y, validation_split=0.2, epochs=5)
    _, trainer_b, _, _ = _build(tmp_path / "b.npz", [StopAfter(2)])
    trainer_b.fit(X, y, validation_split=0.2, epochs=5)
    model_c, trainer_c, _, ckpt = _build(tmp_path / "b.npz")
    ckpt.resume(trainer_c)
    trainer_c.fit(X, y, validation_split=0.2, epochs=5 - trainer_c.epoch)
    assert np.array_equal(model_a.flat_parameters, model_c.flat_parameters)
    assert trainer_a.history["val_loss"] == trainer_c.history["val_loss"]


def test_a_checkpoint_saved_before_the_first_fit_resumes_as_a_fresh_run(tmp_path):
    """State saved before training began (ReduceLROnPlateau's base_lr None, no weight snapshot
    yet, no trajectory) is applied after on_train_begin: it used to wipe what that had just set,
    so the plateau failed with a TypeError, the snapshot with 'added after N updates', and the
    trajectory lost its starting point."""
    X, y, _, _ = _data()

    def build():
        model = bp.Sequential([bp.Dense(6, 8), bp.ReLU(), bp.Dropout(0.2), bp.Dense(8, 3)], seed=0)
        snap = bp.pruning.WeightSnapshot(0)
        plateau = bp.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5, min_delta=1.0)
        path = TrajectoryRecorder()
        trainer = bp.Trainer(
            model,
            "cross_entropy",
            bp.Adam(0.01),
            batch_size=32,
            callbacks=[snap, plateau, path],
            seed=2,
        )
        return model, trainer, snap

    model_a, trainer_a, snap_a = build()
    trainer_a.fit(X, y, epochs=4)
    bp.save_checkpoint(tmp_path / "start.npz", build()[1])
    model_c, trainer_c, snap_c = build()
    bp.load_checkpoint(tmp_path / "start.npz", trainer_c)
    trainer_c.fit(X, y, epochs=4)
    assert np.array_equal(model_a.flat_parameters, model_c.flat_parameters)
    assert np.array_equal(snap_a.params, snap_c.params)
    assert trainer_a.history["lr"] == trainer_c.history["lr"]
    assert min(trainer_a.history["lr"]) < 0.01  # the plateau did reduce the rate
    path_a, path_c = trainer_a.callbacks[2], trainer_c.callbacks[2]
    assert path_a.epochs == path_c.epochs == [0, 1, 2, 3, 4]  # the start was lost too
    assert all(map(np.array_equal, path_a.snapshots, path_c.snapshots))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_resuming_lbfgs_warns_that_it_is_not_bitwise(tmp_path, optimizer):
    """L-BFGS's curvature pairs live inside SciPy's run and no checkpoint holds them: its resumed
    run silently ended far from the uninterrupted one (weights differing by 0.4 to 5 in the
    probes, CNN, LSTM and attention); now loading says so. Other optimizers resume silently."""
    X, y, _, _ = _data()

    def build():
        model = bp.Sequential([bp.Dense(6, 8), bp.Tanh(), bp.Dense(8, 3)], seed=0)
        return bp.Trainer(model, "cross_entropy", optimizer, mode="batch", seed=0)

    trainer = build()
    trainer.fit(X, y, epochs=3)
    bp.save_checkpoint(tmp_path / "c.npz", trainer)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        bp.load_checkpoint(tmp_path / "c.npz", build())
    said = [str(w.message) for w in seen if "curvature pairs" in str(w.message)]
    assert len(said) == (optimizer == "lbfgs")
    if said:
        assert "c.npz: L-BFGS" in said[0] and "not end bitwise equal" in said[0]


@pytest.mark.parametrize(
    "saved, resumed, message",
    [
        ((bp.Adam, None), (bp.SGD, None), r"optimizer.type: expected \['SGD'\], got 'Adam'"),
        ((bp.Adam, None), (bp.AdamW, None), r"optimizer.type: expected \['AdamW'\], got 'Adam'"),
        ((bp.Adam, "step"), (bp.Adam, None), "the run had a schedule, this trainer has none"),
        ((bp.Adam, None), (bp.Adam, "step"), "the run had no schedule, this trainer has one"),
        ((bp.Adam, "cosine"), (bp.Adam, "step"), r"schedule.type: expected \['StepDecay'\]"),
    ],
)
def test_resuming_with_another_optimizer_or_schedule_is_refused(tmp_path, saved, resumed, message):
    """Adam's moments were loaded into an SGD, RMSprop or AdamW as if they were its own, and a
    schedule's state was dropped (or a new schedule started mid-run), all silently."""
    X, y, _, _ = _data()
    schedules = {
        None: lambda: None,
        "step": lambda: bp.StepDecay(1, 0.5),
        "cosine": lambda: bp.CosineDecay(9),
    }

    def build(optimizer, schedule):
        model = bp.Sequential([bp.Dense(6, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
        return bp.Trainer(model, "cross_entropy", optimizer(0.01), schedule=schedules[schedule]())

    trainer = build(*saved)
    trainer.fit(X, y, epochs=2)
    bp.save_checkpoint(tmp_path / "c.npz", trainer)
    other = build(*resumed)
    with pytest.raises(ModelFileError, match=f"c.npz: .*{message}"):
        bp.load_checkpoint(tmp_path / "c.npz", other)
    assert other.epoch == 0 and other.optimizer.state == {}
    bp.load_checkpoint(tmp_path / "c.npz", build(*saved))  # the same trainer resumes
    with pytest.raises(ValueError, match="the saved state is Adam's, this optimizer is SGD"):
        bp.SGD(0.01).load_state_dict(bp.Adam(0.01).state_dict())


def test_a_checkpoint_without_optimizer_and_schedule_types_still_resumes(tmp_path):
    """Checkpoints written before the types were kept have no 'type' entries: they load."""
    from backprop.io import read_archive, write_archive

    X, y, Xv, yv = _data()
    _, trainer, _, _ = _build(tmp_path / "a.npz")
    trainer.fit(X, y, validation_data=(Xv, yv), epochs=2)
    header, arrays = read_archive(tmp_path / "a.npz")
    del header["trainer"]["optimizer"]["type"], header["trainer"]["schedule"]["type"]
    kept = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    write_archive(tmp_path / "old.npz", kept, arrays)
    _, resumed, _, _ = _build(tmp_path / "b.npz")
    bp.load_checkpoint(tmp_path / "old.npz", resumed)
    assert resumed.epoch == 2 and resumed.optimizer.iterations == trainer.optimizer.iterations


def test_a_trainer_refusing_another_optimizers_state_is_left_unchanged():
    """Trainer.load_state_dict checks the optimizer's and schedule's types before it changes
    anything: the refusal came from the optimizer, after the epoch, step count and random
    streams had already been overwritten."""
    X, y, _, _ = _data()

    def build(optimizer, schedule=None):
        model = bp.Sequential([bp.Dense(6, 4), bp.Tanh(), bp.Dense(4, 3)], seed=0)
        return bp.Trainer(model, "cross_entropy", optimizer, schedule=schedule, seed=1)

    adam = build(bp.Adam(0.01), bp.StepDecay(1, 0.5))
    adam.fit(X, y, epochs=2)
    for other in (
        build(bp.SGD(0.01), bp.StepDecay(1, 0.5)),
        build(bp.Adam(0.01), bp.CosineDecay(5)),
    ):
        before = other.state_dict()
        with pytest.raises(ValueError, match=r"the saved .*state is (Adam|StepDecay)'s"):
            other.load_state_dict(adam.state_dict())
        after = other.state_dict()
        del before["history"], after["history"]
        assert _same_state(before, after)


def test_forged_best_weights_of_the_wrong_shape_are_refused_on_load(tmp_path):
    """EarlyStopping's saved best weights were checked against nothing: a (1,) array loaded and
    was broadcast over every weight when training ended (all weights 0.5), another shape failed
    only then, after the whole run."""
    from backprop.io import read_archive, write_archive

    X, y, Xv, yv = _data()
    _, trainer, _, _ = _build(tmp_path / "a.npz")
    trainer.fit(X, y, validation_data=(Xv, yv), epochs=2)
    header, arrays = read_archive(tmp_path / "a.npz")
    kept = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    best = "state/callbacks/1/state/best_params"
    for name, value in [(best, np.full(1, 0.5, np.float32)), (best, np.zeros(5, np.float32))]:
        write_archive(tmp_path / "forged.npz", kept, {**arrays, name: value})
        with pytest.raises(ModelFileError, match=r"forged.npz: arrays do not match.*best_params"):
            bp.load_checkpoint(tmp_path / "forged.npz", _build(tmp_path / "b.npz")[1])
    buffers = kept["trainer"]["callbacks"][1]["state"]["best_buffers"]
    del buffers["3.running_var"]
    write_archive(tmp_path / "names.npz", kept, arrays)
    with pytest.raises(
        ModelFileError, match=r"names.npz: .*keeps best buffers \['3.running_mean'\]"
    ):
        bp.load_checkpoint(tmp_path / "names.npz", _build(tmp_path / "b.npz")[1])


class UnfreezeAt(bp.Callback):
    """Layer 0 frozen until ``epoch`` (gradual unfreezing)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        trainer.model.layers[0].trainable = epoch >= self.epoch


def test_adams_per_entry_step_counts_resume_bitwise_and_forged_ones_are_refused(tmp_path):
    from backprop.checkpoint import save_checkpoint
    from backprop.io import read_archive, write_archive

    X, y, _, _ = _data()

    def build():
        model = bp.Sequential([bp.Dense(6, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
        trainer = bp.Trainer(
            model, "cross_entropy", bp.Adam(0.01), batch_size=32, callbacks=[UnfreezeAt(2)], seed=1
        )
        return model, trainer

    model_a, trainer_a = build()
    trainer_a.fit(X, y, epochs=5)
    _, trainer_b = build()
    trainer_b.fit(X, y, epochs=3)
    save_checkpoint(tmp_path / "b.npz", trainer_b)
    model_c, trainer_c = build()
    bp.load_checkpoint(tmp_path / "b.npz", trainer_c)
    trainer_c.fit(X, y, epochs=2)
    assert np.array_equal(model_a.flat_parameters, model_c.flat_parameters)
    # layer 0 (its W, then its b after the other weights) took 2 epochs fewer steps
    assert [t for _, _, t in trainer_a.optimizer.state_dict()["step_counts"]] == [24, 40, 24, 40]

    header, arrays = read_archive(tmp_path / "b.npz")
    kept = {k: v for k, v in header.items() if k not in ("format", "version", "arrays")}
    kept["trainer"]["optimizer"]["step_counts"] = [[0, 5, 10**6]]
    write_archive(tmp_path / "forged.npz", kept, arrays)
    with pytest.raises(ModelFileError, match="forged.npz: .*step_counts"):
        bp.load_checkpoint(tmp_path / "forged.npz", build()[1])


def test_a_best_checkpoint_whose_monitor_never_appears_is_an_error(tmp_path):
    # without validation data (or with a misspelt key) best_path was silently never written
    X, y, Xv, yv = _data()
    model = bp.Sequential([bp.Dense(6, 3)], seed=0)
    best = tmp_path / "best.npz"
    ckpt = Checkpoint(tmp_path / "c.npz", best_path=best)
    trainer = bp.Trainer(model, "cross_entropy", "adam", callbacks=[ckpt], seed=0)
    with pytest.raises(ValueError, match="Checkpoint monitors 'val_loss' but fit got no valid"):
        trainer.fit(X, y, epochs=1)
    ckpt = Checkpoint(tmp_path / "c.npz", best_path=best, monitor="val_los")
    trainer = bp.Trainer(model, "cross_entropy", "adam", callbacks=[ckpt], seed=0)
    with pytest.raises(KeyError, match="Checkpoint monitors 'val_los', which is not in"):
        trainer.fit(X, y, validation_data=(Xv, yv), epochs=1)
    assert not best.exists()
    trainer = bp.Trainer(model, "cross_entropy", "adam", callbacks=[Checkpoint(best)], seed=0)
    trainer.fit(X, y, epochs=1)  # no best_path: the monitor is not used, nothing to check
    assert best.exists()


class RaiseAt(bp.Callback):
    """Raise ``error`` after batch ``batch`` of epoch ``epoch`` (a Ctrl-C, a failing hook)."""

    def __init__(self, epoch, batch, error=KeyboardInterrupt):
        self.at, self.error, self.epoch = (epoch, batch), error, None

    def on_epoch_begin(self, trainer, epoch):
        self.epoch = epoch

    def on_batch_end(self, trainer, batch, logs):
        if (self.epoch, batch) == self.at:
            raise self.error("stop")


class RaiseAtEpochEnd(bp.Callback):
    """Ctrl-C in the end hooks of epoch ``epoch`` (during a slow save, say), before History."""

    def __init__(self, epoch, error=KeyboardInterrupt):
        self.at, self.error = epoch, error

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.at:
            raise self.error("stop")


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_a_checkpoint_of_a_trainer_stopped_inside_an_epoch_is_refused(tmp_path, error):
    """Ctrl-C (or an error) inside epoch 3 leaves weights, optimizer moments and the shuffle
    stream part-way through it while trainer.epoch says 2: save_checkpoint wrote that silently,
    and the resumed run repeated epoch 3 with another batch order and 4 extra steps. Such a
    save is now refused, as is one after Ctrl-C in an epoch's end hooks (the epoch counted,
    its history row and later callbacks' states not); a completed epoch makes it savable."""
    X, y, _, _ = _data()
    model = bp.Sequential([bp.Dense(6, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", batch_size=16, seed=0)
    trainer.callbacks = [RaiseAt(2, 3, error)]
    with (
        warnings.catch_warnings(),
        pytest.raises(error) if error is RuntimeError else nullcontext(),
    ):
        warnings.simplefilter("ignore")
        trainer.fit(X, y, epochs=5)
    assert trainer.epoch == 2 and trainer.step_count == 2 * 15 + 4
    with pytest.raises(ValueError, match="inside epoch 3"):
        bp.save_checkpoint(tmp_path / "c.npz", trainer)
    assert not (tmp_path / "c.npz").exists()
    trainer.callbacks = [RaiseAtEpochEnd(3, error)]  # epoch 4 counted, not yet in the history
    with (
        warnings.catch_warnings(),
        pytest.raises(error) if error is RuntimeError else nullcontext(),
    ):
        warnings.simplefilter("ignore")
        trainer.fit(X, y, epochs=5)
    assert trainer.epoch == 4 and len(trainer.history["loss"]) == 3
    with pytest.raises(ValueError, match="inside epoch 4 or its end hooks"):
        bp.save_checkpoint(tmp_path / "c.npz", trainer)
    trainer.callbacks = []
    trainer.fit(X, y, epochs=1)
    bp.save_checkpoint(tmp_path / "c.npz", trainer)  # at an epoch's end again


def test_a_checkpoint_saved_from_a_batch_hook_is_refused(tmp_path):
    """Only an epoch's end is a resumable point: a save from on_batch_end is refused too."""
    X, y, _, _ = _data()

    class SaveEveryBatch(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            bp.save_checkpoint(tmp_path / "c.npz", trainer)

    model = bp.Sequential([bp.Dense(6, 3)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "sgd", callbacks=[SaveEveryBatch()])
    with pytest.raises(ValueError, match="inside epoch 1"):
        trainer.fit(X, y, epochs=1)


@pytest.mark.parametrize(
    "after", [lambda: bp.EarlyStopping(monitor="loss"), bp.GradientMonitor, bp.ReduceLROnPlateau]
)
def test_a_callback_with_state_after_the_checkpoint_is_refused(tmp_path, after):
    """The docs say Checkpoint must come last, but nothing checked it: with EarlyStopping or
    GradientMonitor after it, each file held their state (and the history's grad_norm/* of
    the epoch, NaN) one epoch behind, and the resumed run silently differed. A callback
    with state after a Checkpoint is now refused; stateless ones (ProgressBar) may follow."""
    model = bp.Sequential([bp.Dense(6, 3)], seed=0)
    ckpt = Checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"comes after Checkpoint.*put Checkpoint last"):
        bp.Trainer(model, "cross_entropy", "adam", callbacks=[ckpt, after()])
    trainer = bp.Trainer(model, "cross_entropy", "adam", callbacks=[after(), ckpt])
    trainer.callbacks = [ckpt, after()]  # (estimators set callbacks later): refused by fit
    X, y, _, _ = _data()
    with pytest.raises(ValueError, match="comes after Checkpoint"):
        trainer.fit(X, y, epochs=1)
    bp.Trainer(model, "cross_entropy", "adam", callbacks=[ckpt, bp.ProgressBar(enabled=False)])


@pytest.mark.parametrize(
    "saved, resumed",
    [
        (lambda: bp.EarlyStopping(), lambda: bp.EarlyStopping(monitor="val_accuracy")),
        (lambda: bp.EarlyStopping(), lambda: bp.EarlyStopping(mode="max")),
        (lambda: bp.ReduceLROnPlateau(), lambda: bp.ReduceLROnPlateau(monitor="loss")),
    ],
)
def test_resuming_with_another_monitor_is_refused(tmp_path, saved, resumed):
    """EarlyStopping's and the plateau's states hold a best value and counters of the
    quantity they watched; resumed with another monitor (--resume --set
    early_stopping.monitor=val_accuracy) they compared accuracies with the saved best loss,
    and restored weights chosen by it, without a word."""
    X, y, Xv, yv = _data()

    def trainer(callback):
        model = bp.Sequential([bp.Dense(6, 3)], seed=0)
        return bp.Trainer(model, "cross_entropy", "adam", callbacks=[callback], seed=0)

    first = trainer(saved())
    first.fit(X, y, validation_data=(Xv, yv), epochs=2)
    bp.save_checkpoint(tmp_path / "c.npz", first)
    with pytest.raises(ModelFileError, match="watched 'val_loss' \\(min\\), this one watches"):
        bp.load_checkpoint(tmp_path / "c.npz", trainer(resumed()))
    bp.load_checkpoint(tmp_path / "c.npz", trainer(saved()))  # the same monitor resumes
