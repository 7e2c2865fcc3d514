"""The two lowerings of a convolution to a matrix product: im2col (one row per output pixel) and
the row lowering (strips of input rows against a banded weight matrix, the output width cut into
tiles). Both must give the definition and pass finite differences for every stride, padding,
dilation and tile width, agree with each other in float32, and "auto" must pick the row lowering
only where it applies (few channels, narrow maps)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided
from test_conv_layers import CONV2D_CASES, fd_check, make, naive_conv2d

import backprop as bp
from backprop.layers import conv
from backprop.layers._windows import band_weight, band_weight_grad, copy_runs
from backprop.layers.conv import Conv1D, Conv2D


def tile_widths(ow: int) -> list[int | None]:
    """The default tile and the extremes: one pixel (overlapping tiles) and the whole row."""
    return [None, 1, ow]


@pytest.mark.parametrize("in_shape,filters,kernel,stride,padding,dilation", CONV2D_CASES)
def test_row_lowering_matches_definition_and_finite_differences(
    in_shape, filters, kernel, stride, padding, dilation
):
    layer = make(Conv2D(filters, kernel, stride, padding, dilation), in_shape)
    layer.lowering = "rows"
    x = np.random.default_rng(1).standard_normal((2, *in_shape))
    ref = naive_conv2d(x, layer.params["W"], layer.params["b"], layer._s2, layer._pads, layer._d2)
    for tile in tile_widths(layer.out_shape[1]):
        layer.row_tile = tile
        np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-12)
        fd_check(layer, x)


@pytest.mark.parametrize("in_shape,filters,kernel,stride,padding,dilation", CONV2D_CASES)
def test_im2col_lowering_matches_definition_and_finite_differences(
    in_shape, filters, kernel, stride, padding, dilation
):
    """im2col forced: "auto" picks the row lowering for these small maps, so without this a
    col2im that dropped the dilation (or the bias gradient) met no finite-difference check."""
    layer = make(Conv2D(filters, kernel, stride, padding, dilation), in_shape)
    layer.lowering = "im2col"
    x = np.random.default_rng(1).standard_normal((2, *in_shape))
    ref = naive_conv2d(x, layer.params["W"], layer.params["b"], layer._s2, layer._pads, layer._d2)
    np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-12)
    fd_check(layer, x)


@pytest.mark.parametrize(
    "in_shape,filters,kernel,stride,padding,dilation",
    [((9, 1), 2, 3, 1, "valid", 1), ((10, 3), 2, 4, 3, "same", 1), ((11, 2), 3, 3, 2, 2, 2)],
)
def test_row_lowering_conv1d_finite_differences(
    in_shape, filters, kernel, stride, padding, dilation
):
    layer = make(Conv1D(filters, kernel, stride, padding, dilation), in_shape)
    x = np.random.default_rng(2).standard_normal((3, *in_shape))
    layer.lowering = "im2col"
    ref = layer.forward(x)
    layer.lowering = "rows"
    for tile in tile_widths(layer.out_shape[0]):
        layer.row_tile = tile
        np.testing.assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-12)
        fd_check(layer, x)


@pytest.mark.parametrize("tile", [None, 1, 7])
def test_lowerings_agree_in_float32_and_leave_inputs_alone(tile):
    layer = make(Conv2D(5, 3, stride=(1, 2), padding="same"), (9, 14, 2), "float32")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9, 14, 2)).astype(np.float32)
    G = rng.standard_normal((6, *layer.out_shape)).astype(np.float32)
    x_keep, G_keep = x.copy(), G.copy()
    results = {}
    for lowering in ("im2col", "rows"):
        layer.lowering, layer.row_tile = lowering, tile
        y = layer.forward(x, training=True).copy()
        dx = layer.backward(G).copy()
        results[lowering] = [y, dx, *(g.copy() for g in layer.grads.values())]
    for a, b in zip(results["im2col"], results["rows"], strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x, x_keep)
    np.testing.assert_array_equal(G, G_keep)


def test_band_weight_places_the_kernel_and_its_gradient_is_the_adjoint():
    rng = np.random.default_rng(4)
    kh, kw, c, f, tw, sw, dw = 2, 3, 2, 4, 3, 2, 2
    tin = (tw - 1) * sw + (kw - 1) * dw + 1
    W = rng.standard_normal((kh, kw, c, f))
    B = band_weight(W, tw, tin, sw, dw, np.empty(kh * tin * c * tw * f)).reshape(kh, tin, c, tw, f)
    expect = np.zeros_like(B)
    for j in range(tw):
        for b in range(kw):
            expect[:, j * sw + b * dw, :, j, :] = W[:, b]
    np.testing.assert_array_equal(B, expect)
    # <band(W), dB> = <W, band_grad(dB)> for any dB: band_weight_grad is band_weight's adjoint
    dB = rng.standard_normal((kh * tin * c, tw * f))
    dW = band_weight_grad(dB, tw, sw, dw, np.empty_like(W))
    assert np.isclose(np.sum(B.reshape(dB.shape) * dB), np.sum(W * dW), rtol=1e-12)


@pytest.mark.parametrize(
    "layer,in_shape,rows,tile",
    [
        (Conv2D(6, 5, padding=2), (28, 28, 1), True, 7),  # LeNet's first layer
        (Conv2D(16, 5), (14, 14, 6), True, 5),  # its second
        (Conv2D(32, 3, padding="same"), (16, 16, 32), False, None),  # many channels: im2col
        (Conv2D(8, 1), (10, 10, 2), False, None),  # 1x1: nothing to lower
        (Conv1D(4, 3), (199, 1), False, None),  # 197 outputs, prime: one tile of 66x the work
        (Conv1D(4, 3), (200, 1), True, 11),  # 198 = 18 tiles of 11: 13/3 times the work
        (Conv1D(8, 5, padding="same"), (30, 2), True, 5),
    ],
)
def test_auto_picks_the_row_lowering_only_where_it_applies(layer, in_shape, rows, tile):
    layer = make(layer, in_shape, "float32")
    assert layer._rows() is rows
    if rows:
        assert layer._tile == tile
        assert layer._tile * layer.filters >= conv.ROWS_MIN_WIDTH


def test_bad_lowering_and_tile_name_the_value():
    layer = make(Conv2D(2, 3), (6, 6, 1))
    x = np.zeros((1, 6, 6, 1))
    layer.lowering = "winograd"
    with pytest.raises(ValueError, match="'winograd'"):
        layer.forward(x)
    layer.lowering, layer.row_tile = "rows", 3
    with pytest.raises(ValueError, match="row_tile must divide the output width 4, got 3"):
        layer.forward(x)
    for bad in (0, -2, -4, 2.0, True):  # were ZeroDivisionError, NumPy shape errors, TypeError
        layer.row_tile = bad
        with pytest.raises(ValueError, match=f"row_tile must be a positive integer, got {bad}"):
            layer.forward(x)
    layer.lowering, layer.row_tile = "im2col", None
    for bad in (0, -1, 2.5):  # were taken as 1, 1 and 2 without a word
        layer.chunk_samples = bad
        with pytest.raises(
            ValueError, match=f"chunk_samples must be a positive integer, got {bad}"
        ):
            layer.forward(x)


def test_the_auto_tile_of_a_huge_output_width_is_found_at_once():
    """The tile search looped over every number up to the output width: a Conv1D whose
    padding (as a forged model file may set) makes 2*10**8 outputs spent about 30 s there
    before predict could even fail to allocate."""
    import time

    layer = make(Conv1D(1, 3, padding=10**8), (5, 1))
    start = time.perf_counter()
    assert layer._tile == 217  # 2*10**8 + 3 = 7 * 31 * 921659: the first divisor >= 40
    assert time.perf_counter() - start < 2.0
    layer = make(Conv1D(1, 3, padding=10**18), (5, 1))  # divisor pairs: 10**9 of them
    start = time.perf_counter()
    assert not layer._rows()  # the auto rule looks at tiles up to 22 pixels only (tin <= 24)
    assert time.perf_counter() - start < 2.0
    layer = make(Conv1D(2, 3, padding=10**8), (5, 1))
    assert layer._tile == 31  # two filters: the first divisor >= 20
    layer = make(Conv1D(1, 3, padding=10**8 - 1), (5, 1))
    assert layer._tile == 66666667  # 2*10**8 + 1 = 3 * 66666667: a divisor above sqrt(ow)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_copy_runs_equals_copyto_for_strided_views(dtype):
    rng = np.random.default_rng(5)
    xp = rng.standard_normal((3, 9, 10, 2)).astype(dtype)
    s0, s1, s2, s3 = xp.strides
    views = [
        as_strided(xp, shape=(3, 4, 2, 3, 6, 2), strides=(s0, s1 * 2, s2 * 4, s1, s2, s3)),
        xp[:, ::2, 1::3, :],  # runs of c only
        xp[:, :, :, ::-1],  # reversed channels: no run, plain copy
        xp.transpose(0, 2, 1, 3),
    ]
    for view in views:
        dst = np.full(view.shape, np.nan, dtype=dtype)
        copy_runs(dst, view)
        np.testing.assert_array_equal(dst, view)
        big = np.full((*view.shape[:-1], view.shape[-1] + 3), np.nan, dtype=dtype)
        copy_runs(big[..., 1:-2], view)  # a strided destination
        np.testing.assert_array_equal(big[..., 1:-2], view)
        assert np.isnan(big[..., 0]).all() and np.isnan(big[..., -2:]).all()


def test_row_tile_is_ignored_by_im2col():
    """row_tile belongs to the row lowering: im2col neither reads nor checks it."""
    layer = make(Conv2D(2, 3), (6, 6, 1))
    x = np.random.default_rng(6).standard_normal((2, 6, 6, 1))
    layer.lowering = "im2col"
    y = layer.forward(x, training=True)
    layer.row_tile = 3  # does not divide the output width 4
    np.testing.assert_array_equal(layer.forward(x, training=True), y)
    layer.backward(np.ones_like(y))


@pytest.mark.parametrize("lowering", ["im2col", "rows"])
def test_an_empty_batch_passes_through(lowering):
    layer = make(Conv2D(3, 3, padding=1), (5, 6, 2), "float32")
    layer.lowering = lowering
    x = np.zeros((0, 5, 6, 2), dtype=np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (0, 5, 6, 3) and y.dtype == np.float32
    for g in layer.grads.values():
        g.fill(np.nan)  # a previous step's gradients must not survive
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == x.shape
    assert not layer.grads["W"].any() and not layer.grads["b"].any()
    assert layer.forward(x).shape == (0, 5, 6, 3)


def test_a_layer_pickled_with_the_old_tile_cache_still_runs():
    """Layers pickled before the tile search became the method ``_auto_tile`` carry the old cache
    under that name, ``(key, tile)``: the instance attribute hid the method ('tuple' object is
    not callable) and such a model failed on its first forward."""
    model = bp.Sequential([bp.Conv2D(6, 5, padding=2), bp.Flatten(), bp.Dense(3)], (28, 28, 1))
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    want = model.forward(x)
    vars(model.layers[0])["_auto_tile"] = ((28, 6, 16), 7)  # as 34d9876 left it
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).forward(x), want)
