"""RandomShift2D: the shift against a per-pixel reference, the backward as its exact adjoint and
against finite differences, identity at inference, the model's random stream, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


def reference_shift(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The definition, one pixel at a time: y[s, i, j] = x[s, i - dy, j - dx] inside, else 0."""
    n, h, w, _ = x.shape
    y = np.zeros_like(x)
    for s in range(n):
        dy, dx = shifts[:, s]
        for i in range(h):
            for j in range(w):
                if 0 <= i - dy < h and 0 <= j - dx < w:
                    y[s, i, j] = x[s, i - dy, j - dx]
    return y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "k"), [((9, 6, 5, 2), 2), ((40, 3, 4, 1), 3), ((5, 7, 7, 3), 1)])
def test_forward_matches_the_definition(dtype, shape, k):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    before = x.copy()
    layer = bp.RandomShift2D(k, seed=1)
    y = layer.forward(x, training=True)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, reference_shift(x, layer._shifts))
    # shifts as large as the image (k=3 on 3 rows) empty the image: still the definition
    assert np.abs(layer._shifts).max() <= k


def test_a_shift_far_larger_than_the_images_costs_no_more_than_their_size():
    """The loop ran over every shift up to max_shift, skipping those that leave only zeros:
    max_shift=10**7 (from a config or a model file) took seconds per batch, 10**12 hours."""
    import time

    x = np.random.default_rng(0).standard_normal((64, 5, 4, 2))
    layer = bp.RandomShift2D(10**7, seed=1)
    start = time.perf_counter()
    y = layer.forward(x, training=True)
    shifts = layer._shifts  # (backward releases them)
    dx = layer.backward(y)
    assert time.perf_counter() - start < 0.5
    np.testing.assert_array_equal(y, reference_shift(x, shifts))
    small = bp.RandomShift2D(6, seed=2)  # some shifts inside the 5 x 4 frame, some not
    y = small.forward(x, training=True)
    assert (np.abs(small._shifts) >= 4).any() and (np.abs(small._shifts) < 4).all(axis=0).any()
    np.testing.assert_array_equal(y, reference_shift(x, small._shifts))
    assert dx.shape == x.shape


def test_backward_is_the_adjoint_and_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 4, 2))
    R = rng.standard_normal(x.shape)
    layer = bp.RandomShift2D(2)

    def forward(z):
        layer.set_rng(np.random.default_rng(7))  # the same shifts every call
        return layer.forward(z, training=True)

    y = forward(x)
    g = R.copy()
    dx = layer.backward(g)
    np.testing.assert_array_equal(g, R)  # the gradient is not modified
    # <S x, R> == <x, S^T R> for a linear map S
    assert np.isclose(np.sum(y * R), np.sum(x * dx), rtol=1e-13)
    eps = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = np.sum(forward(x) * R)
        x[i] = old - eps
        down = np.sum(forward(x) * R)
        x[i] = old
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-8)


def test_identity_at_inference_and_with_zero_shift():
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 1)).astype(np.float32)
    layer = bp.RandomShift2D(2, seed=0)
    assert layer.forward(x) is x
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(g), g)
    np.testing.assert_array_equal(bp.RandomShift2D(0, seed=0).forward(x, training=True), x)


def test_every_shift_is_drawn_and_uniformly():
    layer = bp.RandomShift2D(2, seed=0)
    layer.forward(np.zeros((5000, 6, 6, 1)), training=True)
    pairs = (layer._shifts[0] + 2) * 5 + (layer._shifts[1] + 2)
    counts = np.bincount(pairs, minlength=25)
    assert counts.shape == (25,) and counts.min() > 150  # 200 expected each


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", 2**63 - 1, 10**39])
def test_rejects_bad_max_shift(bad):
    """2**63 - 1 and 10**39 (a model file may hold 39 digits) were accepted, then the first
    training batch failed in NumPy ("high is out of bounds for int64"), max_shift unnamed."""
    with pytest.raises(ValueError, match="max_shift"):
        bp.RandomShift2D(bad)


def test_the_largest_max_shift_trains():
    layer = bp.RandomShift2D(2**63 - 2, seed=0)
    assert not layer.forward(np.ones((3, 4, 4, 1)), training=True).any()  # shifted far away


def test_rejects_non_images():
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        bp.RandomShift2D(1).forward(np.zeros((3, 4, 4)), training=True)
    with pytest.raises(ValueError, match="images"):
        bp.Sequential([bp.RandomShift2D(1), bp.Flatten(), bp.Dense(2)], input_shape=(4, 4))


def test_rejects_images_of_another_shape_than_it_was_built_for():
    """Only the number of axes was checked: a layer built for 4 x 4 images shifted a batch of
    5 x 4 ones (or of 4 x 4 x 3) without a word, where Conv2D and the pooling layers refuse."""
    layer = bp.RandomShift2D(1, seed=0)
    layer.initialize((4, 4, 1))
    for shape in [(2, 5, 4, 1), (2, 4, 4, 3)]:
        for training in (True, False):
            with pytest.raises(ValueError, match=r"expects inputs of shape \(n, 4, 4, 1\)"):
                layer.forward(np.zeros(shape), training=training)
    alone = bp.RandomShift2D(1, seed=0)
    alone.forward(np.zeros((2, 3, 3, 1)), training=True)  # built by its first batch
    with pytest.raises(ValueError, match=r"\(n, 3, 3, 1\)"):
        alone.forward(np.zeros((2, 3, 4, 1)), training=True)
    assert layer.forward(np.zeros((0, 4, 4, 1)), training=True).shape == (0, 4, 4, 1)


def test_in_a_model_shifts_follow_the_model_seed_and_files_round_trip(tmp_path):
    def model(seed):
        return bp.Sequential(
            [bp.RandomShift2D(2), bp.Conv2D(3, 3), bp.Flatten(), bp.Dense(2)],
            input_shape=(6, 6, 1),
            seed=seed,
        )

    x = np.random.default_rng(0).standard_normal((8, 6, 6, 1)).astype(np.float32)
    a, b, c = model(0), model(0), model(1)
    ya, yb, yc = (m.forward(x, training=True) for m in (a, b, c))
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(ya, yc[:, ::-1])  # another seed, other weights and shifts
    np.testing.assert_array_equal(a.layers[0]._shifts, b.layers[0]._shifts)
    assert a.layers[0]._shifts.shape == (2, 8)
    a.backward(np.ones_like(ya))  # runs through the shift layer
    bp.save(a, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert loaded.layers[0].max_shift == 2
    np.testing.assert_array_equal(loaded.predict(x), a.predict(x))
    # at inference the shift layer is the identity: the prediction of the same convolution
    # applied to the unshifted images
    z = x
    for layer in a.layers[1:]:
        z = layer.forward(z)
    np.testing.assert_allclose(a.predict(x), z, rtol=1e-6, atol=1e-6)
