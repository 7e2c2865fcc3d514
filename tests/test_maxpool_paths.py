"""Max pooling's flat kernels and ReLU's fast passes against plain references, bit for bit.

The reference below pools window by window (Python loops over output positions): the value and
position of each window's first maximum in row-major order (``np.argmax``), and a backward that
adds each window's gradient at that position, offset by offset in row-major order (the order the
layer's sum over overlapping windows promises). Inputs are full of ties: small integers, ReLU
outputs (all-zero windows), signed zeros. Results are compared as integers of the same width, so
that even the sign of a zero must match.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_layers import fd_check, make

import backprop as bp
from backprop.layers import _maxpool, pooling
from backprop.layers._relu import relu, relu_grad


def bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(f"i{a.itemsize}")


def reference_max_pool(layer, x: np.ndarray, g: np.ndarray):
    """``(y, dx)`` of ``layer`` (built) on ``x``, ``g`` ``(n, *out_shape)``, window by window."""
    x4 = x if layer.ndim == 2 else x[:, None]
    n, h, w, c = x4.shape
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = layer._k2, layer._s2, layer._pads
    oh, ow = layer._out2
    xp = np.full((n, h + top + bottom, w + left + right, c), -np.inf, dtype=x.dtype)
    xp[:, top : top + h, left : left + w] = x4
    g4 = g.reshape(n, oh, ow, c)
    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    first = np.empty((n, oh, ow, c), dtype=np.intp)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(n, kh * kw, c)
            first[:, i, j] = np.argmax(win, axis=1)  # the first maximum, row-major
            y[:, i, j] = np.take_along_axis(win, first[:, i, j][:, None], axis=1)[:, 0]
    dxp = np.zeros(xp.shape, dtype=g.dtype)
    for r in range(kh * kw):
        a, b = divmod(r, kw)
        for i in range(oh):
            for j in range(ow):
                dxp[:, i * sh + a, j * sw + b] += np.where(first[:, i, j] == r, g4[:, i, j], 0)
    dx = dxp[:, top : top + h, left : left + w]
    shape = (n, *layer.out_shape)
    return y.reshape(shape), (dx if layer.ndim == 2 else dx[:, 0])


def tied_inputs(shape, dtype, rng):
    """Inputs with many ties: small integers, ReLU outputs (zero windows), signed zeros."""
    ints = rng.integers(-2, 3, shape).astype(dtype)
    relu_out = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    zeros = np.where(rng.random(shape) < 0.5, -0.0, 0.0).astype(dtype)
    return [ints, relu_out, zeros]


TILING = [  # stride = pool size: the spread backward (padded or not)
    (bp.MaxPool2D, (8, 8, 6), dict(pool_size=2)),
    (bp.MaxPool2D, (6, 9, 2), dict(pool_size=3)),
    (bp.MaxPool2D, (5, 7, 3), dict(pool_size=2)),  # odd: the last row and column are dropped
    (bp.MaxPool2D, (4, 6, 1), dict(pool_size=(2, 3))),
    (bp.MaxPool2D, (6, 7, 2), dict(pool_size=(3, 1))),  # a row stage only
    (bp.MaxPool2D, (6, 6, 5), dict(pool_size=2, padding="same")),  # "same" pads nothing here
    (bp.MaxPool2D, (5, 5, 3), dict(pool_size=2, padding="same")),  # a padded row and column
    (bp.MaxPool2D, (5, 7, 2), dict(pool_size=3, padding=1)),  # padded on every side
    (bp.MaxPool1D, (8, 3), dict(pool_size=2)),
    (bp.MaxPool1D, (9, 2), dict(pool_size=2)),
    (bp.MaxPool1D, (7, 2), dict(pool_size=2, padding="same")),
]
GENERAL = [  # overlapping windows, or stride > pool size: the offset-by-offset backward
    (bp.MaxPool2D, (6, 6, 2), dict(pool_size=3, stride=2)),
    (bp.MaxPool2D, (5, 6, 1), dict(pool_size=(3, 2), stride=(2, 1), padding=1)),
    (bp.MaxPool2D, (7, 7, 2), dict(pool_size=2, stride=3)),
    (bp.MaxPool2D, (5, 7, 2), dict(pool_size=(1, 3), stride=(1, 2))),  # a column stage only
    (bp.MaxPool2D, (7, 6, 4), dict(pool_size=4, stride=1, padding="same")),
    (bp.MaxPool1D, (7, 2), dict(pool_size=3, stride=2, padding=1)),
    (bp.MaxPool1D, (9, 3), dict(pool_size=3, stride=1)),
]


@pytest.mark.parametrize("samples_per_chunk", [None, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("cls", "in_shape", "kwargs"), TILING + GENERAL)
def test_max_pool_matches_the_window_by_window_reference_bit_for_bit(
    cls, in_shape, kwargs, dtype, samples_per_chunk, monkeypatch
):
    rng = np.random.default_rng(0)
    layer = make(cls(**kwargs), in_shape, dtype)
    if samples_per_chunk:  # 3 samples in chunks of 2 and 1
        per_sample = np.prod(layer._padded_shape(1, in_shape[-1]))
        monkeypatch.setattr(_maxpool, "CHUNK_VALUES", samples_per_chunk * per_sample)
    for x in tied_inputs((3, *in_shape), dtype, rng):
        g = rng.integers(-3, 4, (3, *layer.out_shape)) * (1 + rng.random((3, *layer.out_shape)))
        g = g.astype(dtype)
        g.flat[::5] = -0.0  # 0 + (-0) is +0 in the scatter-add: kept so
        x_keep, g_keep = x.copy(), g.copy()
        y_ref, dx_ref = reference_max_pool(layer, x, g)
        y = layer.forward(x, training=True)
        assert y.dtype == np.dtype(dtype) and y.shape == y_ref.shape
        np.testing.assert_array_equal(bits(y), bits(y_ref))
        np.testing.assert_array_equal(bits(layer.forward(x)), bits(y_ref))  # inference too
        layer.forward(x, training=True)
        dx = layer.backward(g)
        assert dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        np.testing.assert_array_equal(bits(dx), bits(dx_ref))
        # strided (non-contiguous) inputs and gradients give the same
        layer.forward(np.repeat(x, 2, axis=-1)[..., ::2], training=True)
        dx = layer.backward(np.repeat(g, 2, axis=-1)[..., ::2])
        np.testing.assert_array_equal(bits(dx), bits(dx_ref))
        np.testing.assert_array_equal(bits(x), bits(x_keep))  # inputs untouched
        np.testing.assert_array_equal(bits(g), bits(g_keep))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("cls", "in_shape", "kwargs"), TILING)
def test_tiled_backward_equals_the_general_backward(cls, in_shape, kwargs, dtype, monkeypatch):
    """The spread backward and the offset-by-offset backward agree on every tiling window
    shape; and the layer really takes the spread path there (the general one is disabled)."""
    rng = np.random.default_rng(1)
    layer = make(cls(**kwargs), in_shape, dtype)
    x = tied_inputs((4, *in_shape), dtype, rng)[1]
    layer.forward(x, training=True)
    g = rng.standard_normal((4, *layer.out_shape)).astype(dtype)
    shape = layer._padded_shape(4, in_shape[-1])
    g4 = g.reshape(4, *layer._out2, in_shape[-1])
    general = _maxpool.max_backward(g4, layer._argmax, shape, layer._k2, layer._s2)
    tiled = _maxpool.max_backward_tiled(g4, layer._argmax, shape, layer._k2)
    np.testing.assert_array_equal(bits(tiled), bits(general))

    def refuse(*args):
        raise AssertionError("the general backward ran on tiling windows")

    monkeypatch.setattr(pooling, "max_backward", refuse)
    np.testing.assert_array_equal(bits(layer.backward(g)), bits(layer._unpad(general)))


@pytest.mark.parametrize(
    ("cls", "in_shape", "kwargs"),
    [
        (bp.MaxPool2D, (8, 8, 3), dict(pool_size=2)),
        (bp.MaxPool2D, (7, 7, 2), dict(pool_size=3, stride=2)),
    ],
)
def test_scratch_is_reused_bounded_and_its_stale_bytes_never_leak(
    cls, in_shape, kwargs, monkeypatch
):
    """Training reuses one scratch buffer (no growth from step to step, none at inference), sized
    by a chunk, not by the batch; garbage left in it by anyone changes nothing."""
    monkeypatch.setattr(_maxpool, "CHUNK_VALUES", 2 * int(np.prod(in_shape)))
    layer = make(cls(**kwargs), in_shape, "float32")
    rng = np.random.default_rng(6)
    x = tied_inputs((9, *in_shape), "float32", rng)[1]
    g = rng.standard_normal((9, *layer.out_shape)).astype(np.float32)
    y_ref, dx_ref = reference_max_pool(layer, x, g)
    layer.forward(x, training=True)
    layer.backward(g)
    size = layer.workspace_nbytes
    assert 0 < size <= 24 * _maxpool.CHUNK_VALUES  # a chunk of 2 samples, not the batch of 9
    for buf in layer._ws._buffers.values():
        buf.view(np.uint8).fill(255)  # NaN floats, index 255
    y = layer.forward(x, training=True)
    for buf in layer._ws._buffers.values():
        buf.view(np.uint8).fill(255)
    dx = layer.backward(g)
    np.testing.assert_array_equal(bits(y), bits(y_ref))
    np.testing.assert_array_equal(bits(dx), bits(dx_ref))
    layer.forward(np.zeros((50, *in_shape), np.float32))  # inference: fresh arrays
    layer.forward(x[:4], training=True)  # a smaller batch: the same buffers
    assert layer.workspace_nbytes == size


@pytest.mark.parametrize(("cls", "in_shape", "kwargs"), [TILING[0], GENERAL[0], TILING[-2]])
def test_an_empty_batch_pools_to_an_empty_batch(cls, in_shape, kwargs):
    layer = make(cls(**kwargs), in_shape, "float32")
    x = np.zeros((0, *in_shape), np.float32)
    assert layer.forward(x).shape == (0, *layer.out_shape)
    assert layer.forward(x, training=True).shape == (0, *layer.out_shape)
    dx = layer.backward(np.zeros((0, *layer.out_shape), np.float32))
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_window_larger_than_256_positions_uses_wider_indices():
    layer = make(bp.MaxPool2D(17), (17, 34, 2), "float64")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, (2, 17, 34, 2)).astype(np.float64)
    x[0, 16, 16, 0] = 9.0  # the last position of the first window: index 288
    g = rng.standard_normal((2, *layer.out_shape))
    y_ref, dx_ref = reference_max_pool(layer, x, g)
    np.testing.assert_array_equal(layer.forward(x, training=True), y_ref)
    assert layer._argmax.dtype == np.uint32
    dx = layer.backward(g)  # (once: backward releases the cache)
    np.testing.assert_array_equal(bits(dx), bits(dx_ref))
    assert dx[0, 16, 16, 0] == g[0, 0, 0, 0]


def test_nan_in_a_window_gives_nan_in_training_and_inference_alike():
    layer = make(bp.MaxPool2D(2), (4, 4, 1), "float32")
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    x[0, 1, 1, 0] = np.nan  # the last position of the first window
    for training in (True, False):
        y = layer.forward(x, training=training)
        assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 1:]).all()
        assert np.isfinite(y[0, :, 1]).all()


@pytest.mark.parametrize(
    ("cls", "in_shape", "kwargs"),
    [
        (bp.MaxPool2D, (6, 9, 2), dict(pool_size=3)),  # tiling, 3x3
        (bp.MaxPool1D, (9, 2), dict(pool_size=2)),  # tiling, 1-D, last step dropped
        (bp.MaxPool2D, (7, 7, 2), dict(pool_size=2, stride=3)),  # gaps between windows
    ],
)
def test_max_pool_paths_pass_finite_differences(cls, in_shape, kwargs):
    fd_check(
        make(cls(**kwargs), in_shape), np.random.default_rng(3).standard_normal((2, *in_shape))
    )


SPECIAL = [-np.inf, -2.5, -1e-30, -0.0, 0.0, 1e-30, 3.0, np.inf, np.nan]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 6, 6, 2), (2, 7, 3), (0, 4), (6,)])
def test_relu_kernels_equal_numpy_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(4)
    x = rng.choice(np.array(SPECIAL, dtype=dtype), size=shape)
    g = rng.choice(np.array(SPECIAL, dtype=dtype), size=shape)
    x_keep, g_keep = x.copy(), g.copy()
    y = relu(x)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    np.testing.assert_array_equal(bits(y), bits(np.maximum(x, 0)))
    with np.errstate(invalid="ignore"):  # inf * 0 where a unit is off: NaN, as g * [y > 0]
        dx = relu_grad(g, y)
        expected = np.multiply(g, y > 0, dtype=g.dtype)
    assert dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(bits(dx), bits(expected))
    np.testing.assert_array_equal(bits(x), bits(x_keep))
    np.testing.assert_array_equal(bits(g), bits(g_keep))


def test_relu_layer_keeps_float32_and_its_last_output():
    layer = bp.ReLU()
    x = np.random.default_rng(5).standard_normal((3, 4, 4, 2)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer.last_output is y
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    g = np.ones_like(y)
    dx = layer.backward(g)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx, (x > 0).astype(np.float32))
    y[...] = -1  # a caller writing into its output leaves the next forward right
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x, 0))
