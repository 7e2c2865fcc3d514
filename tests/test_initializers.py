"""Initializers: the spread of many draws against each formula, fans of every weight layout,
seeds, and the activation-aware "auto" choice."""

import numpy as np
import pytest

import backprop as bp
from backprop import initializers
from backprop.model import spawn_generators

FAN_IN, FAN_OUT = 300, 200

# name -> the standard deviation its docstring table promises for a (fan_in, fan_out) weight
STD = {
    "small_normal": lambda fi, fo: 0.01,
    "glorot_uniform": lambda fi, fo: np.sqrt(2 / (fi + fo)),
    "glorot_normal": lambda fi, fo: np.sqrt(2 / (fi + fo)),
    "he_uniform": lambda fi, fo: np.sqrt(2 / fi),
    "he_normal": lambda fi, fo: np.sqrt(2 / fi),
    "lecun_uniform": lambda fi, fo: np.sqrt(1 / fi),
    "lecun_normal": lambda fi, fo: np.sqrt(1 / fi),
}


@pytest.mark.parametrize("name", list(STD))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_initializer_has_the_documented_spread_and_bound(name, dtype):
    w = initializers.get(name)((FAN_IN, FAN_OUT), np.random.default_rng(0), dtype)
    assert w.dtype == dtype and w.shape == (FAN_IN, FAN_OUT)
    std = STD[name](FAN_IN, FAN_OUT)
    # 60000 draws: the sample std is within 2% of the true one with overwhelming probability
    assert w.std() == pytest.approx(std, rel=0.02)
    assert abs(w.mean()) < 0.02 * std
    if name.endswith("uniform"):  # U(-a, a) with a = sqrt(3) std, not truncated past it
        assert np.abs(w).max() <= np.sqrt(3) * std * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * np.sqrt(3) * std


@pytest.mark.parametrize("name", list(STD))
def test_same_generator_state_same_draw_and_no_global_state(name):
    init = initializers.get(name)
    np.random.seed(7)  # noqa: NPY002 - the global state we must not touch
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = init((20, 10), np.random.default_rng(5), np.float64)
    b = init((20, 10), np.random.default_rng(5), np.float64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "glorot_normal", "lecun_normal"])
def test_a_kernel_shape_takes_its_fans_from_all_but_the_last_axis(name):
    """A conv kernel (kh, kw, c, f) drawn directly took fan_in = kh (the first axis) and
    fan_out = kw: he_normal((3, 3, 16, 32)) had std 0.82 instead of sqrt(2 / 144) = 0.118,
    and differed from the draw Conv2D makes for the same kernel."""
    shape = (3, 3, 16, 32)
    w = initializers.get(name)(shape, np.random.default_rng(0), np.float64)
    assert w.shape == shape
    assert w.std() == pytest.approx(STD[name](3 * 3 * 16, 32), rel=0.05)
    flat = initializers.get(name)((3 * 3 * 16, 32), np.random.default_rng(0), np.float64)
    np.testing.assert_array_equal(w.reshape(flat.shape), flat)


def test_conv2d_draws_what_the_initializer_draws_for_its_kernel():
    model = bp.Sequential([bp.Conv2D(8, 3, init="he_normal")], input_shape=(6, 6, 4), seed=0)
    W = model.layers[0].params["W"]
    assert W.shape == (3, 3, 4, 8)
    rng = spawn_generators(0, 2)[0]  # the model's initialization stream
    np.testing.assert_array_equal(W, initializers.he_normal(W.shape, rng, W.dtype))


@pytest.mark.parametrize(
    "activation",
    [bp.ReLU, bp.LeakyReLU, bp.ELU, bp.PReLU, bp.GELU, bp.SiLU],
)
def test_auto_init_is_he_before_the_relu_family_even_through_dropout_and_batchnorm(activation):
    for between in ([], [bp.Dropout(0.3)], [bp.BatchNorm()], [bp.Dropout(0.3), bp.LayerNorm()]):
        model = bp.Sequential([bp.Dense(4, 5), *between, activation(), bp.Dense(2)], seed=0)
        assert [layer.auto_init for layer in model.layers if hasattr(layer, "auto_init")] == [
            "he_uniform",
            "glorot_uniform",
        ]


@pytest.mark.parametrize("activation", [bp.Sigmoid, bp.Tanh, bp.Softplus, bp.Softmax, bp.Identity])
def test_auto_init_is_glorot_before_anything_else(activation):
    model = bp.Sequential([bp.Dense(4, 5), activation(), bp.Dense(2)], seed=0)
    assert model.layers[0].auto_init == "glorot_uniform"


def test_auto_init_sees_the_relu_family_through_a_subclass():
    """A ReLU subclass (say, one that records its outputs) was looked up by its own class name,
    not in the family, and silently got Glorot instead of He."""

    class RecordingReLU(bp.ReLU):
        pass

    class ScaledTanh(bp.Tanh):
        pass

    relu = bp.Sequential([bp.Dense(4, 5), RecordingReLU(), bp.Dense(2)], seed=0)
    tanh = bp.Sequential([bp.Dense(4, 5), ScaledTanh(), bp.Dense(2)], seed=0)
    assert relu.layers[0].auto_init == "he_uniform"
    assert tanh.layers[0].auto_init == "glorot_uniform"


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda s, r, d: None, r"returned None"),
        (lambda s, r, d: np.ones((1, 3)), r"shape \(1, 3\), not the \(4, 3\) asked for"),
        (lambda s, r, d: np.ones((3, 4)), r"shape \(3, 4\), not the \(4, 3\) asked for"),
        (lambda s, r, d: np.full(s, np.nan), r"non-finite"),
    ],
)
def test_a_custom_initializer_that_returns_the_wrong_thing_is_named(bad, match):
    """None filled W with NaN, a (1, fan_out) row was broadcast to every input (symmetric
    units) and NaN weights were taken, all silently; a transposed (fan_out, fan_in) array gave
    NumPy's 'could not broadcast' error without saying which initializer or layout."""
    with pytest.raises(ValueError, match=r"init of Dense.*" + match):
        bp.Sequential([bp.Dense(4, 3, init=bad)], seed=0)
    with pytest.raises(ValueError, match=r"bias_init of Dense"):
        bp.Sequential([bp.Dense(4, 3, bias_init=lambda s, r, d: None)], seed=0)
    with pytest.raises(ValueError, match=r"init of Conv2D"):
        bp.Sequential([bp.Conv2D(3, 2, init=bad)], input_shape=(4, 4, 2), seed=0)


@pytest.mark.parametrize("bad", ["abc", 1.5, True, -1, [1, 2]])
def test_a_stand_alone_layer_names_a_bad_seed(bad):
    """Dense(seed="abc") or layer.initialize(seed=1.5) failed inside NumPy with "SeedSequence
    expects int or sequence of ints", naming no argument; seed=True was taken as 1."""
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, a numpy Generator or None"):
        bp.Dense(4, 3, seed=bad)
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, a numpy Generator or None"):
        bp.Dense(3).initialize((4,), seed=bad)


def test_a_stand_alone_layer_takes_an_int_a_generator_or_none():
    a = bp.Dense(4, 3, seed=np.int64(2)).params["W"]
    np.testing.assert_array_equal(a, bp.Dense(4, 3, seed=np.random.default_rng(2)).params["W"])
    assert bp.Dense(4, 3, seed=None).params["W"].shape == (4, 3)
