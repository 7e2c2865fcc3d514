"""Convolution memory: chunks of samples in one workspace shared by every conv layer.

Chunked and unchunked results agree (outputs and gradients, float32 and float64), finite
differences hold with one sample per chunk, the workspace stays within WORKSPACE_RATIO times the
largest activation and is reused from step to step, a shared buffer's stale contents never leak
into a padded border, and inference leaves no large buffer behind."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_conv_layers import fd_check, make, naive_conv2d

import backprop as bp
from backprop.layers import conv
from backprop.layers._windows import shared_workspace
from backprop.layers.conv import Conv1D, Conv2D

CASES = [
    # (layer factory, per-sample input shape)
    (lambda: Conv2D(3, 3, padding="same"), (6, 7, 2)),
    (lambda: Conv2D(2, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)), (7, 8, 3)),
    (lambda: Conv2D(4, 5, padding=2), (8, 8, 1)),  # LeNet's first layer, smaller
    (lambda: Conv2D(2, 2, stride=3), (8, 7, 2)),  # valid, stride > kernel
    (lambda: Conv1D(3, 3, stride=2, padding="same"), (9, 2)),
]


def run(layer, x, G, first_layer=False):
    """Forward and backward with training=True; copies of y, dx (None for the first-layer
    path) and every gradient."""
    y = layer.forward(x, training=True).copy()
    if first_layer:
        layer.backward_params_only(G)
        dx = None
    else:
        dx = layer.backward(G).copy()
    return y, dx, {k: g.copy() for k, g in layer.grads.items()}


@pytest.mark.parametrize("lowering", ["im2col", "rows"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("factory", "in_shape"), CASES)
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_equals_unchunked(factory, in_shape, dtype, chunk, lowering):
    n = 7  # 3 does not divide it: a shorter last chunk
    layer = make(factory(), in_shape, dtype)
    layer.lowering = lowering
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *in_shape)).astype(dtype)
    G = rng.standard_normal((n, *layer.out_shape)).astype(dtype)
    x_keep, G_keep = x.copy(), G.copy()
    layer.chunk_samples = n
    whole = run(layer, x, G)
    layer.chunk_samples = chunk
    assert layer._chunk(n) == chunk
    parts = run(layer, x, G)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(
        [whole[0], whole[1], *whole[2].values()],
        [parts[0], parts[1], *parts[2].values()],
        strict=True,
    ):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, x_keep)
    np.testing.assert_array_equal(G, G_keep)
    # the first layer of a model skips dx but must give the same parameter gradients
    first = run(layer, x, G, first_layer=True)
    for k, g in first[2].items():
        np.testing.assert_allclose(g, whole[2][k], rtol=tol, atol=tol)


@pytest.mark.parametrize("lowering", ["im2col", "rows"])
@pytest.mark.parametrize(("factory", "in_shape"), CASES[:3])
def test_one_sample_per_chunk_passes_finite_differences(factory, in_shape, lowering):
    layer = make(factory(), in_shape)
    layer.chunk_samples = 1
    layer.lowering = lowering
    fd_check(layer, np.random.default_rng(1).standard_normal((3, *in_shape)))


@pytest.mark.parametrize("lowering", ["im2col", "rows"])
def test_stale_workspace_never_leaks_into_the_padding(lowering):
    """Another layer (or NaNs) left in the shared buffer: the padded border is rewritten."""
    layer = make(Conv2D(2, 3, padding=2), (5, 6, 2))
    layer.lowering = lowering
    x = np.random.default_rng(2).standard_normal((4, 5, 6, 2))
    layer.chunk_samples = 2
    for buf in layer._chunk_buffers(2, np.dtype("float64"), training=True):
        buf.fill(np.nan)
    y = layer.forward(x, training=True)
    ref = naive_conv2d(x, layer.params["W"], layer.params["b"], layer._s2, layer._pads, layer._d2)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    dx = layer.backward(np.ones_like(y))
    assert np.isfinite(dx).all() and np.isfinite(layer.grads["W"]).all()


@pytest.mark.parametrize("lowering", ["auto", "im2col"])
def test_workspace_is_shared_bounded_and_reused(lowering):
    model = bp.Sequential(
        [bp.Conv2D(6, 5, padding=2), bp.ReLU(), bp.MaxPool2D(2), bp.Conv2D(16, 5), bp.ReLU()],
        input_shape=(28, 28, 1),
        dtype="float32",
    )
    for i in (0, 3):
        model.layers[i].lowering = lowering
    ws = shared_workspace()
    ws.clear()
    n = 64
    x = np.random.default_rng(3).random((n, 28, 28, 1), dtype=np.float32)
    y = model.forward(x, training=True)
    model.backward(np.ones_like(y))
    size = ws.nbytes
    largest = max(n * math.prod(layer.out_shape) for layer in model.layers) * 4
    assert 0 < size <= conv.WORKSPACE_RATIO * largest
    if lowering == "im2col":  # the row lowering of LeNet's layers needs less: one chunk
        assert model.layers[0]._chunk(n) < n  # the batch is really cut into chunks
    # a layer keeps its input, not a workspace array, between forward and backward
    model.forward(x[:40], training=True)  # a smaller batch: same buffer
    assert model.layers[3]._x is not None and not np.shares_memory(
        model.layers[3]._x, ws.get("conv-float32", (1,), np.float32)
    )
    model.backward(np.ones((40, *model.layers[-1].out_shape), dtype=np.float32))
    assert ws.nbytes == size
    assert model.layers[0]._x is None  # dropped after backward
    model.predict(np.zeros((1000, 28, 28, 1), dtype=np.float32))  # inference: fresh arrays
    assert ws.nbytes == size
    with pytest.raises(RuntimeError, match="without a preceding forward"):
        model.layers[3].backward(np.ones((2, 10, 10, 16), dtype=np.float32))


def test_lenet_chunk_rule():
    """ns = floor(RATIO * n * max(in, out) / need), evened out over the same number of chunks."""
    layer = make(Conv2D(6, 5, padding=2), (28, 28, 1), "float32")
    layer.lowering = "im2col"
    need = 28 * 28 * 25 + 32 * 32  # im2col rows * taps + the padded image
    ns = int(conv.WORKSPACE_RATIO * 64 * 28 * 28 * 6 // need)
    chunks = math.ceil(64 / ns)
    assert layer._chunk(64) == math.ceil(64 / chunks)
    assert layer._chunk(1) == 1
    # the row lowering: 28 rows * 4 tiles of 7 pixels, each 5 rows * 11 input columns
    layer.lowering = "rows"
    assert layer._lowered_shape(3) == (3 * 28 * 4, 5 * 11 + 1)  # + the column of ones
