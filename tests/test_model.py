"""Sequential: flat storage, naming, size checks, whole-model gradients with penalties, seeds."""

import numpy as np
import pytest

import backprop as bp


def mlp(dtype="float64", seed=0, **kw):
    return bp.Sequential(
        [
            bp.Dense(4, 6),
            bp.ReLU(),
            bp.Dropout(0.25),
            bp.BatchNorm(6),
            bp.Dense(6, 5),
            bp.Tanh(),
            bp.LayerNorm(5),
            bp.Dense(5, 3),
        ],
        dtype=dtype,
        seed=seed,
        **kw,
    )


MIXES = {
    "relu-dropout-batchnorm": lambda: mlp(),
    "sigmoid-prelu": lambda: bp.Sequential(
        [bp.Dense(4, 5), bp.Sigmoid(), bp.Dense(5, 5), bp.PReLU(5), bp.Dense(5, 3)],
        dtype="float64",
        seed=1,
    ),
    "gelu-silu-softplus-elu": lambda: bp.Sequential(
        [
            bp.Dense(4, 6),
            bp.GELU(),
            bp.Dense(6, 6),
            bp.SiLU(),
            bp.Dense(6, 4),
            bp.Softplus(),
            bp.Dense(4, 4),
            bp.ELU(),
            bp.Dense(4, 3),
        ],
        dtype="float64",
        seed=2,
    ),
    "leaky-softmax-output": lambda: bp.Sequential(
        [bp.Dense(4, 6), bp.LeakyReLU(0.2), bp.Dense(6, 3), bp.Softmax()], dtype="float64", seed=3
    ),
}


@pytest.mark.parametrize("mix", list(MIXES))
@pytest.mark.parametrize(
    "loss, target",
    [("ce", "labels"), ("bce", "multilabel"), ("mse", "real"), ("huber", "real")],
)
def test_whole_model_gradients_with_penalties(mix, loss, target, rng):
    model = MIXES[mix]()
    X = rng.normal(size=(8, 4))
    y = {
        "labels": rng.integers(0, 3, 8),
        "multilabel": rng.integers(0, 2, (8, 3)),
        "real": rng.normal(size=(8, 3)),
    }[target]
    loss_obj = {
        "ce": bp.SoftmaxCrossEntropy(),
        "bce": bp.BinaryCrossEntropy(),
        "mse": bp.MeanSquaredError(),
        "huber": bp.Huber(0.5),
    }[loss]
    w = rng.uniform(0.5, 2.0, 8)
    report = bp.check_gradients(model, loss_obj, X, y, sample_weight=w, l1=1e-2, l2=1e-1)
    assert report.passed, str(report)


def test_penalties_are_part_of_the_check(rng):
    """Claiming l2 in the check but not applying it in the analytic gradient must fail."""
    model = mlp()
    X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
    import backprop.gradcheck as gc

    real = gc.add_penalty_gradient
    try:
        gc.add_penalty_gradient = lambda w, g, l1, l2: None
        assert not bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, y, l2=0.5).passed
    finally:
        gc.add_penalty_gradient = real
    assert bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, y, l2=0.5).passed


def test_parameters_are_views_into_one_flat_buffer_weights_first():
    model = mlp()
    params, grads = model.parameters(), model.gradients()
    assert list(params) == [
        "0.W",
        "0.b",
        "3.gamma",
        "3.beta",
        "4.W",
        "4.b",
        "6.gamma",
        "6.beta",
        "7.W",
        "7.b",
    ]
    for key, p in params.items():
        assert np.shares_memory(p, model.flat_parameters)
        assert np.shares_memory(grads[key], model.flat_gradients)
    n_weights = 4 * 6 + 6 * 5 + 5 * 3
    assert model.n_weights == n_weights
    weights = model.flat_parameters[:n_weights]
    assert np.shares_memory(weights, params["0.W"]) and np.shares_memory(weights, params["7.W"])
    assert not np.shares_memory(weights, params["0.b"])
    assert model.n_parameters == sum(p.size for p in params.values())
    model.flat_parameters[:] = 0.5  # writing the flat vector writes every layer
    assert np.all(model.layers[4].params["W"] == 0.5)


def test_size_mismatch_names_the_layers():
    with pytest.raises(
        ValueError, match=r"layer 2 \(Dense\) expects 5 features but layer 0 \(Dense\) outputs 6"
    ):
        bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(5, 2)])
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) expects 3 features"):
        bp.Sequential([bp.Dense(4, 6), bp.BatchNorm(3)])


def test_model_rejects_wrong_input():
    model = mlp()
    with pytest.raises(ValueError, match="expected 4 features, got 3"):
        model.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        model.forward(np.zeros(4))
    with pytest.raises(ValueError, match="real numbers"):
        model.forward(np.array([["a"] * 4]))


def test_float32_end_to_end_and_no_upcast(rng):
    model = mlp(dtype="float32")
    X = rng.normal(size=(16, 4)).astype(np.float32)
    out = model.forward(X, training=True)
    assert out.dtype == np.float32
    loss = bp.SoftmaxCrossEntropy()
    loss.forward(out, rng.integers(0, 3, 16))
    model.backward(loss.backward())
    assert model.flat_gradients.dtype == np.float32
    assert model.flat_parameters.dtype == np.float32
    assert all(b.dtype == np.float32 for b in model.buffers().values())
    assert model.predict(X).dtype == np.float32


def test_same_seed_same_weights_and_dropout_does_not_change_init():
    a = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 2)], seed=7)
    b = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 2)], seed=7)
    c = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dropout(0.5), bp.Dense(8, 2)], seed=7)
    d = bp.Sequential([bp.Dense(4, 8), bp.ReLU(), bp.Dense(8, 2)], seed=8)
    np.testing.assert_array_equal(a.flat_parameters, b.flat_parameters)
    np.testing.assert_array_equal(a.flat_parameters, c.flat_parameters)
    assert not np.array_equal(a.flat_parameters, d.flat_parameters)


def test_seed_accepts_a_generator_and_rejects_junk():
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    a = bp.Sequential([bp.Dense(3, 2)], seed=g1)
    b = bp.Sequential([bp.Dense(3, 2)], seed=g2)
    np.testing.assert_array_equal(a.flat_parameters, b.flat_parameters)
    with pytest.raises(ValueError, match="seed"):
        bp.Sequential([bp.Dense(3, 2)], seed="abc")


def test_auto_init_follows_the_activation():
    relu = bp.Sequential([bp.Dense(400, 300), bp.ReLU()], seed=0)
    tanh = bp.Sequential([bp.Dense(400, 300), bp.Tanh()], seed=0)
    # uniform(-a, a) has std a / sqrt(3): He a = sqrt(6/400), Glorot a = sqrt(6/700)
    assert relu.layers[0].params["W"].std() == pytest.approx(
        np.sqrt(6 / 400) / np.sqrt(3), rel=0.02
    )
    assert tanh.layers[0].params["W"].std() == pytest.approx(
        np.sqrt(6 / 700) / np.sqrt(3), rel=0.02
    )
    explicit = bp.Sequential([bp.Dense(400, 300, init="he_normal"), bp.Tanh()], seed=0)
    assert explicit.layers[0].params["W"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


def test_state_dict_round_trip_and_validation(rng):
    model = mlp()
    model.forward(rng.normal(size=(10, 4)), training=True)  # moves the running statistics
    state = model.state_dict()
    assert "3.running_mean" in state and "3.running_var" in state
    state["0.W"][0, 0] = 99.0  # a copy: the model is unchanged
    assert model.parameters()["0.W"][0, 0] != 99.0
    other = mlp(seed=5)
    other.load_state_dict(state)
    np.testing.assert_array_equal(
        other.buffers()["3.running_mean"], model.buffers()["3.running_mean"]
    )
    assert other.parameters()["0.W"][0, 0] == 99.0
    assert np.shares_memory(other.parameters()["0.W"], other.flat_parameters)  # written in place
    bad = dict(state)
    bad["0.W"] = np.zeros((3, 3))
    before = other.flat_parameters.copy()
    with pytest.raises(ValueError, match=r"0.W: expected shape \(4, 6\), got \(3, 3\)"):
        other.load_state_dict(bad)
    np.testing.assert_array_equal(other.flat_parameters, before)  # nothing written
    del bad["0.W"]
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict(bad)


def test_load_state_dict_refuses_float64_values_a_float32_model_cannot_hold():
    """A finite float64 value beyond float32's range was written as inf (a RuntimeWarning at
    most); ``model.copy(dtype="float32")`` of such a float64 model did the same. NaN and inf
    given are kept as given: only the silent change is refused."""
    small = bp.Sequential([bp.Dense(3, 4), bp.BatchNorm(4)], seed=0)
    before = small.flat_parameters.copy()
    state = {k: v.astype(np.float64) for k, v in small.state_dict().items()}
    state["0.W"][1, 2] = -1e300
    with pytest.raises(ValueError, match=r"0.W .*-1e\+300 at index 6.*float32"):
        small.load_state_dict(state)
    np.testing.assert_array_equal(small.flat_parameters, before)  # nothing written
    state["0.W"][1, 2] = 0.5
    state["1.running_var"][0] = 1e39
    with pytest.raises(ValueError, match="1.running_var"):
        small.load_state_dict(state)
    big = bp.Sequential([bp.Dense(3, 4)], dtype="float64", seed=0)
    big.parameters()["0.b"][0] = 1e200
    with pytest.raises(ValueError, match="0.b"):
        big.copy(dtype="float32")
    state["1.running_var"][0] = 1.0
    state["0.b"][0] = np.nan  # not a value the cast changes
    small.load_state_dict(state)
    assert np.isnan(small.parameters()["0.b"][0])


def test_buffer_bounds_are_checked_on_the_values_the_model_will_hold():
    """A float64 scale of 1e-50 passed the check "scale > 0", then became 0.0 in the float32
    model: Standardize divided by zero (inf predictions)."""
    model = bp.Sequential([bp.Standardize(3), bp.Dense(2)], input_shape=(3,), seed=0)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    state["0.scale"][0] = 1e-50
    with pytest.raises(ValueError, match=r"0.scale .* must be > 0, got 0 at index 0"):
        model.load_state_dict(state)
    assert np.all(model.buffers()["0.scale"] == 1)  # nothing written


def test_chunked_predict_equals_forward(rng):
    model = mlp(dtype="float32")
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(X, batch_size=64), model.forward(X), rtol=1e-6)


def test_frozen_layer_reports_zero_gradient_and_is_left_out_of_trainable_slices(rng):
    model = mlp()
    model.layers[0].trainable = False
    X = rng.normal(size=(8, 4))
    loss = bp.SoftmaxCrossEntropy()
    loss.forward(model.forward(X, training=True), rng.integers(0, 3, 8))
    model.backward(loss.backward())
    assert np.all(model.gradients()["0.W"] == 0) and np.all(model.gradients()["0.b"] == 0)
    covered = np.zeros(model.n_parameters, bool)
    for s in model.trainable_slices():
        covered[s] = True
    slices = model.param_slices()
    assert not covered[slices["0.W"]].any() and not covered[slices["0.b"]].any()
    assert covered[slices["4.W"]].all() and covered[slices["7.b"]].all()
    assert "no" in model.summary().splitlines()[2]


def test_summary_counts_parameters():
    text = mlp().summary()
    assert "total parameters: 105" in text  # (24+6) + 12 + (30+5) + 10 + (15+3)
    assert "(None, 3)" in text


def test_copy_is_independent_and_can_change_dtype():
    model = mlp(dtype="float32")
    twin = model.copy(dtype="float64")
    assert twin.dtype == np.float64
    np.testing.assert_allclose(twin.flat_parameters, model.flat_parameters)
    twin.flat_parameters[:] = 0
    assert np.any(model.flat_parameters != 0)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copies_keep_parameters_as_views_into_the_flat_buffer(how, rng):
    import copy
    import pickle

    model = mlp(dtype="float32")
    twin = pickle.loads(pickle.dumps(model)) if how == "pickle" else copy.deepcopy(model)
    for key, p in twin.parameters().items():
        assert np.shares_memory(p, twin.flat_parameters), key
        assert np.shares_memory(twin.gradients()[key], twin.flat_gradients), key
        np.testing.assert_array_equal(p, model.parameters()[key])
    assert twin.layers[2].rng is twin.rng  # dropout still draws from the model's stream
    X = rng.normal(size=(8, 4)).astype(np.float32)
    twin.flat_parameters *= 2  # an update of the flat vector reaches the layers
    np.testing.assert_array_equal(twin.layers[0].params["W"], 2 * model.layers[0].params["W"])
    assert not np.array_equal(twin.forward(X), model.forward(X))


def test_load_state_dict_refuses_a_model_its_first_forward_would_reinitialize():
    # Layers built in another model, gathered in a Sequential that is not built (its first
    # layer fixes no input shape): the values written used to be re-drawn at the first forward
    import copy

    X = np.random.default_rng(0).normal(size=(3, 16))
    layers = [bp.Reshape((4, 4, 1)), bp.Conv2D(2, 3), bp.Flatten(), bp.Dense(3)]
    trained = bp.Sequential(layers, dtype="float64", seed=1)
    trained.predict(X)
    copied = bp.Sequential(copy.deepcopy(trained.layers), dtype="float64", seed=0)
    with pytest.raises(ValueError, match="not built"):
        copied.load_state_dict(trained.state_dict())
    built = bp.Sequential(copy.deepcopy(trained.layers), input_shape=(16,), dtype="float64")
    built.load_state_dict(trained.state_dict())
    np.testing.assert_array_equal(built.predict(X), trained.predict(X))


@pytest.mark.parametrize("batch_size", [-1, -3, 0, 2.0])
def test_predict_rejects_a_batch_size_that_is_not_a_positive_integer(batch_size):
    # batch_size=-1 used to fill rows n-1.. of np.empty with nothing: uninitialized memory came back
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    X = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    with pytest.raises(
        ValueError, match=rf"batch_size must be a positive integer, got {batch_size}"
    ):
        model.predict(X, batch_size=batch_size)
    trainer = bp.Trainer(model, bp.SoftmaxCrossEntropy(), bp.SGD(lr=0.1))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        trainer.predict(X, batch_size=batch_size)
    dropped = bp.Sequential([bp.Dense(3, 2), bp.Dropout(0.5)], seed=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        bp.mc_dropout_predict(dropped, X, 2, batch_size=batch_size)
    # Cartography stored np.empty rows as probabilities; the loss landscape gave NaN
    from backprop.cartography import Cartography
    from backprop.landscape import loss_along_line

    y = np.arange(5) % 2
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Cartography(X, y, batch_size=batch_size)
    start = model.flat_parameters.copy()
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        loss_along_line(model, bp.SoftmaxCrossEntropy(), X, y, start, batch_size=batch_size)


def test_a_model_whose_layers_another_sequential_took_refuses_to_run(tmp_path, rng):
    """A second Sequential built from the same layer objects re-bound them to its own buffers
    and dropout stream: the first model then predicted with the second one's weights, and
    training it changed nothing (its optimizer stepped a buffer no layer read; loss and
    predictions stayed put, gradient norm 0), all without a word. The first model now refuses,
    naming the layer; the second, and rebuilding from one list of layers, work as before."""
    X, y = rng.normal(size=(16, 4)), rng.normal(size=(16, 1))
    layers = [bp.Dense(4, 6), bp.Dropout(0.1), bp.Dense(1)]
    first = bp.Sequential(layers, dtype="float64", seed=0)
    second = bp.Sequential(layers, dtype="float64", seed=1)
    trainer = bp.Trainer(first, "mse", bp.SGD(0.1), epochs=1, batch_size=16)
    for use in (
        lambda: first.predict(X),
        lambda: trainer.fit(X, y),
        first.state_dict,
        lambda: bp.save(first, tmp_path / "first.npz"),
    ):
        with pytest.raises(RuntimeError, match=r"layer 0 \(Dense\) was taken by another"):
            use()
    assert second.predict(X).shape == (16, 1)
    bp.Trainer(second, "mse", bp.SGD(0.1), epochs=1, batch_size=16).fit(X, y)
    assert layers[1].rng is second.rng
    # a layer taken by layer.initialize, or only a Dropout (the model's stream), counts too
    solo = bp.Sequential([bp.Dense(4, 3), drop := bp.Dropout(0.5)], dtype="float64", seed=0)
    bp.Sequential([bp.Dense(4, 3), drop], seed=0)
    with pytest.raises(RuntimeError, match=r"layer 1 \(Dropout\) was taken"):
        solo.forward(X, training=True)
    second.layers[2].initialize((6,), seed=0)
    with pytest.raises(RuntimeError, match=r"layer 2 \(Dense\) was taken"):
        second.predict(X)
    # a parameter-free layer holds no model's state: sharing it is harmless
    relu = bp.ReLU()
    a = bp.Sequential([bp.Dense(4, 3), relu], seed=0)
    bp.Sequential([bp.Dense(4, 3), relu], seed=0)
    assert a.predict(X).shape == (16, 3)


def test_copies_and_nested_layers_keep_their_own_model(rng):
    """model.copy(), deepcopy and rebuilding nested containers claim their own layers; the
    original keeps working (the ownership mark is per model, not per class)."""
    import copy

    X = rng.normal(size=(5, 4))
    model = bp.Sequential([bp.Dense(4, 6), bp.Residual([bp.Dense(6), bp.Tanh()])], seed=0)
    for twin in (model.copy(), copy.deepcopy(model), bp.Sequential(copy.deepcopy(model.layers))):
        twin.predict(X)
        model.predict(X)
    inner = model.layers[1].layers[0]
    bp.Sequential([bp.Dense(4, 6), inner], seed=0)
    with pytest.raises(RuntimeError, match=r"layer 1\.0 \(Dense\) was taken"):
        model.predict(X)
