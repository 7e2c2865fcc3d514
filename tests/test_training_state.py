"""The Trainer's state in the open (issue 12, sections 5-7) and the training-side items of the
second reliability round (issue 17: 1-4, 8-13, 17, 21). Each test names its item."""

import ast
import pathlib
import warnings

import numpy as np
import pytest
from sklearn.metrics import log_loss

import backprop as bp
from backprop import checks
from backprop.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def _blobs(n=60, k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d)) + y[:, None]
    return X, y


def _mlp(d=4, k=3, hidden=8, extra=(), dtype="float64"):
    return bp.Sequential(
        [bp.Dense(d, hidden), *extra, bp.ReLU(), bp.Dense(hidden, k)], dtype=dtype, seed=0
    )


class Spy(bp.Callback):
    """Records what a callback is given."""

    def __init__(self):
        self.views, self.batch_logs, self.lrs, self.orders = [], [], [], []

    def on_train_begin(self, trainer):
        self.views.append(trainer)

    def on_batch_end(self, trainer, batch, logs):
        self.batch_logs.append(dict(logs))

    def on_epoch_end(self, trainer, epoch, logs):
        self.lrs.append(trainer.lr)


# -- issue 17.1: accuracy is decided by the loss -----------------------------------------------
def _fixed_model(W):
    W = np.asarray(W, dtype=np.float64)
    model = bp.Sequential([bp.Dense(W.shape[0], W.shape[1])], dtype="float64", seed=0)
    model.layers[0].params["W"][...] = W
    model.layers[0].params["b"][...] = 0
    return model


def test_accuracy_of_bce_with_one_hot_looking_rows_uses_the_threshold():
    # logits (2, 1): both labels "on" for BCE; argmax would say class 0, which matches [1, 0]
    model = _fixed_model([[2.0, 1.0]])
    X, Y = np.ones((1, 1)), np.array([[1.0, 0.0]])  # a multi-label row that sums to 1
    bce = bp.Trainer(model, bp.BinaryCrossEntropy(), "sgd")
    assert bce.evaluate(X, Y)["accuracy"] == 0.0  # label 2 predicted on, truly off
    softmax = bp.Trainer(model, bp.SoftmaxCrossEntropy(), "sgd")
    assert softmax.evaluate(X, Y)["accuracy"] == 1.0


def test_accuracy_of_soft_targets_not_summing_to_exactly_one_uses_argmax():
    model = _fixed_model([[3.0, 1.0, -1.0]])
    Y = np.array([[0.45, 0.35, 0.2 + 1e-15]])  # sums to 1 + 1e-15: softmax CE's argmax is 0
    trainer = bp.Trainer(model, bp.SoftmaxCrossEntropy(), "sgd")
    assert trainer.evaluate(np.ones((1, 1)), Y)["accuracy"] == 1.0


def test_accuracy_with_a_loss_that_does_not_classify_is_refused():
    with pytest.raises(ValueError, match="accuracy metric needs a classification loss"):
        bp.Trainer(_mlp(), "mse", "sgd", metrics=["accuracy"])


# -- issue 17.2 and 17.3: the validation split ---------------------------------------------------
def _order_spy(seen):
    def sampler(idx):
        seen.append(np.sort(idx))
        return idx

    return sampler


def test_validation_split_is_drawn_once_per_trainer_and_kept_in_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)  # pure noise labels
    seen = []
    trainer = bp.Trainer(
        _mlp(), "cross_entropy", "adam", epochs=1, seed=0, sampler=_order_spy(seen)
    )
    for _ in range(3):
        trainer.fit(X, y, validation_split=0.25)
    assert len(seen) == 3 and all(np.array_equal(s, seen[0]) for s in seen)
    assert len(seen[0]) == 30  # the 10 validation rows never trained
    save_checkpoint(tmp_path / "c.npz", trainer)
    again = []
    other = bp.Trainer(
        _mlp(), "cross_entropy", "adam", epochs=1, seed=99, sampler=_order_spy(again)
    )
    load_checkpoint(tmp_path / "c.npz", other)
    other.fit(X, y, validation_split=0.25)
    np.testing.assert_array_equal(again[0], seen[0])  # a resumed run validates on the same rows
    with pytest.raises(ValueError, match="drew its validation split for 40 samples"):
        trainer.fit(X[:30], y[:30], validation_split=0.25)


def test_a_sampler_that_returns_other_rows_than_the_training_rows_is_refused(rng):
    # A sampler returning positions (permutation(len(idx))) instead of the indices it is given
    # trained on 4 of the 5 validation rows of this split, silently.
    X, y = rng.normal(size=(20, 6, 6, 1)), rng.integers(0, 3, 20)
    model = bp.Sequential(
        [bp.Conv2D(2, 3), bp.GlobalAvgPool2D(), bp.Dense(3)], input_shape=(6, 6, 1), seed=0
    )
    for sampler, match in [
        (lambda idx: rng.permutation(len(idx)), "returned index .* not one of them"),
        (lambda idx: np.concatenate([idx[:1], idx[:-1]]), "returned an index twice"),
        (lambda idx: idx.astype(float), "integer indices"),
    ]:
        trainer = bp.Trainer(model, "cross_entropy", "sgd", seed=0, sampler=sampler)
        before = model.flat_parameters.copy()
        with pytest.raises(ValueError, match=match):
            trainer.fit(X, y, validation_split=0.25, epochs=1)
        assert np.array_equal(model.flat_parameters, before)
    trainer = bp.Trainer(model, "cross_entropy", "sgd", seed=0, sampler=lambda idx: idx[::-1])
    trainer.fit(X, y, validation_split=0.25, epochs=1)  # a permutation of them is fine


def test_an_empty_stratified_split_is_a_clear_error():
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 10  # 10 classes x 4
    trainer = bp.Trainer(_mlp(k=10), "cross_entropy", "adam", epochs=1, seed=0)
    with pytest.raises(ValueError, match="empty validation set"):
        trainer.fit(X, y, validation_split=0.1)


# -- issue 17.4 and 12.5: penalties in one place --------------------------------------------------
@pytest.mark.parametrize("scale", ["constant", "per_sample"])
@pytest.mark.parametrize("weighted", [False, True])
def test_training_loss_val_loss_and_evaluate_agree_under_every_penalty_scale(scale, weighted):
    X, y = _blobs(30)
    w = np.linspace(0.5, 2.0, 30) if weighted else None
    trainer = bp.Trainer(
        _mlp(), "cross_entropy", bp.SGD(1e-12), mode="batch", l1=0.3, l2=0.7, penalty_scale=scale
    )
    loss, _ = trainer.loss_and_gradients(X, y, w)  # a fresh Trainer: public and usable
    assert trainer.evaluate(X, y, w)["loss"] == pytest.approx(loss, rel=1e-12)
    h = trainer.fit(X, y, sample_weight=w, validation_data=(X, y, w), epochs=1)
    assert h["val_loss"][0] == pytest.approx(h["loss"][0], rel=1e-9)  # lr ~ 0: same weights


def test_train_step_works_on_a_fresh_trainer():
    X, y = _blobs(10)
    model = _mlp()
    before = model.flat_parameters.copy()
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), l2=0.1, clip_norm=1.0)
    loss, out, norm = trainer.train_step(X, y)
    assert np.isfinite(loss) and out.shape == (10, 3) and norm > 0 and trainer.step_count == 1
    assert not np.array_equal(model.flat_parameters, before)
    model.layers[0].trainable = False  # frozen after construction: the next step sees it
    frozen = model.layers[0].params["W"].copy()
    trainer.train_step(X, y)
    np.testing.assert_array_equal(model.layers[0].params["W"], frozen)


# -- issue 12.5: L-BFGS inside the Trainer's epoch loop -----------------------------------------
def test_lbfgs_runs_the_same_hooks_as_any_optimizer():
    X, y = _blobs(60)
    spy, monitor = Spy(), bp.GradientMonitor()
    trainer = bp.Trainer(_mlp(), "cross_entropy", "lbfgs", epochs=5, callbacks=[spy, monitor])
    h = trainer.fit(X, y)
    assert len(h["loss"]) == 5 and len(spy.batch_logs) == 5 and trainer.step_count == 5
    assert all(b["batch_size"] == 60 for b in spy.batch_logs)
    assert all(g > 0 for g in h["grad_norm"]) and "grad_norm/0.W" in h
    assert h["loss"] == sorted(h["loss"], reverse=True)  # L-BFGS descends
    # the logged gradient norm is the gradient at the point reached
    trainer.loss_and_gradients(X, y)
    assert h["grad_norm"][-1] == pytest.approx(np.linalg.norm(trainer.model.flat_gradients))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip_norm": 1.0}, "clip_norm cannot apply to L-BFGS"),
        ({"clip_value": 1.0}, "clip_value cannot apply to L-BFGS"),
        ({"schedule": "cosine"}, "schedules do not apply to L-BFGS"),
        ({"callbacks": [bp.ReduceLROnPlateau(monitor="loss")]}, "schedules do not apply"),
    ],
)
def test_lbfgs_refuses_options_that_cannot_apply(kwargs, match):
    if kwargs.get("schedule") == "cosine":
        kwargs = {"schedule": bp.CosineDecay(total=5)}
    with pytest.raises(ValueError, match=match):
        bp.Trainer(_mlp(), "cross_entropy", "lbfgs", **kwargs)


# -- issue 17.13: L-BFGS with Dropout or BatchNorm ----------------------------------------------
def test_lbfgs_refuses_dropout_and_warns_about_batchnorm():
    X, y = _blobs(30)
    with pytest.raises(ValueError, match="L-BFGS cannot train a model with Dropout"):
        bp.Trainer(_mlp(extra=[bp.Dropout(0.5)]), "cross_entropy", "lbfgs")
    trainer = bp.Trainer(_mlp(extra=[bp.BatchNorm(8)]), "cross_entropy", "lbfgs", epochs=2)
    with pytest.warns(RuntimeWarning, match="L-BFGS with BatchNorm"):
        trainer.fit(X, y)
    est = bp.MLPClassifier((8,), solver="lbfgs", dropout=0.3, max_iter=3)
    with pytest.raises(ValueError, match="Dropout"):
        est.fit(X, y)


def test_lbfgs_refuses_random_shifts_as_it_refuses_dropout(rng):
    # RandomShift2D draws new shifts at every loss evaluation, as Dropout draws masks: on that
    # noisy objective L-BFGS stopped after 5 of 50 iterations at loss 1.40 (5.7e-6 without
    # the shifts), silently. A shift of 0 is the identity and stays allowed.
    def cnn(shift):
        layers = [bp.RandomShift2D(shift), bp.Conv2D(2, 3), bp.Flatten(), bp.Dense(3)]
        return bp.Sequential(layers, input_shape=(5, 5, 1))

    with pytest.raises(ValueError, match=r"RandomShift2D\(max_shift=1\)"):
        bp.Trainer(cnn(1), "cross_entropy", "lbfgs")
    nested = bp.Sequential(
        [bp.Conv2D(1, 1), bp.Residual([bp.RandomShift2D(2)]), bp.Flatten(), bp.Dense(3)],
        input_shape=(5, 5, 1),
    )
    with pytest.raises(ValueError, match="random shifts"):
        bp.Trainer(nested, "cross_entropy", "lbfgs")
    trainer = bp.Trainer(cnn(0), "cross_entropy", "lbfgs", epochs=2)
    trainer.fit(rng.normal(size=(6, 5, 5, 1)), rng.integers(0, 3, 6))


# -- issue 12.6: callbacks get a narrow view -----------------------------------------------------
def test_callbacks_get_a_narrow_view_with_batch_sizes_in_the_logs():
    X, y = _blobs(50)
    spy = Spy()
    trainer = bp.Trainer(
        _mlp(), "cross_entropy", bp.SGD(0.1), batch_size=20, epochs=1, callbacks=[spy]
    )
    trainer.fit(X, y)
    view = spy.views[0]
    assert isinstance(view, bp.TrainingView) and view.model is trainer.model
    assert view.epoch == 1 and view.step == 3 and view.lr == 0.1 and view.steps_per_epoch == 3
    assert [b["batch_size"] for b in spy.batch_logs] == [20, 20, 10]
    with pytest.raises(AttributeError, match="no attribute 'optimizer'"):
        view.optimizer  # noqa: B018
    with pytest.raises(AttributeError, match="may set only"):
        view.epoch = 3
    view.lr = 0.5  # the documented way for a callback to steer the rate
    assert trainer.optimizer.lr == 0.5


class Counter(bp.Callback):
    """A user's stateful callback, of a type the checkpoint code has never heard of."""

    def __init__(self):
        self.seen = 0
        self.trace = np.zeros(0)

    def on_train_begin(self, trainer):
        self.seen, self.trace = 0, np.zeros(0)  # a fresh run starts from zero

    def on_epoch_end(self, trainer, epoch, logs):
        self.seen += 1
        self.trace = np.append(self.trace, logs["loss"])

    def state_dict(self):
        return {"seen": self.seen, "trace": self.trace.copy()}

    def load_state_dict(self, state):
        self.seen, self.trace = int(state["seen"]), np.array(state["trace"])


def test_checkpoints_save_any_callbacks_state_without_knowing_its_type(tmp_path):
    X, y = _blobs(40)

    def build():
        counter = Counter()
        ckpt = Checkpoint(tmp_path / "c.npz")
        return (
            counter,
            ckpt,
            bp.Trainer(
                _mlp(), "cross_entropy", "adam", epochs=3, seed=0, callbacks=[counter, ckpt]
            ),
        )

    full, _, trainer = build()
    trainer.fit(X, y, epochs=5)
    counter, _, first = build()
    first.fit(X, y, epochs=3)
    resumed, ckpt, second = build()
    ckpt.resume(second)
    second.fit(X, y, epochs=2)
    assert resumed.seen == 5 and np.array_equal(resumed.trace, full.trace)


def test_early_stopping_state_round_trips_and_its_best_weights_are_public():
    X, y = _blobs(40)
    es = bp.EarlyStopping(monitor="loss", patience=50)
    trainer = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=3, callbacks=[es])
    trainer.fit(X, y)
    state = es.state_dict()
    assert state["best_params"].shape == (trainer.model.n_parameters,)
    other = bp.EarlyStopping(monitor="loss")
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.best_params, es.best_params)
    assert other.best == es.best and other.best_epoch == es.best_epoch


# -- issue 17.8: ReduceLROnPlateau is never silently inert ---------------------------------------
def test_plateau_as_an_estimator_schedule_reduces_the_rate():
    X, y = _blobs(60)
    spy = Spy()
    plateau = bp.ReduceLROnPlateau(monitor="val_loss", patience=0, min_delta=10.0)
    est = bp.MLPClassifier(
        (8,),
        solver="sgd",
        learning_rate_init=0.1,
        schedule=plateau,
        max_iter=4,
        early_stopping=True,
        n_iter_no_change=100,
        callbacks=[spy],
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    # no epoch improves by 10: the first sets the best, the next three each divide by 10
    assert spy.lrs == pytest.approx([0.1, 0.01, 0.001, 0.0001])
    assert plateau.scale == 1.0 and plateau.best is None  # the constructor's object is untouched
    with pytest.raises(ValueError, match="no validation data"):
        est.set_params(early_stopping=False).fit(X, y)


def test_plateau_watching_a_missing_key_is_an_error():
    X, y = _blobs(30)
    plateau = bp.ReduceLROnPlateau(monitor="val_acc")
    trainer = bp.Trainer(_mlp(), "cross_entropy", "sgd", epochs=2, callbacks=[plateau])
    with pytest.raises(KeyError, match="monitors 'val_acc', which is not in the epoch logs"):
        trainer.fit(X, y, validation_data=(X, y))


def test_plateau_beside_another_schedule_is_refused():
    with pytest.raises(ValueError, match="cannot share a run"):
        bp.Trainer(
            _mlp(),
            "cross_entropy",
            "sgd",
            schedule=bp.StepDecay(2),
            callbacks=[bp.ReduceLROnPlateau()],
        )
    trainer = bp.Trainer(_mlp(), "cross_entropy", "sgd", schedule=bp.StepDecay(2))
    trainer.callbacks = [bp.ReduceLROnPlateau(monitor="loss")]  # set later: refused at fit
    with pytest.raises(ValueError, match="cannot share a run"):
        trainer.fit(*_blobs(30))


# -- issue 17.9: fresh estimator fits start fresh schedules --------------------------------------
def test_a_fresh_fit_restarts_the_schedule_and_leaves_the_constructor_object_alone():
    X, y = _blobs(60)
    spy = Spy()
    decay = bp.ExponentialDecay(gamma=0.5)
    est = bp.MLPClassifier(
        (8,),
        solver="sgd",
        learning_rate_init=0.1,
        schedule=decay,
        max_iter=3,
        callbacks=[spy],
        random_state=0,
        n_iter_no_change=100,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        assert decay.base_lr is None  # never started: fit does not mutate its parameters
        spy.lrs.clear()
        est.set_params(learning_rate_init=0.4).fit(X, y)
    assert spy.lrs == pytest.approx([0.4, 0.2, 0.1])


# -- issue 17.10: class_weight="balanced" with validation data -----------------------------------
def test_validation_data_gets_the_training_class_weights():
    X, y = _blobs(90)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y != 0)[::3]]  # class 0 dominates
    X, y = X[keep], y[keep]
    Xv, yv = X[::2], y[::2].copy()
    yv[:2] = 1  # another proportion of classes than training
    est = bp.MLPClassifier((8,), class_weight="balanced", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, validation_data=(Xv, yv))
    counts = np.bincount(y)
    train_weights = len(y) / (3 * counts)  # scikit-learn's "balanced", from the training labels
    expected = log_loss(
        yv, est.predict_proba(Xv), sample_weight=train_weights[yv], labels=[0, 1, 2]
    )
    assert est.validation_loss_curve_[-1] == pytest.approx(expected, rel=1e-6)
    # a validation set without class 2 is fine too
    two = yv != 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, validation_data=(Xv[two], yv[two]))


def test_balanced_class_weight_in_partial_fit_is_a_clear_error():
    X, y = _blobs(30)
    est = bp.MLPClassifier((8,), class_weight="balanced")
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        est.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])


# -- issue 17.11: Ctrl-C during partial_fit rolls back -------------------------------------------
class CtrlCAt(bp.Callback):
    def __init__(self, batch):
        self.batch, self.armed = batch, False

    def on_batch_end(self, trainer, batch, logs):
        if self.armed and batch == self.batch:
            raise KeyboardInterrupt


def test_ctrl_c_in_partial_fit_rolls_back_and_reaches_the_caller():
    X, y = _blobs(100)
    ctrl_c = CtrlCAt(2)
    est = bp.MLPClassifier((8,), batch_size=10, callbacks=[ctrl_c], random_state=0)
    est.partial_fit(X, y, classes=[0, 1, 2])
    before = est.model_.flat_parameters.copy(), est.n_iter_, est.t_, list(est.loss_curve_)
    opt = {k: np.copy(v) for k, v in est._trainer.optimizer.state_dict().items()}
    ctrl_c.armed = True
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.model_.flat_parameters, before[0])
    assert (est.n_iter_, est.t_, est.loss_curve_) == before[1:]
    after = est._trainer.optimizer.state_dict()
    assert all(np.array_equal(after[k], v) for k, v in opt.items())


class NoDeepCopy(list):
    def __deepcopy__(self, memo):
        raise AssertionError("the whole curve was copied")


class CtrlCAtEpochEnd(bp.Callback):
    armed = False

    def on_epoch_end(self, trainer, epoch, logs):
        if self.armed:
            raise KeyboardInterrupt


def test_partial_fit_rolls_back_its_curves_without_copying_them():
    """Each partial_fit deep-copied loss_curve_ for its rollback, so a call cost more the more
    calls came before it (0.12 s a call after 200,000 calls: quadratic in a streaming loop).
    The curves only grow during a call: their lengths are enough to roll them back."""
    X, y = _blobs(100)
    ctrl_c = CtrlCAtEpochEnd()
    est = bp.MLPClassifier((8,), callbacks=[ctrl_c], random_state=0)
    est.partial_fit(X, y, classes=[0, 1, 2])
    curve = est.loss_curve_ = NoDeepCopy(est.loss_curve_)
    est.partial_fit(X, y)
    ctrl_c.armed = True  # Ctrl-C after the epoch's loss was recorded
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X, y)
    assert est.loss_curve_ is curve and len(curve) == 2 and est.t_ == 200


def test_ctrl_c_in_trainer_fit_can_raise_or_warn():
    X, y = _blobs(40)
    trainer = bp.Trainer(_mlp(), "cross_entropy", "sgd", batch_size=10, callbacks=[CtrlCAt(1)])
    trainer.callbacks[0].armed = True
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y, interrupt="raise")
    assert trainer.interrupted
    with pytest.warns(RuntimeWarning, match="interrupted"):
        trainer.fit(X, y)
    assert trainer.interrupted


# -- issue 17.12: a frozen BatchNorm keeps its statistics ----------------------------------------
def test_frozen_batchnorm_uses_and_keeps_its_running_statistics():
    X, y = _blobs(40)
    model = _mlp(extra=[bp.BatchNorm(8)])
    bn = model.layers[1]
    bn.buffers["running_mean"][...] = 0.5
    bn.buffers["running_var"][...] = 2.0
    bn.trainable = False
    bp.Trainer(model, "cross_entropy", "adam", epochs=2).fit(X, y)
    np.testing.assert_array_equal(bn.buffers["running_mean"], 0.5)
    np.testing.assert_array_equal(bn.buffers["running_var"], 2.0)
    np.testing.assert_array_equal(model.forward(X, training=True), model.forward(X))
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X[:6], y[:6])
    assert report.passed, str(report)  # dL/dx through the fixed statistics


# -- issue 17.17: a batch of one sample never crashes BatchNorm ----------------------------------
def test_a_last_batch_of_one_row_joins_the_previous_batch():
    X, y = _blobs(201)
    spy = Spy()
    trainer = bp.Trainer(
        _mlp(extra=[bp.BatchNorm(8)]),
        "cross_entropy",
        "adam",
        batch_size=50,
        epochs=1,
        callbacks=[spy],
    )
    trainer.fit(X, y)
    assert [b["batch_size"] for b in spy.batch_logs] == [50, 50, 50, 51]
    assert trainer.steps_per_epoch == 4
    plain = Spy()  # without BatchNorm nothing changes
    bp.Trainer(_mlp(), "cross_entropy", "adam", batch_size=50, epochs=1, callbacks=[plain]).fit(
        X, y
    )
    assert [b["batch_size"] for b in plain.batch_logs] == [50, 50, 50, 50, 1]


@pytest.mark.parametrize(
    "mode", ["stochastic", "batch-of-one", "stream", "estimator", "partial_fit"]
)
def test_batchnorm_never_crashes_on_a_single_sample(mode):
    X, y = _blobs(201)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "estimator":  # 201 rows, default batch of 200
            est = bp.MLPClassifier((8,), normalization="batch", max_iter=2).fit(X, y)
            assert est.n_iter_ == 2
            return
        if mode == "partial_fit":
            est = bp.MLPClassifier((8,), normalization="batch")
            est.partial_fit(X[:1], y[:1], classes=[0, 1, 2])
            assert np.all(np.isfinite(est.model_.flat_parameters))
            return
        model = _mlp(extra=[bp.BatchNorm(8)])
        trainer = bp.Trainer(
            model, "cross_entropy", "sgd", mode="batch" if mode != "stochastic" else mode, epochs=1
        )
        if mode == "stochastic":
            trainer.fit(X[:20], y[:20])
        elif mode == "batch-of-one":
            trainer.fit(X[:1], y[:1])
        else:
            trainer.fit([(X[:5], y[:5]), (X[5:6], y[5:6])])
    assert np.all(np.isfinite(model.flat_parameters))


def test_single_sample_batchnorm_uses_the_running_statistics_and_its_gradient_checks():
    bn = bp.BatchNorm(3, dtype="float64")
    bn.buffers["running_mean"][...] = [0.1, -0.2, 0.3]
    x = np.array([[1.0, 2.0, -1.0]])
    np.testing.assert_array_equal(bn.forward(x, training=True), bn.forward(x))
    np.testing.assert_array_equal(bn.buffers["running_mean"], [0.1, -0.2, 0.3])  # not updated
    model = bp.Sequential(
        [bp.Dense(2, 3), bp.BatchNorm(3), bp.Dense(3, 2)], dtype="float64", seed=0
    )
    report = bp.check_gradients(
        model, bp.SoftmaxCrossEntropy(), np.array([[0.3, -1.2]]), np.array([1])
    )
    assert report.passed, str(report)


# -- issue 17.21: GELU's tanh form never overflows -----------------------------------------------
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_is_finite_for_huge_inputs(dtype, approximate):
    layer = bp.GELU(approximate=approximate)
    x = np.array([[-3e38, -1e20, -50.0, 50.0, 1e20, 3e38]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(x))
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(y, np.where(x > 0, x, 0))
    np.testing.assert_array_equal(dx, [[0, 0, 0, 1, 1, 1]])


# -- issue 12.7: one module of argument checks, no import cycles ---------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda v: bp.LBFGS(max_fun=v),
        lambda v: bp.LBFGS(memory=v),
        lambda v: bp.Trainer(_mlp(), "mse", "sgd", epochs=v),
        lambda v: bp.Trainer(_mlp(), "mse", "sgd", batch_size=v),
        lambda v: bp.EarlyStopping(patience=v),
        lambda v: bp.ReduceLROnPlateau(patience=v),
        lambda v: bp.GradientMonitor(every=v),
        lambda v: bp.StepDecay(step_size=v),
        lambda v: bp.CosineDecay(total=v),
        lambda v: Checkpoint("x.npz", every=v),
    ],
)
def test_integer_arguments_agree_numpy_integers_yes_bools_no(make):
    make(np.int64(5))
    make(5)
    for bad in (True, 2.5, "5"):
        with pytest.raises(ValueError, match="integer"):
            make(bad)


def test_checks_name_the_value():
    with pytest.raises(ValueError, match=r"shuffle must be True or False, got 1"):
        checks.boolean("shuffle", 1)
    with pytest.raises(ValueError, match=r"factor must be a finite number in \(0, 1\), got nan"):
        checks.real("factor", float("nan"), 0, 1, "neither")
    assert checks.positive_int("n", np.uint8(3)) == 3


def _imports(path: pathlib.Path, package: str) -> set[str]:
    """The sibling modules ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.add(f"{package}.{node.module.split('.')[0]}")
    return found


def test_the_library_modules_import_no_cycle():
    root = pathlib.Path(bp.__file__).parent
    graph = {f"backprop.{p.stem}": _imports(p, "backprop") for p in root.glob("*.py")}

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False

    cyclic = sorted(m for m in graph if m != "backprop.__init__" and reach(m, m, set()))
    assert cyclic == []


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.update(epoch=-1), "epoch must be a non-negative integer"),
        (lambda s: s.update(step_count="7"), "step_count must be a non-negative integer"),
        (lambda s: s["validation_split"].update(val_idx=np.array([-1])), r"indices in \[0, 40\)"),
        (lambda s: s["callbacks"].append({"type": "Mystery", "state": {"x": 1}}), "lacks: Mystery"),
        # refused by the optimizer's and the schedule's own loaders, which ran after the epoch,
        # step count, generators and split had been overwritten (and the optimizer's lr)
        (lambda s: s["optimizer"].update(step_counts=[[0, 67, 99]]), "step_counts must be"),
        (lambda s: s["optimizer"].update(lr="fast"), "could not convert"),
        (lambda s: s["schedule"].update(base_lr="high"), "could not convert|base_lr"),
    ],
)
def test_an_edited_trainer_state_is_refused_and_changes_nothing(edit, match):
    X, y = _blobs(40)
    trainer = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=2, seed=0, schedule=_step())
    trainer.fit(X, y, validation_split=0.25)
    state = trainer.state_dict()
    edit(state)
    fresh = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=2, seed=0, schedule=_step())
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(state)
    assert fresh.epoch == 0 and fresh.step_count == 0 and not fresh.history
    assert fresh.optimizer.iterations == 0 and fresh.optimizer.lr == 0.001
    assert fresh.optimizer.state_dict() == bp.Adam().state_dict()


def _step():
    return bp.StepDecay(1, 0.5)


def test_a_stratified_split_leaves_every_class_a_training_row():
    # round(m * fraction) can be all m rows of a class: 10 classes x 2 rows at 0.9 put every row
    # in validation (fit then failed with ZeroDivisionError), and a 1-row class at 0.6 was left
    # out of training.
    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 10
    trainer = bp.Trainer(_mlp(k=10), "cross_entropy", "adam", epochs=1, batch_size=4, seed=0)
    trainer.fit(X, y, validation_split=0.9)
    train_idx, val_idx = trainer.validation_rows.indices(20, 0.9)
    assert len(train_idx) == 10 and set(y[train_idx]) == set(range(10))
    y = np.array([0] * 50 + [1] * 50 + [2])
    train_idx, val_idx = bp.data.split_indices(101, 0.6, np.random.default_rng(0), stratify=y)
    assert set(y[train_idx]) == {0, 1, 2} and len(np.intersect1d(train_idx, val_idx)) == 0


def test_validation_rows_weighted_all_zero_are_refused():
    # val_loss and val_accuracy were NaN at every epoch, without a word
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    trainer = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=1, seed=0)
    with pytest.raises(ValueError, match="validation_data's sample weights are all 0"):
        trainer.fit(X, y, validation_data=(X[:5], y[:5], np.zeros(5)))
    trainer = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=1, seed=0)
    with pytest.raises(ValueError, match="validation_split rows' weights are all 0"):
        trainer.fit(X, y, sample_weight=np.r_[np.zeros(39), 1.0], validation_split=0.25)


def test_evaluate_on_rows_weighted_all_zero_is_refused():
    # evaluate returned {'loss': nan, 'accuracy': nan} without a word, where the loss itself,
    # fit and validation_data refuse weights that sum to zero
    X, y = np.random.default_rng(0).normal(size=(40, 4)), np.arange(40) % 3
    trainer = bp.Trainer(_mlp(), "cross_entropy", "adam", epochs=1, seed=0)
    trainer.fit(X, y)
    with pytest.raises(ValueError, match="sample_weight is all 0"):
        trainer.evaluate(X, y, sample_weight=np.zeros(40))
    w = np.r_[np.zeros(39), 2.0]  # one weighted row, in the last chunk: its loss, not NaN
    assert trainer.evaluate(X, y, sample_weight=w, batch_size=8) == trainer.evaluate(X[39:], y[39:])
