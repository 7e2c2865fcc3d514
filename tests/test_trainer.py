"""Trainer: modes, epochs over shuffled indices, penalties, clipping, stopping, determinism."""

import math
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop as bp


class Recorder(bp.Layer):
    """Identity layer that records the sample ids (column 0) of every training batch."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, x, training=False):
        if training:
            self.batches.append(np.rint(x[:, 0]).astype(int))
        return x

    def backward(self, grad_out):
        return grad_out


def id_data(n, d=3):
    X = np.zeros((n, d), dtype=np.float32)
    X[:, 0] = np.arange(n)
    return X, np.arange(n) % 2


def recorder_trainer(mode, batch_size=4, epochs=2, **kw):
    rec = Recorder()
    model = bp.Sequential([rec, bp.Dense(3, 2)], seed=0)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(1e-3),
        mode=mode,
        batch_size=batch_size,
        epochs=epochs,
        seed=1,
        **kw,
    )
    return rec, trainer


@pytest.mark.parametrize(
    "mode, n, batch_size, steps",
    [
        ("stochastic", 10, 4, 10),
        ("batch", 10, 4, 1),
        ("minibatch", 10, 4, 3),
        ("minibatch", 12, 4, 3),
        ("minibatch", 3, 8, 1),
    ],
)
def test_steps_per_epoch_and_every_sample_once(mode, n, batch_size, steps):
    rec, trainer = recorder_trainer(mode, batch_size=batch_size, epochs=3)
    X, y = id_data(n)
    trainer.fit(X, y)
    assert trainer.steps_per_epoch == steps
    assert len(rec.batches) == 3 * steps and trainer.step_count == 3 * steps
    epochs = [np.concatenate(rec.batches[i * steps : (i + 1) * steps]) for i in range(3)]
    for seen in epochs:
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))  # each sample exactly once
    if mode == "minibatch" and n % batch_size:
        assert len(rec.batches[steps - 1]) == n % batch_size  # the last partial batch is used
    if n > 3 and mode != "batch":
        assert not np.array_equal(epochs[0], epochs[1])  # a fresh order each epoch


def test_no_shuffle_keeps_the_order():
    rec, trainer = recorder_trainer("minibatch", shuffle=False)
    trainer.fit(*id_data(10))
    np.testing.assert_array_equal(np.concatenate(rec.batches[:3]), np.arange(10))


def test_training_never_copies_the_data_set():
    X = np.random.default_rng(0).random((40_000, 100), dtype=np.float32)  # 16 MB
    y = (X[:, 0] > 0.5).astype(int)
    model = bp.Sequential([bp.Dense(100, 16), bp.ReLU(), bp.Dense(16, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", batch_size=256, epochs=2, seed=0)
    tracemalloc.start()
    trainer.fit(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.25 * X.nbytes, f"peak {peak / 1e6:.1f} MB for {X.nbytes / 1e6:.1f} MB of data"


def test_same_seed_bitwise_identical_and_dropout_uses_its_own_stream():
    def run(dropout, seed=3):
        rec = Recorder()
        layers = [rec, bp.Dense(3, 8), bp.ReLU()]
        layers += [bp.Dropout(0.5)] if dropout else []
        model = bp.Sequential([*layers, bp.Dense(8, 2)], seed=seed)
        init = model.flat_parameters.copy()
        t = bp.Trainer(model, "cross_entropy", "adam", batch_size=4, epochs=3, seed=seed)
        h = t.fit(*id_data(20))
        return init, model.flat_parameters.copy(), h["loss"], rec.batches

    a, b, c = run(False), run(False), run(True)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    np.testing.assert_array_equal(a[0], c[0])  # dropout does not change the initial weights
    for x, z in zip(a[3], c[3], strict=True):  # ... nor the shuffle order
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[1], c[1])


def numeric_loss_gradient(trainer, X, y, w=None, eps=1e-6):
    p = trainer.model.flat_parameters
    num = np.zeros_like(p)
    for i in range(p.size):
        orig = p[i]
        p[i] = orig + eps
        plus, _ = trainer.loss_and_gradients(X, y, w)
        p[i] = orig - eps
        minus, _ = trainer.loss_and_gradients(X, y, w)
        p[i] = orig
        num[i] = (plus - minus) / (2 * eps)
    return num


@pytest.mark.parametrize("penalty_scale", ["constant", "per_sample"])
def test_penalized_gradient_matches_finite_differences(penalty_scale, rng):
    model = bp.Sequential([bp.Dense(3, 4), bp.Tanh(), bp.Dense(4, 2)], dtype="float64", seed=0)
    # non-zero biases: at zero, l1 sign(b) + l2 b is 0, so penalizing them would go unseen
    model.flat_parameters[model.n_weights :] = rng.normal(
        size=model.flat_parameters.size - model.n_weights
    )
    trainer = bp.Trainer(
        model, "cross_entropy", "sgd", l1=0.03, l2=0.2, penalty_scale=penalty_scale
    )
    trainer._frozen = None
    X, y, w = rng.normal(size=(6, 3)), rng.integers(0, 2, 6), rng.uniform(0.5, 2, 6)
    loss, _ = trainer.loss_and_gradients(X, y, w)
    analytic = model.flat_gradients.copy()
    np.testing.assert_allclose(
        analytic, numeric_loss_gradient(trainer, X, y, w), rtol=1e-6, atol=1e-9
    )
    plain = bp.Trainer(model, "cross_entropy", "sgd")
    plain._frozen = None
    base, _ = plain.loss_and_gradients(X, y, w)
    W = model.flat_parameters[: model.n_weights]
    scale = 1.0 if penalty_scale == "constant" else 1.0 / w.sum()
    expected = 0.03 * scale * np.abs(W).sum() + 0.1 * scale * W @ W
    assert loss - base == pytest.approx(expected)
    bias_grad_with = analytic[model.n_weights :]
    np.testing.assert_allclose(
        bias_grad_with, model.flat_gradients[model.n_weights :]
    )  # no bias penalty


class GradSpy(bp.Callback):
    def __init__(self):
        self.norms = []

    def on_batch_end(self, trainer, batch, logs):
        g = trainer.model.flat_gradients
        self.norms.append((float(np.sqrt(g @ g)), logs["grad_norm"]))


@settings(max_examples=15, deadline=None)
@given(bound=st.floats(1e-3, 5.0), seed=st.integers(0, 1000))
def test_global_norm_clipping_keeps_the_bound(bound, seed):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(16, 5)) * 10, rng.integers(0, 3, 16)
    model = bp.Sequential([bp.Dense(5, 8), bp.ReLU(), bp.Dense(8, 3)], seed=seed)
    spy = GradSpy()
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(0.01),
        batch_size=4,
        epochs=1,
        clip_norm=bound,
        callbacks=[spy],
        seed=seed,
    )
    h = trainer.fit(X, y)
    for after, before in spy.norms:
        assert after <= bound * (1 + 1e-5)
        assert after == pytest.approx(min(before, bound), rel=1e-4)
    assert h["grad_norm_max"][0] == pytest.approx(max(b for _, b in spy.norms))


def test_clip_by_value_and_per_parameter_norm():
    g = np.array([3.0, -4.0, 0.5])
    bp.regularization.clip_by_value(g, 1.0)
    np.testing.assert_array_equal(g, [1.0, -1.0, 0.5])
    a, b = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    bp.regularization.clip_by_param_norm([a, b], 1.0)
    np.testing.assert_allclose(a, [0.6, 0.8])
    np.testing.assert_allclose(b, [0.3, 0.4])  # already within the bound


@pytest.mark.parametrize(
    "optimizer,change,match",
    [
        ("lbfgs", dict(l1_method="proximal"), "L-BFGS"),  # l1 in the loss, not in the gradient
        ("sgd", dict(l1_method="prox"), "l1_method"),  # silently the subgradient
        ("sgd", dict(l2=-5.0), "l2"),  # a negative penalty: the loss fell below 0 unchecked
        ("sgd", dict(penalty_scale="per_batch"), "penalty_scale"),  # silently "constant"
    ],
)
def test_penalty_options_changed_after_construction_are_checked_by_fit(optimizer, change, match):
    """The penalty options were checked by the constructor only: set afterwards (as the
    estimators set theirs between partial_fit calls), a bad value trained silently, and
    l1_method="proximal" with L-BFGS gave SciPy a loss with the L1 term but a gradient without
    it (its line search failed, 'ABNORMAL')."""
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "cross_entropy", optimizer, epochs=2, l1=0.5, seed=0)
    for name, value in change.items():
        setattr(trainer, name, value)
    before = model.flat_parameters.copy()
    with pytest.raises(ValueError, match=match):
        trainer.fit(X, y)
    np.testing.assert_array_equal(model.flat_parameters, before)


def test_early_stopping_stops_at_patience_and_restores_the_best_weights(rng):
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + rng.normal(scale=2.0, size=60) > 0).astype(int)  # noisy: it will overfit
    Xv = rng.normal(size=(40, 4))
    yv = (Xv[:, 0] > 0).astype(int)
    snapshots = []

    class Snap(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            snapshots.append(trainer.model.flat_parameters.copy())

    model = bp.Sequential([bp.Dense(4, 64), bp.ReLU(), bp.Dense(64, 2)], seed=0)
    stop = bp.EarlyStopping(patience=3)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.Adam(0.05),
        batch_size=8,
        epochs=200,
        callbacks=[stop, Snap()],
        seed=0,
    )
    h = trainer.fit(X, y, validation_data=(Xv, yv))
    best = int(np.argmin(h["val_loss"]))
    assert stop.best_epoch == best
    assert len(h["val_loss"]) == best + 1 + 3  # stopped exactly `patience` epochs after the best
    assert len(h["val_loss"]) < 200
    np.testing.assert_array_equal(model.flat_parameters, snapshots[best])


def test_early_stopping_treats_nan_as_no_improvement():
    stop = bp.EarlyStopping(monitor="loss", patience=2)

    class Fake:
        stop_training = False
        has_validation = False
        model = bp.Sequential([bp.Dense(2, 1)], seed=0)

    t = Fake()
    stop.on_train_begin(t)
    for epoch, value in enumerate([1.0, math.nan, math.nan]):
        stop.on_epoch_end(t, epoch, {"loss": value})
    assert stop.best == 1.0 and t.stop_training


def test_early_stopping_without_validation_data_is_a_clear_error():
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "sgd", callbacks=[bp.EarlyStopping()])
    with pytest.raises(ValueError, match="no validation data"):
        trainer.fit(*id_data(6))


def test_frozen_layers_do_not_change(rng):
    model = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0)
    model.layers[0].trainable = False
    frozen = model.layers[0].params["W"].copy(), model.layers[0].params["b"].copy()
    head = model.layers[2].params["W"].copy()
    frozen_grads = []

    class Spy(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            frozen_grads.append(np.abs(trainer.model.gradients()["0.W"]).max())

    opt = bp.AdamW(0.01, weight_decay=0.1)
    trainer = bp.Trainer(model, "cross_entropy", opt, l2=0.1, epochs=3, seed=0, callbacks=[Spy()])
    trainer.fit(rng.normal(size=(32, 4)), rng.integers(0, 3, 32))
    assert max(frozen_grads) == 0  # no L2 gradient leaks into the frozen layer's report
    np.testing.assert_array_equal(model.layers[0].params["W"], frozen[0])
    np.testing.assert_array_equal(model.layers[0].params["b"], frozen[1])
    assert not np.array_equal(model.layers[2].params["W"], head)


def test_diverging_run_raises_naming_epoch_and_batch_and_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.normal(size=64)
    model = bp.Sequential([bp.Dense(4, 16), bp.ReLU(), bp.Dense(16, 1)], seed=0)
    seen = []

    class Keep(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append(trainer.model.flat_parameters.copy())

    trainer = bp.Trainer(
        model, "mse", bp.SGD(lr=1e6), batch_size=8, epochs=50, callbacks=[Keep()], seed=0
    )
    with pytest.raises(bp.TrainingDivergedError, match=r"at epoch \d+, batch \d+"):
        trainer.fit(X, y)
    assert np.all(np.isfinite(model.flat_parameters))
    np.testing.assert_array_equal(model.flat_parameters, seen[-1])  # the bad update was not applied


def test_the_l2_penalty_of_float32_weights_is_summed_in_float64():
    """penalty() says it computes in float64, but np.dot of float32 weights accumulates in
    float32: for a million weights the L2 term was off by 9e-7 relative (3e-5 for ten million),
    so float32 and float64 copies of a model reported different penalized losses."""
    from backprop.regularization import penalty

    # float32 blocks of 1024 added in float64 (one float64 pass was 10 times slower): 1e-7 at
    # worst, where one float32 dot product of a million weights is off by 9e-7
    for n in (0, 1, 1023, 1025, 10**6 + 7):
        w = np.random.default_rng(n).normal(size=n).astype(np.float32)
        exact = float(np.dot(w.astype(np.float64), w.astype(np.float64)))
        assert penalty(w, l2=2.0) == pytest.approx(exact, rel=2e-7, abs=1e-30)
        assert penalty(w.astype(np.float64), l2=2.0) == exact  # float64: np.dot, as before
    w = np.random.default_rng(0).normal(size=4 * 10**6).astype(np.float32)[::2]  # strided
    exact = float(np.dot(w.astype(np.float64), w.astype(np.float64)))
    assert penalty(w, l2=2.0) == pytest.approx(exact, rel=2e-7)


def test_a_diverging_batch_leaves_the_batchnorm_statistics_as_they_were():
    """The diverging batch's forward had already moved BatchNorm's running statistics (to inf):
    the error said the model keeps the weights from before the batch, and it did, but it then
    predicted one and the same value (-5.9e26) for every input."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 3)).astype(np.float32)
    y = X @ np.ones((3, 1), np.float32)
    model = bp.Sequential(
        [bp.Dense(16), bp.ReLU(), bp.Dense(16), bp.Residual([bp.BatchNorm()]), bp.Dense(1)],
        seed=0,
    )
    seen = []

    class Keep(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append({k: v.copy() for k, v in trainer.model.buffers().items()})

    trainer = bp.Trainer(model, "mse", bp.SGD(lr=1e3), batch_size=32, callbacks=[Keep()], seed=0)
    with np.errstate(all="ignore"), pytest.raises(bp.TrainingDivergedError):
        trainer.fit(X, y, epochs=50)
    assert seen and all(np.array_equal(v, seen[-1][k]) for k, v in model.buffers().items())


def test_keyboard_interrupt_keeps_weights_and_says_so():
    class CtrlC(bp.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt

    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=10, callbacks=[CtrlC()])
    with pytest.warns(RuntimeWarning, match="interrupted"):
        h = trainer.fit(*id_data(8))
    assert trainer.epoch == 2 and len(h["loss"]) == 1  # epoch 2's row was not recorded


def test_fit_continues_epochs_and_history():
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=2, seed=0)
    trainer.fit(*id_data(8))
    h = trainer.fit(*id_data(8), epochs=3)
    assert h["epoch"] == [1, 2, 3, 4, 5]


def test_validation_split_is_stratified_and_reported(rng):
    X, y = rng.normal(size=(100, 4)), np.repeat([0, 1, 2, 3], 25)
    model = bp.Sequential([bp.Dense(4, 4)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", "adam", epochs=2, seed=0)
    h = trainer.fit(X, y, validation_split=0.2)
    assert {"val_loss", "val_accuracy", "accuracy", "lr", "grad_norm", "time"} <= set(h)
    train_idx, val_idx = bp.data.split_indices(100, 0.2, np.random.default_rng(0), stratify=y)
    assert len(val_idx) == 20 and np.all(np.bincount(y[val_idx]) == 5)
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    # the same labels as a column or one-hot rows were split without regard to class
    for targets in (y[:, None], np.eye(4)[y]):
        trainer = bp.Trainer(model, "cross_entropy", "adam", epochs=1, seed=0)
        trainer.fit(X, targets, validation_split=0.2)
        _, val_idx = trainer.validation_rows.indices(100, 0.2)
        assert np.all(np.bincount(y[val_idx]) == 5)


def test_a_stratified_split_never_takes_every_row():
    """Every class rounding its share up (2 x 1.5 rows -> 2) took all 4 rows for validation and
    left none to train on; each class now keeps a training row."""
    labels = np.array([0, 0, 1, 1])
    train, val = bp.data.split_indices(4, 0.7, np.random.default_rng(0), stratify=labels)
    assert sorted(labels[train]) == [0, 1] and sorted(labels[val]) == [0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "online"}, "mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 1.5}, "epochs"),
        ({"l2": -1}, "l2"),
        ({"clip_norm": 0}, "clip_norm"),
        # None passed the check and failed mid-fit: "'>' not supported ... NoneType"
        ({"clip_mode": "agc", "clip_factor": None}, "clip_factor must be a finite number > 0"),
        ({"metrics": ["f1"]}, "metric"),
        ({"penalty_scale": "x"}, "penalty_scale"),
    ],
)
def test_bad_trainer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.Trainer(bp.Sequential([bp.Dense(3, 2)]), "cross_entropy", "sgd", **kwargs)


def test_bad_fit_data_is_named():
    trainer = bp.Trainer(bp.Sequential([bp.Dense(3, 2)]), "cross_entropy", "sgd")
    with pytest.raises(ValueError, match="X has 4 features, but the model expects 3"):
        trainer.fit(np.zeros((5, 4)), np.zeros(5, int))
    with pytest.raises(ValueError, match="X has 5 samples but y has 4"):
        trainer.fit(np.zeros((5, 3)), np.zeros(4, int))
    with pytest.raises(ValueError, match="NaN"):
        trainer.fit(np.full((5, 3), np.nan), np.zeros(5, int))


# -- learning ------------------------------------------------------------------------------------
def test_xor_is_solved():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    model = bp.Sequential([bp.Dense(2, 8), bp.Tanh(), bp.Dense(8, 2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.05), mode="batch", epochs=300, seed=0)
    trainer.fit(X, y)
    np.testing.assert_array_equal(model.forward(X).argmax(axis=1), y)


def test_digits_reaches_97_percent_with_adam():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    model = bp.Sequential([bp.Dense(64, 128), bp.ReLU(), bp.Dense(128, 10)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(1e-3), batch_size=32, epochs=40, seed=0)
    trainer.fit(Xtr, ytr)
    assert trainer.evaluate(Xte, yte)["accuracy"] >= 0.97


def test_regression_reaches_a_sensible_r2():
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    model = bp.Sequential([bp.Dense(10, 32), bp.ReLU(), bp.Dense(32, 1)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "mse", bp.Adam(3e-3), batch_size=32, epochs=60, l2=1e-3, seed=0)
    h = trainer.fit(X[:350], y[:350], validation_data=(X[350:], y[350:]))
    assert h["val_r2"][-1] > 0.4  # linear models reach about 0.5 on this split


def test_lbfgs_converges_on_a_small_problem():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    model = bp.Sequential([bp.Dense(4, 8), bp.Tanh(), bp.Dense(8, 3)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.LBFGS(tol=1e-8), epochs=500, l2=1e-3)
    h = trainer.fit(X, y)
    assert h["accuracy"][-1] >= 0.97
    assert h["loss"][-1] < h["loss"][0] / 5
    # at the optimum the penalized gradient vanishes
    trainer.loss_and_gradients(X, y)
    assert np.abs(model.flat_gradients).max() < 1e-3


def test_schedules_drive_the_learning_rate_per_epoch_and_per_update():
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    t = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(0.1),
        batch_size=4,
        epochs=4,
        schedule=bp.StepDecay(step_size=2, gamma=0.5),
        seed=0,
    )
    h = t.fit(*id_data(8))
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.05, 0.05])
    t = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(0.1),
        batch_size=4,
        epochs=2,
        schedule=bp.InverseScaling(power=1.0, interval="update"),
        seed=0,
    )
    h = t.fit(*id_data(8))  # 2 updates per epoch; lr of the last update: 0.1 / (t + 1)
    np.testing.assert_allclose(h["lr"], [0.1 / 2, 0.1 / 4])


def test_gradient_monitor_sees_vanishing_gradients_in_a_deep_sigmoid_net(rng):
    layers = []
    for _ in range(8):
        layers += [bp.Dense(16, 16, init="small_normal"), bp.Sigmoid()]
    model = bp.Sequential([bp.Dense(4, 16), bp.Sigmoid(), *layers, bp.Dense(16, 2)], seed=0)
    mon = bp.GradientMonitor()
    trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=1, callbacks=[mon], seed=0)
    with pytest.warns(RuntimeWarning, match="vanishing"):
        h = trainer.fit(rng.normal(size=(32, 4)), rng.integers(0, 2, 32))
    assert h["grad_norm/0.W"][0] < 1e-4 * h["grad_norm/18.W"][0]


def test_gradient_monitor_does_not_call_the_bias_before_a_batchnorm_vanishing(rng, recwarn):
    # BatchNorm subtracts the batch mean, so the bias of the Dense before it has gradient 0 by
    # construction (round-off: 1e-8): every Dense -> BatchNorm network was warned of "vanishing
    # gradients of 0.b". The warning is about weights; a vanishing W is still caught above.
    model = bp.Sequential([bp.Dense(5, 8), bp.BatchNorm(8), bp.ReLU(), bp.Dense(8, 3)], seed=1)
    trainer = bp.Trainer(
        model, "cross_entropy", bp.Adam(0.01), batch_size=16, epochs=2, seed=0,
        callbacks=[bp.GradientMonitor()],
    )  # fmt: skip
    h = trainer.fit(rng.normal(size=(64, 5)), rng.integers(0, 3, 64))
    assert h["grad_norm/0.b"][0] < 1e-6  # still logged
    assert not [w for w in recwarn if "vanishing" in str(w.message)]


def test_train_step_on_an_unbuilt_model_trains_it(rng):
    # The trainable slices were taken before the first forward built the model: none, and the
    # cache (keyed by the layers' trainable flags) kept them, so every step left the weights
    # as they were while returning a loss and a gradient norm as if it had trained.
    X, y = rng.normal(size=(8, 5)), rng.integers(0, 3, 8)
    lazy, built = (bp.Sequential([bp.Dense(8), bp.ReLU(), bp.Dense(3)], seed=1) for _ in "ab")
    built.build((5,))
    losses = {}
    for name, model in (("lazy", lazy), ("built", built)):
        trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), seed=0)
        losses[name] = [trainer.train_step(X, y)[0] for _ in range(3)]
    assert losses["lazy"] == losses["built"] and losses["lazy"][2] < losses["lazy"][0]
    np.testing.assert_array_equal(lazy.flat_parameters, built.flat_parameters)


def test_gradient_monitor_reports_dead_relus(rng):
    model = bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 2)], seed=0)
    model.layers[0].params["b"][:3] = -100.0  # three units can never fire
    trainer = bp.Trainer(
        model, "cross_entropy", bp.SGD(1e-4), epochs=1, callbacks=[bp.GradientMonitor()], seed=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = trainer.fit(rng.normal(size=(32, 4)), rng.integers(0, 2, 32))
    assert h["dead_relu/1"][0] >= 0.5


def test_gradient_monitor_counts_the_dead_relus_inside_a_residual_block(rng):
    # Only the top-level layers were looked at: a residual network's ReLUs had no dead_relu
    # column, and plot_dead_relu told its user to "train a network with ReLU layers".
    block = bp.Residual([bp.Dense(6, 6), bp.ReLU(), bp.Dense(6, 6)])
    model = bp.Sequential([bp.Dense(4, 6), block, bp.ReLU(), bp.Dense(6, 2)], seed=0)
    block.layers[0].params["b"][:3] = -100.0  # three of the block's units can never fire
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(1e-4), epochs=1, seed=0)
    trainer.callbacks = [bp.GradientMonitor()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = trainer.fit(rng.normal(size=(32, 4)), rng.integers(0, 2, 32))
    assert h["dead_relu/1.1"][0] >= 0.5 and "dead_relu/2" in h.keys()


def test_dead_relu_counts_units_not_positions_or_padded_steps(rng):
    # It took every entry of an (n, t, units) or (n, h, w, filters) output as a unit: the
    # padded steps of a sequence batch (zeros) counted as dead units (0.4 for 2 padded steps
    # of 5, with no unit dead), and so did a live filter's positions that happened to be 0.
    ids = rng.integers(1, 9, size=(40, 5))
    ids[:, 3:] = 0
    layers = [bp.Embedding(9, 4, mask_zero=True), bp.RNN(6, return_sequences=True), bp.ReLU()]
    model = bp.Sequential(
        [*layers, bp.SequencePool(), bp.Dense(2)], input_shape=(5,), dtype="float64", seed=0
    )
    seen = []

    class Spy(bp.Callback):  # the ReLU's output is kept past backward while the monitor runs
        def __init__(self, layer):
            self.layer = layer

        def on_batch_end(self, trainer, batch, logs):
            seen.append(self.layer.last_output)

    monitors = [bp.GradientMonitor(), Spy(model.layers[2])]
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(1e-6), batch_size=40, callbacks=monitors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = trainer.fit(ids, rng.integers(0, 2, 40), epochs=1)
    out = seen[-1]  # (40, 5, 6): each unit fires at some real step
    assert model.layers[2].last_output is None  # released when training ended
    expected = np.mean(~np.any(out > 0, axis=(0, 1)))
    assert h["dead_relu/2"] == [expected] and expected < 0.4
    conv = bp.Sequential(
        [bp.Conv2D(3, 3, padding="same"), bp.ReLU(), bp.Flatten(), bp.Dense(2)],
        input_shape=(5, 5, 1),
        dtype="float64",
        seed=0,
    )
    conv.layers[0].params["b"][0] = -100.0  # filter 0 never fires; 1 and 2 fire somewhere
    monitors = [bp.GradientMonitor(), Spy(conv.layers[1])]
    trainer = bp.Trainer(conv, "cross_entropy", bp.SGD(1e-6), batch_size=8, callbacks=monitors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = trainer.fit(rng.normal(size=(8, 5, 5, 1)), rng.integers(0, 2, 8), epochs=1)
    fired = np.any(seen[-1] > 0, axis=(0, 1, 2))
    assert fired.tolist() == [False, True, True]
    assert h["dead_relu/1"] == [1 / 3]


def test_recorded_norm_is_taken_before_every_kind_of_clipping(rng):
    X, y = rng.normal(size=(16, 5)) * 10, rng.integers(0, 3, 16)
    model = bp.Sequential([bp.Dense(5, 8), bp.ReLU(), bp.Dense(8, 3)], dtype="float64", seed=0)
    spy = GradSpy()
    unclipped = bp.Trainer(
        model.copy(), "cross_entropy", bp.SGD(0.0 + 1e-12), batch_size=16, epochs=1, seed=0
    )
    unclipped.fit(X, y)
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        bp.SGD(1e-12),
        batch_size=16,
        epochs=1,
        clip_value=1e-3,
        clip_param_norm=1e-3,
        clip_norm=1e-3,
        callbacks=[spy],
        seed=0,
    )
    h = trainer.fit(X, y)
    after, before = spy.norms[0]
    assert before == pytest.approx(unclipped.history["grad_norm"][0], rel=1e-9)
    assert h["grad_norm"][0] == pytest.approx(before, rel=1e-12)
    assert after <= 1e-3 * (1 + 1e-9) < before


class _SetWeightsAtTheEnd(bp.Callback):
    """Sets every parameter to 0.5 in the last epoch's on_epoch_end (weight averaging does)."""

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == trainer.end_epoch - 1:
            trainer.model.flat_parameters[:] = 0.5


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_weights_set_by_a_callback_in_the_last_epoch_are_kept(optimizer, rng):
    """Closing the L-BFGS run wrote SciPy's last point back into the model after the last
    on_epoch_end, silently undoing what a callback had set there (SGD kept it)."""
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    model = bp.Sequential([bp.Dense(4, 5), bp.Tanh(), bp.Dense(5, 3)], dtype="float64", seed=0)
    trainer = bp.Trainer(
        model, "cross_entropy", optimizer, epochs=3, callbacks=[_SetWeightsAtTheEnd()], seed=0
    )
    trainer.fit(X, y)
    assert np.all(model.flat_parameters == 0.5)


@pytest.mark.parametrize("kwargs", [{"mode": "stochastic"}, {"batch_size": 1}])
def test_sample_weights_without_effect_on_one_row_batches_are_named(kwargs, rng):
    """Each batch's loss is the weighted mean over its rows, so with one row per batch a
    weight cancels: the run equals the unweighted one bit for bit. That was silent."""
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    w = rng.uniform(0.1, 10.0, 20)
    params = []
    for weights in (None, w):
        model = bp.Sequential([bp.Dense(4, 3)], dtype="float64", seed=0)
        trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=2, seed=0, **kwargs)
        if weights is None:
            trainer.fit(X, y)
        else:
            with pytest.warns(RuntimeWarning, match="weight cancels"):
                trainer.fit(X, y, sample_weight=weights)
        params.append(model.flat_parameters.copy())
    assert np.array_equal(*params)
    with warnings.catch_warnings():  # equal (or zero) weights lose nothing: no warning
        warnings.simplefilter("error")
        bp.Trainer(model, "cross_entropy", "sgd", mode="stochastic", epochs=1, seed=0).fit(
            X, y, sample_weight=np.where(np.arange(20) % 3, 2.0, 0.0)
        )
        bp.Trainer(model, "cross_entropy", "sgd", batch_size=4, epochs=1, seed=0).fit(
            X, y, sample_weight=w
        )


def test_the_epoch_loss_is_measured_on_the_weights_the_docs_name(rng):
    """Full batch: the loss at the weights the epoch began with (before its one update), as
    NumPy gives it; L-BFGS: at the point the iteration reached, as evaluate gives it after."""
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    model = bp.Sequential([bp.Dense(4, 5), bp.Tanh(), bp.Dense(5, 3)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.5), mode="batch", l2=0.1, seed=0)
    for _ in range(3):
        before = trainer.evaluate(X, y)["loss"]
        h = trainer.fit(X, y, epochs=1)
        assert h["loss"][-1] == pytest.approx(before, rel=1e-12)
        assert trainer.evaluate(X, y)["loss"] < before
    trainer = bp.Trainer(model, "cross_entropy", "lbfgs", l2=0.1, seed=0)
    for _ in range(3):
        h = trainer.fit(X, y, epochs=1)
        assert h["loss"][-1] == pytest.approx(trainer.evaluate(X, y)["loss"], rel=1e-12)


def test_lbfgs_max_fun_is_checked_at_the_end_of_an_iteration(rng):
    """As its docstring says: SciPy stops once the count exceeds max_fun, and the model ends
    at the point of the last logged iteration."""
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    model = bp.Sequential([bp.Dense(4, 5), bp.Tanh(), bp.Dense(5, 3)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.LBFGS(max_fun=4), epochs=50, seed=0)
    h = trainer.fit(X, y)
    assert trainer.optimizer.result.nfev > 4 and len(h["loss"]) < 50
    assert h["loss"][-1] == pytest.approx(trainer.evaluate(X, y)["loss"], rel=1e-12)


def test_lbfgs_says_when_its_steps_fall_below_float32_resolution():
    """A float32 model under L-BFGS: once SciPy's (float64) steps are smaller than the weights'
    float32 spacing, every trial point rounds to the same weights, the loss does not move and
    SciPy reports convergence with a gradient entry of 6.6e7. That was silent."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)) * 10, rng.poisson(5, size=(100, 1)).astype(float)
    for dtype in ("float32", "float64"):
        model = bp.Sequential([bp.Dense(5, 1)], dtype=dtype, seed=0)
        trainer = bp.Trainer(model, bp.Poisson(), "lbfgs", epochs=100, seed=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = trainer.fit(X, y)
        stalled = [w for w in caught if "resolution" in str(w.message)]
        if dtype == "float32":
            assert len(stalled) == 1 and "float64" in str(stalled[0].message)
            assert h["loss"][-1] > 1e6  # where it stopped
        else:
            assert not stalled and h["loss"][-1] < 0  # float64 trains on


def test_an_lbfgs_divergence_gives_advice_that_applies_to_lbfgs():
    """L-BFGS has no learning rate and refuses clipping; its divergence error advised both."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 5)) * 30, rng.poisson(5, size=(100, 1)).astype(float)
    model = bp.Sequential([bp.Dense(5, 1)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, bp.Poisson(), "lbfgs", epochs=100, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in exp
        with pytest.raises(bp.TrainingDivergedError, match="epoch 2") as err:
            trainer.fit(X, y)
    message = str(err.value)
    assert "learning rate" not in message and "clip" not in message
    assert "rescale the inputs" in message and "last iteration" in message
    assert np.isfinite(trainer.evaluate(X, y)["loss"])  # the accepted point, kept
