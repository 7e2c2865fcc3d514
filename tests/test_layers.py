"""Every layer: finite-difference gradients in float64, shapes, dtypes, errors, no input mutation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop as bp

D = 5  # feature width used by the width-preserving layers below


def make_layers():
    """One instance of every layer type, each mapping D features to some width."""
    return {
        "Dense": bp.Dense(D, 3),
        "Identity": bp.Identity(),
        "Sigmoid": bp.Sigmoid(),
        "Tanh": bp.Tanh(),
        "ReLU": bp.ReLU(),
        "LeakyReLU": bp.LeakyReLU(0.1),
        "ELU": bp.ELU(0.7),
        "PReLU": bp.PReLU(D, init=0.2),
        "GELU": bp.GELU(),
        "GELU-tanh": bp.GELU(approximate="tanh"),
        "SiLU": bp.SiLU(),
        "Softplus": bp.Softplus(),
        "Softmax": bp.Softmax(),
        "Dropout": bp.Dropout(0.4),
        "BatchNorm": bp.BatchNorm(D),
        "LayerNorm": bp.LayerNorm(D),
    }


@pytest.mark.parametrize("name", list(make_layers()))
def test_layer_gradients_match_finite_differences(name, rng):
    layer = make_layers()[name]
    model = bp.Sequential([layer], dtype="float64", seed=3)
    if name == "PReLU":
        # give each feature its own slope so a mix-up between features would show
        model.layers[0].params["alpha"][...] = np.linspace(-0.3, 0.6, D)
    if name in ("BatchNorm", "LayerNorm"):
        model.layers[0].params["gamma"][...] = rng.uniform(0.5, 2.0, D)
        model.layers[0].params["beta"][...] = rng.normal(size=D)
    X = rng.normal(size=(6, D)) * 2.0
    n_out = model.forward(X).shape[1]
    target = rng.normal(size=(6, n_out))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, target)
    assert report.passed, str(report)
    names = {c.name for c in report.checks}
    assert "input" in names
    assert names >= set(model.parameters())


HIGHER_RANK = {
    "BatchNorm": lambda: bp.BatchNorm(),
    "LayerNorm": lambda: bp.LayerNorm(),
    "PReLU": lambda: bp.PReLU(),
    "Dense": lambda: bp.Dense(3),
    "Softmax": lambda: bp.Softmax(),
}


@pytest.mark.parametrize("shape", [(4, D), (3, 2, D)], ids=["sequence", "image"])
@pytest.mark.parametrize("name", list(HIGHER_RANK))
def test_last_axis_layers_on_higher_rank_inputs_match_finite_differences(name, shape, rng):
    """Sequences ``(n, t, d)`` and maps ``(n, h, w, d)``: the statistics, slopes and weights
    act on the last axis and their gradients sum over every other one. Only 2-D inputs were
    checked, so a BatchNorm backward whose mean ran over the batch axis alone (not over the
    map's positions too) passed, as did a PReLU whose slope gradient summed over axis 0 only."""
    layer = HIGHER_RANK[name]()
    model = bp.Sequential([layer, bp.Flatten()], input_shape=shape, dtype="float64", seed=3)
    if name == "PReLU":
        layer.params["alpha"][...] = np.linspace(-0.3, 0.6, D)
    if name in ("BatchNorm", "LayerNorm"):
        layer.params["gamma"][...] = rng.uniform(0.5, 2.0, D)
        layer.params["beta"][...] = rng.normal(size=D)
    if name == "Dense":
        layer.params["b"][...] = rng.normal(size=3)
    X = rng.normal(size=(3, *shape)) * 2.0
    target = rng.normal(size=model.forward(X).shape)
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, target)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} >= {"input", *(f"0.{k}" for k in layer.params)}


def test_gradient_check_catches_a_wrong_backward(rng):
    class BrokenTanh(bp.Tanh):
        def _df(self, x, y):  # forgets the square: 1 - y instead of 1 - y^2
            return 1 - y

    model = bp.Sequential([bp.Dense(D, 4), BrokenTanh(), bp.Dense(4, 2)], dtype="float64", seed=0)
    X = rng.normal(size=(5, D))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, rng.normal(size=(5, 2)))
    assert not report.passed
    assert not report["0.W"].passed and report["0.W"].max_rel_error > 1e-2
    assert report["2.W"].passed  # the layer after the broken one is unaffected
    assert "FAIL" in str(report)


def test_gradient_check_catches_a_gradient_off_by_a_tenth_of_a_percent(rng):
    """The standard's tolerance, not just gross errors: a derivative 0.1% too large is a bug
    (rel ~ 5e-4, fifty times rtol). A checker whose first acceptance test was loosened to
    ``rel <= 1000 rtol`` still failed the BrokenTanh above, and would have passed this."""

    class SlightlyBrokenTanh(bp.Tanh):
        def _df(self, x, y):
            return 1.001 * (1 - y * y)

    model = bp.Sequential(
        [bp.Dense(D, 4), SlightlyBrokenTanh(), bp.Dense(4, 2)], dtype="float64", seed=0
    )
    X = rng.normal(size=(5, D))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, rng.normal(size=(5, 2)))
    assert not report.passed
    assert not report["0.W"].passed and 1e-4 < report["0.W"].max_rel_error < 1e-3
    assert report["2.W"].passed


@pytest.mark.parametrize("name", list(make_layers()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_and_input_not_modified(name, dtype, rng):
    model = bp.Sequential([make_layers()[name]], dtype=dtype, seed=0)
    X = rng.normal(size=(8, D)).astype(dtype)
    X_before = X.copy()
    out = model.forward(X, training=True)
    assert out.dtype == np.dtype(dtype)
    g = rng.normal(size=out.shape).astype(dtype)
    g_before = g.copy()
    dX = model.backward(g)
    assert dX.dtype == np.dtype(dtype) and dX.shape == X.shape
    for grad in model.gradients().values():
        assert grad.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(g, g_before)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 9),
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=5),
)
def test_shapes_agree_for_many_stacks(n, widths):
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        layers += [bp.Dense(a, b), bp.ReLU()]
    model = bp.Sequential(layers, seed=0)
    X = np.ones((n, widths[0]), dtype=np.float32)
    out = model.forward(X, training=True)
    assert out.shape == (n, widths[-1])
    assert model.backward(np.ones_like(out)).shape == X.shape
    for key, p in model.parameters().items():
        assert model.gradients()[key].shape == p.shape


def test_wrong_number_of_features_names_both_numbers():
    with pytest.raises(ValueError, match="expected 4 features, got 3"):
        bp.Dense(4, 2).forward(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 6 features, got 5"):
        bp.BatchNorm(6).forward(np.zeros((2, 5), dtype=np.float32))


def test_backward_without_training_forward_is_an_error():
    layer = bp.Dense(3, 2)
    layer.forward(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((2, 2), dtype=np.float32))


def test_sigmoid_softplus_and_softmax_survive_huge_inputs():
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = bp.Sigmoid().forward(x)
        sp = bp.Softplus().forward(x)
        sm = bp.Softmax().forward(x)
    np.testing.assert_allclose(s, [[0, 1.9287498479639178e-22, 0.5, 1, 1]], atol=1e-30)
    np.testing.assert_allclose(sp, [[0, 1.9287498479639178e-22, np.log(2), 50, 1e4]])
    np.testing.assert_allclose(sm, [[0, 0, 0, 0, 1]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-500, 500), min_size=2, max_size=8), st.integers(1, 4))
def test_softmax_rows_are_distributions(values, n):
    x = np.tile(np.array(values), (n, 1))
    y = bp.Softmax().forward(x)
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.0, 0.9), st.integers(0, 2**32 - 1))
def test_dropout_preserves_the_mean(rate, seed):
    layer = bp.Dropout(rate, seed=seed)
    x = np.ones((400, 50))
    y = layer.forward(x, training=True)
    # E[y] = x; 20000 Bernoulli draws: 6 standard errors of the mean as the bound
    sd = np.sqrt(rate / (1 - rate)) / np.sqrt(x.size)
    assert abs(y.mean() - 1.0) <= 6 * sd + 1e-12
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - rate))
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), y)  # same mask and scale


def test_dropout_is_identity_at_inference():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(bp.Dropout(0.5, seed=0).forward(x), x)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match="drop_rate"):
        bp.Dropout(bad)


def test_dropout_takes_a_numpy_integer_rate():
    """np.int64(0) (an integer rate read from an array) was refused as 'not a number'."""
    assert bp.Dropout(np.int64(0)).drop_rate == 0.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bp.BatchNorm(momentum="0.9"), r"momentum must be in \[0, 1\), got '0.9'"),
        (lambda: bp.BatchNorm(momentum=None), r"momentum must be in \[0, 1\), got None"),
        (lambda: bp.BatchNorm(eps="1e-5"), r"eps must be a positive number, got '1e-5'"),
        (lambda: bp.LayerNorm(eps=None), r"eps must be a positive number, got None"),
        (lambda: bp.LayerNorm(eps=True), r"eps must be a positive number, got True"),
    ],
)
def test_normalization_arguments_of_the_wrong_type_name_the_argument(make, match):
    """A string or None gave TypeError '<=' not supported between 'float' and 'str' (or from
    np.isfinite), naming no argument; eps=True was taken as 1.0."""
    with pytest.raises(ValueError, match=match):
        make()


def test_batchnorm_running_statistics_and_inference(rng):
    layer = bp.BatchNorm(3, momentum=0.5, dtype="float64")
    X = rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(64, 3))
    layer.forward(X, training=True)
    # one update from (0, 1): 0.5 * old + 0.5 * batch statistic (unbiased variance)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.5 * X.mean(axis=0))
    np.testing.assert_allclose(layer.buffers["running_var"], 0.5 + 0.5 * X.var(axis=0, ddof=1))
    for _ in range(60):
        layer.forward(X, training=True)
    out = layer.forward(X)  # inference uses the running estimates: close to standardized
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1, rtol=2e-2)


@pytest.mark.parametrize("case", ["frozen", "one-row"])
def test_batchnorm_with_fixed_statistics_matches_finite_differences(case, rng):
    """A frozen BatchNorm, or one fed a single row, normalizes with its running statistics as
    constants: ``dx = gamma g / sqrt(running_var + eps)``. The batch-statistics test above never
    reaches that branch (a backward that forgot the ``1 / sqrt(var + eps)`` there passed)."""
    model = bp.Sequential([bp.Dense(D, 4), bp.BatchNorm(), bp.Dense(4, 2)], dtype="float64", seed=1)
    bn = model.layers[1]
    bn.params["gamma"][...] = rng.uniform(0.5, 2.0, 4)
    bn.params["beta"][...] = rng.normal(size=4)
    bn.buffers["running_mean"][...] = rng.normal(size=4)
    bn.buffers["running_var"][...] = rng.uniform(0.2, 4.0, 4)  # far from 1: inv_std matters
    if case == "frozen":
        bn.trainable = False
    n = 1 if case == "one-row" else 6
    X, target = rng.normal(size=(n, D)), rng.normal(size=(n, 2))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, target)
    assert report.passed, str(report)
    names = {c.name for c in report.checks}
    assert "input" in names
    if case == "one-row":
        assert names >= {"1.gamma", "1.beta"}


def test_layernorm_normalizes_each_row(rng):
    X = rng.normal(size=(4, 6)) * 10 + 3
    out = bp.LayerNorm(6, dtype="float64").forward(X)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-6)


def test_activation_values():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    np.testing.assert_allclose(bp.ReLU().forward(x), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(bp.LeakyReLU(0.1).forward(x), [[-0.2, -0.05, 0, 0.5, 2]])
    np.testing.assert_allclose(
        bp.ELU(1.0).forward(x), [[np.exp(-2) - 1, np.exp(-0.5) - 1, 0, 0.5, 2]]
    )
    # GELU(x) = x * Phi(x); Phi(0.5) = 0.691462461274013
    np.testing.assert_allclose(bp.GELU().forward(x)[0, 3], 0.5 * 0.691462461274013)
    np.testing.assert_allclose(bp.SiLU().forward(x)[0, 4], 2 / (1 + np.exp(-2)))
    np.testing.assert_allclose(bp.Tanh().forward(x), np.tanh(x))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bp.LeakyReLU("0.1"), r"negative_slope must be a finite number, got '0.1'"),
        (lambda: bp.LeakyReLU(None), r"negative_slope must be a finite number, got None"),
        (lambda: bp.LeakyReLU(True), r"negative_slope must be a finite number, got True"),
        (lambda: bp.ELU("1"), r"alpha must be a finite number > 0, got '1'"),
        (lambda: bp.ELU(None), r"alpha must be a finite number > 0, got None"),
        (lambda: bp.ELU(0.0), r"alpha must be a finite number > 0, got 0.0"),
        (lambda: bp.PReLU(init=None), r"init must be a finite number, got None"),
        (lambda: bp.PReLU(init="x"), r"init must be a finite number, got 'x'"),
        (lambda: bp.PReLU(init=float("nan")), r"init must be a finite number, got nan"),
    ],
)
def test_activation_arguments_of_the_wrong_type_name_the_argument(make, match):
    """A string or None gave NumPy's "ufunc 'isfinite' not supported" TypeError naming no
    argument; LeakyReLU(True) was taken as slope 1.0 and PReLU(init=nan) was accepted."""
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "layer",
    [bp.LeakyReLU(0.1), bp.ELU(1.5), bp.ReLU(), bp.Tanh(), bp.GELU(), bp.Softplus(), bp.Softmax()],
    ids=lambda layer: type(layer).__name__,
)
@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.bool_])
def test_an_activation_on_its_own_computes_integer_input_in_float64(layer, dtype):
    """LeakyReLU(0.1) on [[-5, 3]] gave [[0, 3]] (the slope cast to the integer 0), ELU(1.5)
    used alpha = 1, ReLU kept int8 and Softmax raised NumPy's casting error on exp."""
    x = np.array([[-5, 3, 0, 1]]).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, layer.forward(x.astype(np.float64)), rtol=1e-15)
    dx = layer.backward(np.ones((1, 4)))
    assert dx.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_keeps_its_relative_accuracy_in_the_negative_tail(dtype):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 cancels for negative x: in float32 GELU(-5) was 4%
    off and GELU(-8.4) was 0 instead of -2.3e-16 (Phi now comes from scipy's ndtr)."""
    from scipy import special

    x = np.linspace(-12.0, 3.0, 1501).reshape(1, -1)
    ref = x * special.ndtr(x)  # float64
    ref_d = special.ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    layer = bp.GELU()
    y = layer.forward(x.astype(dtype), training=True)
    d = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and d.dtype == dtype
    tol = 2e-5 if dtype == np.float32 else 1e-13  # float32: exp(-x^2 / 2) rounds x^2
    np.testing.assert_allclose(y, ref, rtol=tol, atol=1e-37)
    tail = x[0] < -2  # relative error of f' only away from its zero at x = -0.75
    np.testing.assert_allclose(d[0, tail], ref_d[0, tail], rtol=tol, atol=1e-37)
    np.testing.assert_allclose(d, ref_d, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_derivatives_at_the_kink_are_the_documented_one_sided_ones(dtype):
    """At x = 0 (and -0.0) the table of the activations module takes the left derivative, as
    PyTorch does: ReLU 0, LeakyReLU the slope, ELU alpha, PReLU its alpha."""
    x = np.array([[0.0, -0.0]], dtype=dtype)
    prelu = bp.PReLU(2, init=0.3, dtype=np.dtype(dtype).name)
    for layer, slope in [
        (bp.ReLU(), 0.0),
        (bp.LeakyReLU(0.2), 0.2),
        (bp.ELU(0.7), 0.7),
        (prelu, 0.3),
    ]:
        y = layer.forward(x, training=True)
        np.testing.assert_array_equal(y, 0.0)
        dx = layer.backward(np.full_like(x, 2.0))
        assert dx.dtype == dtype
        np.testing.assert_allclose(dx, 2.0 * np.float32(slope), rtol=1e-7)
    np.testing.assert_allclose(prelu.grads["alpha"], 0.0)  # min(x, 0) = 0 at the kink


EXTREME = [0.0, -0.0, 1e-45, -1e-45, 5e-324, 1e-4, 20, -20, 88, -88, 89, -89, 710, -710, 1e4, -1e4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name", [n for n in make_layers() if n not in ("Dense", "Dropout", "BatchNorm", "LayerNorm")]
)
def test_every_activation_is_finite_and_quiet_at_extreme_finite_inputs(name, dtype):
    """+-1e4, +-88/89 (float32's exp limit), +-710 (float64's), subnormals and -0.0: no
    overflow or invalid-value warning, finite values and derivatives, the input's dtype."""
    layer = bp.PReLU(init=0.2) if name == "PReLU" else make_layers()[name]
    if name == "PReLU":
        layer.initialize((len(EXTREME),), dtype=np.dtype(dtype).name, seed=0)
    x = np.array([EXTREME, [-v for v in EXTREME]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = layer.forward(x, training=True)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
