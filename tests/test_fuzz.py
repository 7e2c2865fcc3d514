"""Fuzzing with hypothesis: random shapes, dtypes and values through layers, losses, models.

The property: every call either succeeds with an output of the promised shape and dtype, or
raises a ValueError whose message says what was wrong. Nothing else escapes.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import backprop as bp

FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=32)
LAYERS = [
    lambda d: bp.Dense(d, 3),
    lambda d: bp.ReLU(),
    lambda d: bp.Sigmoid(),
    lambda d: bp.Tanh(),
    lambda d: bp.ELU(),
    lambda d: bp.GELU(),
    lambda d: bp.SiLU(),
    lambda d: bp.Softplus(),
    lambda d: bp.Softmax(),
    lambda d: bp.LeakyReLU(),
    lambda d: bp.PReLU(d),
    lambda d: bp.Dropout(0.3, seed=0),
    lambda d: bp.BatchNorm(d),
    lambda d: bp.LayerNorm(d),
    lambda d: bp.Identity(),
]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    which=st.integers(0, len(LAYERS) - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=st.tuples(st.integers(2, 6), st.integers(1, 5)),
    data=st.data(),
)
def test_layers_on_random_values(which, dtype, shape, data):
    x = data.draw(arrays(dtype, shape, elements=st.floats(-1e4, 1e4, width=32)))
    model = bp.Sequential([LAYERS[which](shape[1])], dtype=dtype, seed=0)
    with np.errstate(over="ignore", under="ignore"):
        out = model.forward(x, training=True)
        dx = model.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    assert np.all(np.isfinite(out))


@SETTINGS
@given(
    which=st.integers(0, len(LAYERS) - 1),
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
    width=st.integers(1, 5),
)
def test_layers_reject_wrong_shapes_with_value_errors(which, shape, width):
    layer = LAYERS[which](width)
    x = np.zeros(shape, dtype=np.float32)
    try:
        out = layer.forward(x, training=True)
    except ValueError as exc:
        assert str(exc)
        return
    # Layers act on any batch of rank >= 2 (issue 12): the batch and middle axes are kept.
    assert x.ndim >= 2 and out.ndim == x.ndim and out.shape[:-1] == x.shape[:-1]


@SETTINGS
@given(
    kind=st.sampled_from(["int", "bool", "complex", "object", "str", "float16"]),
    n=st.integers(1, 4),
)
def test_models_accept_real_numbers_only(kind, n):
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    x = {
        "int": np.ones((n, 3), dtype=np.int64),
        "bool": np.ones((n, 3), dtype=bool),
        "complex": np.ones((n, 3), dtype=complex),
        "object": np.array([[object()] * 3] * n, dtype=object),
        "str": np.array([["a"] * 3] * n),
        "float16": np.ones((n, 3), dtype=np.float16),
    }[kind]
    try:
        out = model.forward(x)
    except ValueError as exc:
        assert kind in ("complex", "object", "str") and "real numbers" in str(exc)
        return
    assert out.dtype == np.float32 and out.shape == (n, 2)


LOSSES = [
    bp.MeanSquaredError,
    bp.MeanAbsoluteError,
    bp.Huber,
    bp.SoftmaxCrossEntropy,
    bp.BinaryCrossEntropy,
]


@SETTINGS
@given(
    which=st.integers(0, len(LOSSES) - 1),
    pred_shape=st.tuples(st.integers(1, 5), st.integers(1, 4)),
    target=st.one_of(
        arrays(np.float64, st.tuples(st.integers(0, 5)), elements=FLOATS),
        arrays(np.float64, st.tuples(st.integers(0, 5), st.integers(1, 4)), elements=FLOATS),
        arrays(np.int64, st.tuples(st.integers(0, 5)), elements=st.integers(-2, 5)),
    ),
    data=st.data(),
)
def test_losses_on_random_inputs(which, pred_shape, target, data):
    pred = data.draw(arrays(np.float64, pred_shape, elements=st.floats(-50, 50)))
    loss = LOSSES[which]()
    try:
        value = loss.forward(pred, target)
    except ValueError as exc:
        assert str(exc)
        return
    assert np.isfinite(value) or which < 3  # squared errors of huge targets may overflow
    assert loss.backward().shape == pred.shape


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 12),
    d=st.integers(0, 4),
    kind=st.sampled_from(["classifier", "regressor"]),
    data=st.data(),
)
def test_estimators_on_random_data(n, d, kind, data):
    """fit/predict on random shapes and values: it works, or a ValueError says why."""
    import warnings

    X = data.draw(arrays(np.float64, (n, d), elements=st.floats(-1e6, 1e6)))
    if kind == "classifier":
        y = data.draw(arrays(np.int64, (n,), elements=st.integers(0, 2)))
        est = bp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    else:
        y = data.draw(arrays(np.float64, (n,), elements=st.floats(-1e3, 1e3)))
        est = bp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    X0, y0 = X.copy(), y.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X, y)
        except ValueError as exc:
            assert str(exc)
            return
        finally:
            np.testing.assert_array_equal(X, X0)
            np.testing.assert_array_equal(y, y0)
        pred = est.predict(X)
    assert pred.shape[0] == n
