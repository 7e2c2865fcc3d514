"""The fast paths taken for speed compute the same thing as the plain formulas they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import backprop as bp


@pytest.mark.parametrize(
    "cls, kwargs", [(bp.Adam, {}), (bp.Adam, {"amsgrad": True}), (bp.AdamW, {})]
)
def test_blockwise_adam_is_bit_identical_to_whole_array_update(cls, kwargs):
    rng = np.random.default_rng(0)
    blocked, whole = cls(lr=1e-2, **kwargs), cls(lr=1e-2, **kwargs)
    blocked.block_size, whole.block_size = 1000, 10**9  # 10,007 entries: 11 blocks vs one pass
    p_blocked = rng.standard_normal(10_007).astype(np.float32)
    p_whole = p_blocked.copy()
    slices = [slice(0, 3000), slice(4000, 10_007)]  # a frozen run in between
    for _ in range(4):
        g = rng.standard_normal(10_007).astype(np.float32)
        blocked.step(p_blocked, g, slices)
        whole.step(p_whole, g, slices)
    assert np.array_equal(p_blocked, p_whole)
    for key in whole.state:
        assert np.array_equal(blocked.state[key], whole.state[key])
    assert np.array_equal(p_blocked[3000:4000], p_whole[3000:4000])


def test_relu_backward_masks_exactly_where_the_output_is_positive():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 33)).astype(np.float32)
    x[::7, ::5] = 0.0  # ties at zero get zero gradient
    relu = bp.ReLU()
    relu.forward(x, training=True)
    g = rng.standard_normal(x.shape).astype(np.float32)
    dx = relu.backward(g)
    assert dx.dtype == np.float32
    assert np.array_equal(dx, np.where(x > 0, g, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_cross_entropy_matches_logsumexp_formula(dtype):
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((50, 7)) * 30).astype(dtype)
    labels = rng.integers(0, 7, 50)
    onehot = np.eye(7, dtype=dtype)[labels]
    lse = special.logsumexp(z.astype(np.float64), axis=1)
    expected_loss = np.mean(lse - z[np.arange(50), labels])
    expected_grad = (np.exp(z - lse[:, None]) - onehot) / 50
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for target in (labels, onehot):  # the label path and the probability-row path
        ce = bp.SoftmaxCrossEntropy()
        assert ce.forward(z, target) == pytest.approx(expected_loss, rel=tol)
        grad = ce.backward()
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol / 50)
