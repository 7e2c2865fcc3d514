"""The shape protocol (issue 12): layers build themselves from the input shape, any rank."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop as bp


class Flat(bp.Layer):
    """A test-local shape-changing layer: ``(n, *s) -> (n, prod(s))`` (not registered)."""

    def build(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, training=False):
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        return grad_out.reshape(len(grad_out), *self.in_shape)


def test_dense_infers_its_input_width_and_keeps_the_two_argument_form():
    model = bp.Sequential([bp.Dense(6), bp.ReLU(), bp.Dense(3)], input_shape=(4,), seed=0)
    assert model.built and model.in_shape == (4,) and model.out_shape == (3,)
    shapes = {k: v.shape for k, v in model.parameters().items()}
    assert shapes == {"0.W": (4, 6), "0.b": (6,), "2.W": (6, 3), "2.b": (3,)}
    old = bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 3)], seed=0)
    assert old.built and old.in_shape == (4,)  # the first layer fixes the shape
    assert bp.Dense(in_features=4, out_features=6).config() == {
        "in_features": 4,
        "out_features": 6,
        "init": "auto",
        "bias_init": "zeros",
    }
    # the old signature Dense(in_features, out_features), positional or by keyword
    assert bp.Dense(64, out_features=10).config()["in_features"] == 64
    assert bp.Dense(64, 10).params["W"].shape == (64, 10)  # and it owns its arrays at once
    assert bp.Dense(10).config() == {"out_features": 10, "init": "auto", "bias_init": "zeros"}
    with pytest.raises(TypeError, match="out_features"):
        bp.Dense()
    with pytest.raises(TypeError, match="in_features twice"):
        bp.Dense(3, 4, in_features=3)
    with pytest.raises(TypeError, match="3 sizes"):
        bp.Dense(1, 2, 3)


@pytest.mark.parametrize("fit", [False, True])
def test_same_seed_gives_the_same_weights_whether_the_shape_is_given_or_inferred(fit, rng):
    def layers():
        return [bp.Dense(7), bp.ReLU(), bp.Dropout(0.2), bp.BatchNorm(), bp.Dense(3)]

    given = bp.Sequential(layers(), input_shape=(5,), seed=11)
    inferred = bp.Sequential(layers(), seed=11)
    assert not inferred.built and inferred.parameters() == {}
    X, y = rng.normal(size=(20, 5)), rng.integers(0, 3, 20)
    if fit:  # built by the Trainer from the data, then trained: the runs agree bitwise
        for m in (given, inferred):
            bp.Trainer(m, "cross_entropy", bp.SGD(0.1), batch_size=4, epochs=2, seed=0).fit(X, y)
    else:
        inferred.forward(X)
    assert inferred.in_shape == (5,)
    assert np.array_equal(given.flat_parameters, inferred.flat_parameters)
    assert np.array_equal(given.predict(X), inferred.predict(X))
    other = bp.Sequential(layers(), input_shape=(5,), seed=12)
    assert not np.array_equal(given.flat_parameters, other.flat_parameters)


def test_build_is_idempotent_for_the_same_shape_and_refuses_another():
    layer = bp.Dense(3)
    assert not layer.built
    assert layer.build((4,)) == (3,) and layer.built and layer.in_shape == (4,)
    assert layer.build((4,)) == (3,)
    with pytest.raises(ValueError, match=r"built for input shape \(4,\).*\(5,\)"):
        layer.build((5,))
    relu = bp.ReLU()
    assert relu.build((2, 3)) == (2, 3) and relu.out_shape == (2, 3)
    with pytest.raises(ValueError, match="positive integers"):
        bp.ReLU().build((0, 3))


def test_initialize_builds_and_owns_arrays_for_stand_alone_use(rng):
    layer = bp.Dense(4)
    with pytest.raises(RuntimeError, match="initialize"):
        layer.forward(np.zeros((2, 3)))
    assert layer.initialize((2, 3), dtype="float64", seed=0) == (2, 4)
    assert layer.params["W"].shape == (3, 4) and layer.params["W"].dtype == np.float64
    twin = bp.Dense(4)
    twin.initialize((2, 3), dtype="float64", seed=0)
    assert np.array_equal(layer.params["W"], twin.params["W"])
    x = rng.normal(size=(5, 2, 3))
    assert layer.forward(x).shape == (5, 2, 4)
    bn = bp.BatchNorm()
    bn.initialize((4, 4, 3))
    assert bn.buffers["running_mean"].shape == (3,) and bn.params["gamma"].shape == (3,)


def test_normalization_and_prelu_infer_their_width_and_keep_n_features():
    model = bp.Sequential(
        [bp.Dense(6), bp.BatchNorm(), bp.PReLU(), bp.LayerNorm(), bp.Dense(2)], input_shape=(3,)
    )
    shapes = {k: v.shape for k, v in {**model.parameters(), **model.buffers()}.items()}
    assert shapes["1.gamma"] == shapes["1.running_var"] == shapes["2.alpha"] == (6,)
    assert shapes["3.beta"] == (6,)
    assert bp.BatchNorm(6).config() == {"n_features": 6, "momentum": 0.9, "eps": 1e-5}
    assert bp.LayerNorm().config() == {"eps": 1e-5}


def test_dense_acts_on_the_last_axis(rng):
    layer = bp.Dense(4)
    layer.initialize((3, 5), seed=1)
    x = rng.normal(size=(2, 3, 5))
    out = layer.forward(x)
    expected = np.stack([x[i] @ layer.params["W"] + layer.params["b"] for i in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_batchnorm_normalizes_over_every_axis_but_the_last(rng):
    layer = bp.BatchNorm(momentum=0.0)
    layer.initialize((4, 4, 3))
    x = rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(6, 4, 4, 3))
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=(0, 1, 2)), 1, atol=1e-4)
    m = 6 * 4 * 4  # values per channel; the running variance is the unbiased one
    np.testing.assert_allclose(
        layer.buffers["running_var"], x.reshape(-1, 3).var(axis=0) * m / (m - 1)
    )
    ln = bp.LayerNorm()
    ln.initialize((4, 3))
    y = ln.forward(x[:, 0])
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-10)


@pytest.mark.parametrize(
    "middle",
    [
        [bp.Tanh(), bp.LayerNorm()],
        [bp.BatchNorm(), bp.PReLU()],
        [bp.Softmax(), bp.GELU(), bp.Dropout(0.3)],
        [bp.ELU(), bp.SiLU()],
    ],
    ids=["tanh-layernorm", "batchnorm-prelu", "softmax-gelu-dropout", "elu-silu"],
)
def test_gradients_on_3d_input(middle, rng):
    layers = [bp.Dense(4), *middle, Flat(), bp.Dense(2)]
    model = bp.Sequential(layers, input_shape=(3, 5), dtype="float64", seed=2)
    for layer in model.layers:
        if "alpha" in layer.params:
            layer.params["alpha"][...] = np.linspace(-0.3, 0.6, 4)
        if "gamma" in layer.params:
            layer.params["gamma"][...] = rng.uniform(0.5, 2.0, 4)
            layer.params["beta"][...] = rng.normal(size=4)
    assert [la.out_shape for la in model.layers][0] == (3, 4)
    X = rng.normal(size=(6, 3, 5))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, rng.normal(size=(6, 2)))
    assert report.passed, str(report)
    assert {c.name for c in report.checks} >= {"0.W", "input"}


def test_a_shape_mismatch_names_both_layers_and_both_shapes():
    with pytest.raises(ValueError) as info:
        bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(5, 2)])
    msg = str(info.value)
    assert "layer 2 (Dense) expects 5 features but layer 0 (Dense) outputs 6" in msg
    assert "(..., 5)" in msg and "(6,)" in msg
    with pytest.raises(ValueError, match=r"layer 1 \(Flat\) outputs \(6,\)"):
        bp.Sequential([bp.Identity(), Flat(), bp.Dense(3, 1)], input_shape=(2, 3))
    with pytest.raises(
        ValueError,
        match=r"layer 1 \(Residual\) cannot take shape \(2,\) from layer 0 \(Dense\): "
        r"Residual: its layers map input shape \(2,\) to \(3,\)",
    ):
        bp.Sequential([bp.Dense(2), bp.Residual([bp.Dense(3)])], input_shape=(4,))


def test_summary_shows_output_shapes_and_counts():
    model = bp.Sequential([bp.Dense(4), bp.Tanh(), Flat(), bp.Dense(2)], input_shape=(3, 5))
    text = model.summary()
    assert "(None, 3, 4)" in text and "(None, 12)" in text and "(None, 2)" in text
    assert "total parameters: 50" in text  # (5*4 + 4) + (12*2 + 2)
    lazy = bp.Sequential([bp.Dense(4)])
    assert "not built" in lazy.summary()


def test_trainer_evaluate_and_predict_take_nd_input(rng):
    model = bp.Sequential([bp.Dense(6), bp.ReLU(), Flat(), bp.Dense(3)], seed=0)
    X, y = rng.normal(size=(30, 2, 4)).astype(np.float32), rng.integers(0, 3, 30)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=8, epochs=3, seed=0)
    history = trainer.fit(X, y, validation_split=0.2)
    assert len(history["val_loss"]) == 3 and model.in_shape == (2, 4)
    assert set(trainer.evaluate(X, y)) == {"loss", "accuracy"}
    assert trainer.predict(X).shape == (30, 3)
    with pytest.raises(ValueError, match=r"samples of shape \(4, 2\).*\(2, 4\)"):
        trainer.evaluate(X.reshape(30, 4, 2), y)
    with pytest.raises(ValueError, match="3-D"):
        model.forward(X.reshape(30, 8))


class Lookup(bp.Layer):
    """A test-local integer-input layer: row ``x`` of a table (integer_input = True)."""

    integer_input = True

    def build(self, in_shape):
        return (*in_shape, 2)

    def param_specs(self):
        return {"T": ((5, 2), "weight")}

    def reset_parameters(self, rng):
        self.params["T"][...] = rng.normal(size=(5, 2))

    def forward(self, x, training=False):
        assert x.dtype.kind == "i", x.dtype  # never cast to float on the way in
        if training:
            self._x = x
        return self.params["T"][x]

    def backward_params_only(self, grad_out):
        self.grads["T"][...] = 0
        np.add.at(self.grads["T"], self._x, grad_out)

    def backward(self, grad_out):
        self.backward_params_only(grad_out)
        return np.zeros(self._x.shape)


def test_integer_input_passes_uncast_to_a_first_layer_that_asks_for_it(rng):
    model = bp.Sequential([Lookup(), Flat(), bp.Dense(2)], input_shape=(3,), seed=0)
    X = rng.integers(0, 5, size=(12, 3))
    y = rng.integers(0, 2, 12)
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), batch_size=4, epochs=2, seed=0)
    trainer.fit(X, y)
    assert trainer.predict(X).shape == (12, 2)
    before = model.parameters()["0.T"].copy()
    trainer.fit(X, y, epochs=1)
    assert not np.array_equal(before, model.parameters()["0.T"])  # the table does learn


def test_an_iterable_of_batches_builds_the_model_from_its_first_batch(rng):
    X, y = rng.normal(size=(24, 2, 3)), rng.integers(0, 2, 24)
    batches = [(X[i : i + 8], y[i : i + 8]) for i in range(0, 24, 8)]
    model = bp.Sequential([bp.Dense(4), bp.Tanh(), Flat(), bp.Dense(2)], seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), epochs=2, seed=0)
    trainer.fit(batches)
    twin = bp.Sequential([bp.Dense(4), bp.Tanh(), Flat(), bp.Dense(2)], input_shape=(2, 3), seed=0)
    bp.Trainer(twin, "cross_entropy", bp.SGD(0.1), epochs=2, seed=0).fit(batches)
    assert model.in_shape == (2, 3)
    assert np.array_equal(model.flat_parameters, twin.flat_parameters)  # and it did train:
    assert not np.array_equal(
        model.flat_parameters,
        bp.Sequential(
            [bp.Dense(4), bp.Tanh(), Flat(), bp.Dense(2)], input_shape=(2, 3), seed=0
        ).flat_parameters,
    )


def test_a_layer_that_skips_the_base_init_gets_a_clear_error():
    class Forgetful(bp.Layer):
        def __init__(self):  # forgets super().__init__()
            self.k = 1

    with pytest.raises(TypeError, match=r"layer 0 \(Forgetful\).*super\(\).__init__\(\)"):
        bp.Sequential([Forgetful(), bp.Dense(2)], input_shape=(3,))


ANY_RANK = {
    "Dense": lambda: bp.Dense(3),
    "Identity": bp.Identity,
    "Sigmoid": bp.Sigmoid,
    "Tanh": bp.Tanh,
    "ReLU": bp.ReLU,
    "LeakyReLU": bp.LeakyReLU,
    "ELU": bp.ELU,
    "PReLU": bp.PReLU,
    "GELU": bp.GELU,
    "SiLU": bp.SiLU,
    "Softplus": bp.Softplus,
    "Softmax": bp.Softmax,
    "Dropout": lambda: bp.Dropout(0.3),
    "BatchNorm": bp.BatchNorm,
    "LayerNorm": bp.LayerNorm,
    "Residual": lambda: bp.Residual([bp.Dense(4), bp.Tanh(), bp.Dense(5)]),
}


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(ANY_RANK)),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(lambda s: (*s, 5)),
    n=st.integers(2, 5),
)
def test_every_layer_keeps_the_batch_and_middle_axes_of_any_rank(name, shape, n):
    model = bp.Sequential([ANY_RANK[name]()], input_shape=shape, dtype="float64", seed=0)
    x = np.random.default_rng(0).normal(size=(n, *shape))
    out = model.forward(x, training=True)
    width = 3 if name == "Dense" else 5
    assert out.shape == (n, *shape[:-1], width) and model.out_shape == (*shape[:-1], width)
    assert model.backward(np.ones_like(out)).shape == x.shape
    for key, g in model.gradients().items():
        assert g.shape == model.parameters()[key].shape


def test_a_build_the_model_refuses_leaves_no_layer_built(rng):
    """A first forward whose shape a later layer refused left the layers before it built for
    that shape: the model was not built, yet the right data then failed with "Flatten was built
    for input shape (3,)", and only new layer objects could recover."""
    layers = [bp.Flatten(), bp.Residual([bp.LayerNorm(), bp.Tanh()]), bp.Reshape((2, -1))]
    model = bp.Sequential([*layers, bp.LSTM(3), bp.Dense(2)], dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"layer 2 \(Reshape\) cannot take shape \(3,\)"):
        model.forward(np.ones((2, 3)))
    assert model.forward(rng.normal(size=(2, 4))).shape == (2, 2)
    assert model.layers[0].in_shape == (4,) and model.layers[1].layers[0].in_shape == (4,)
    # an inferred width is forgotten too: Dense(5) learnt 3 inputs in the refused build
    bad = bp.Sequential([bp.Flatten(), bp.Dense(5), bp.Reshape((2, -1))], seed=0)
    with pytest.raises(ValueError, match=r"layer 2 \(Reshape\) cannot take shape \(5,\)"):
        bad.forward(np.ones((2, 3)))
    assert not any(layer.built for layer in bad.layers) and bad.layers[1].in_features is None
