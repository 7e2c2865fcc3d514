"""Convolution, pooling and reshape layers: finite differences in float64, a naive reference,
invariants (1x1 conv == Dense on channels, conv == sum of shifted Dense products), dtypes and
input immutability. Shapes stay tiny so the whole file runs in a few seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backprop.layers.conv import Conv1D, Conv2D
from backprop.layers.pooling import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    MaxPool1D,
    MaxPool2D,
)
from backprop.layers.reshape import Flatten, Reshape


def make(layer, in_shape, dtype="float64", seed=0):
    layer.build(in_shape)
    layer._allocate(dtype, np.random.default_rng(seed))
    if "b" in layer.params:  # a non-zero bias so that its gradient is exercised
        layer.params["b"][...] = np.random.default_rng(seed + 1).standard_normal(
            layer.params["b"].shape
        )
    return layer


def fd_check(layer, x, eps=1e-6, tol=1e-7):
    """L = sum(forward(x) * R): compare backward's dx and grads with central differences."""
    rng = np.random.default_rng(42)
    R = rng.standard_normal(layer.forward(x).shape)
    layer.forward(x, training=True)
    dx = layer.backward(R)
    assert dx.shape == x.shape
    grads = {k: g.copy() for k, g in layer.grads.items()}

    def loss() -> float:
        return float(np.sum(layer.forward(x) * R))

    def numeric(arr: np.ndarray) -> np.ndarray:
        out = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = loss()
            arr[i] = old - eps
            down = loss()
            arr[i] = old
            out[i] = (up - down) / (2 * eps)
        return out

    x = x.copy()  # the loop perturbs it
    np.testing.assert_allclose(dx, numeric(x), rtol=tol, atol=tol)
    for k, p in layer.params.items():
        np.testing.assert_allclose(grads[k], numeric(p), rtol=tol, atol=tol, err_msg=k)


def naive_conv2d(x, W, b, stride, pads, dilation):
    """Direct loops over output pixels: the definition, for reference only."""
    (t, bo), (le, r) = pads
    xp = np.pad(x, ((0, 0), (t, bo), (le, r), (0, 0)))
    kh, kw, _, f = W.shape
    sh, sw = stride
    dh, dw = dilation
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = xp[
                :,
                i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                j * sw : j * sw + dw * (kw - 1) + 1 : dw,
            ]
            y[:, i, j] = np.einsum("nabc,abcf->nf", patch, W) + b
    return y


CONV2D_CASES = [
    # (in_shape (h, w, c), filters, kernel, stride, padding, dilation)
    ((5, 5, 1), 1, 3, 1, "valid", 1),
    ((6, 7, 3), 2, 3, 2, "same", 1),  # stride > 1, even/odd sizes, several channels
    ((7, 6, 2), 3, (3, 2), (2, 1), "same", 1),  # even kernel: odd padding total
    ((7, 7, 2), 2, 3, 1, 1, 2),  # int padding, dilation
    ((8, 6, 1), 2, 4, 3, "valid", 1),  # kernel > stride, windows that do not tile
    ((5, 6, 2), 2, 2, 3, "same", 1),  # stride > kernel: some inputs get no gradient
    ((9, 8, 2), 1, 3, 2, 2, (2, 1)),
]


@pytest.mark.parametrize("in_shape,filters,kernel,stride,padding,dilation", CONV2D_CASES)
def test_conv2d_matches_definition_and_finite_differences(
    in_shape, filters, kernel, stride, padding, dilation
):
    layer = make(Conv2D(filters, kernel, stride, padding, dilation), in_shape)
    x = np.random.default_rng(1).standard_normal((2, *in_shape))
    y = layer.forward(x)
    ref = naive_conv2d(x, layer.params["W"], layer.params["b"], layer._s2, layer._pads, layer._d2)
    assert y.shape == (2, *layer.out_shape)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    fd_check(layer, x)


def test_same_padding_puts_the_odd_zero_after():
    # kernel 2, "same": one zero in total, after the sequence (TensorFlow's rule), so a kernel
    # [0, 1] reads the next step and the last output sees the padding.
    layer = make(Conv1D(1, 2, padding="same"), (4, 1))
    layer.params["W"][...] = np.array([0.0, 1.0]).reshape(2, 1, 1)
    layer.params["b"][...] = 0.0
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    np.testing.assert_array_equal(layer.forward(x).ravel(), [2.0, 3.0, 4.0, 0.0])


def test_same_padding_keeps_ceil_size():
    for size, s in [(7, 1), (7, 2), (8, 3), (1, 2)]:
        layer = Conv2D(1, 3, stride=s, padding="same")
        assert layer.build((size, size, 1))[:2] == (-(-size // s),) * 2


@pytest.mark.parametrize(
    "in_shape,filters,kernel,stride,padding,dilation",
    [((9, 1), 2, 3, 1, "valid", 1), ((10, 3), 2, 4, 3, "same", 1), ((11, 2), 3, 3, 2, 2, 2)],
)
def test_conv1d_is_conv2d_of_height_one(in_shape, filters, kernel, stride, padding, dilation):
    conv1 = make(Conv1D(filters, kernel, stride, padding, dilation), in_shape)
    assert conv1.params["W"].shape == (kernel, in_shape[1], filters)
    pad2 = (0, padding) if isinstance(padding, int) else padding
    conv2 = make(Conv2D(filters, (1, kernel), (1, stride), pad2, (1, dilation)), (1, *in_shape))
    conv2.params["W"][...] = conv1.params["W"][None]
    conv2.params["b"][...] = conv1.params["b"]
    x = np.random.default_rng(2).standard_normal((3, *in_shape))
    np.testing.assert_allclose(conv1.forward(x), conv2.forward(x[:, None])[:, 0], rtol=1e-13)
    fd_check(conv1, x)


def test_1x1_conv_is_dense_on_channels():
    layer = make(Conv2D(4, 1), (5, 6, 3))
    x = np.random.default_rng(3).standard_normal((2, 5, 6, 3))
    W, b = layer.params["W"][0, 0], layer.params["b"]
    np.testing.assert_allclose(layer.forward(x), x @ W + b, rtol=1e-13)


def test_conv_is_sum_of_shifted_dense_products():
    # y[:, i, j] = b + sum_{a,b'} x[:, i+a, j+b'] @ W[a, b'] for a valid stride-1 convolution.
    layer = make(Conv2D(3, (2, 3)), (5, 6, 2))
    x = np.random.default_rng(4).standard_normal((2, 5, 6, 2))
    W = layer.params["W"]
    expect = np.zeros((2, 4, 4, 3)) + layer.params["b"]
    for a in range(2):
        for bb in range(3):
            expect += x[:, a : a + 4, bb : bb + 4] @ W[a, bb]
    np.testing.assert_allclose(layer.forward(x), expect, rtol=1e-13)


POOL_CASES = [
    (MaxPool2D, (5, 7, 2), dict(pool_size=2)),  # does not tile: last row/column dropped
    (MaxPool2D, (6, 6, 1), dict(pool_size=3, stride=2)),  # overlapping windows
    (MaxPool2D, (5, 5, 3), dict(pool_size=2, padding="same")),
    (MaxPool2D, (5, 6, 1), dict(pool_size=(3, 2), stride=(2, 1), padding=1)),
    (AvgPool2D, (5, 7, 2), dict(pool_size=2)),
    (AvgPool2D, (6, 6, 1), dict(pool_size=3, stride=2, padding="same")),
    (AvgPool2D, (5, 6, 2), dict(pool_size=(3, 2), stride=(2, 1), padding=1)),
    (MaxPool1D, (7, 2), dict(pool_size=3, stride=2, padding=1)),
    (AvgPool1D, (7, 2), dict(pool_size=2, padding="same")),
    (GlobalAvgPool2D, (3, 4, 2), {}),
    (GlobalAvgPool1D, (5, 3), {}),
    (Flatten, (3, 4, 2), {}),
    (Reshape, (3, 4, 2), dict(shape=(4, -1))),
]


@pytest.mark.parametrize("cls,in_shape,kwargs", POOL_CASES)
def test_parameter_free_layers_finite_differences(cls, in_shape, kwargs):
    layer = make(cls(**kwargs), in_shape)
    # distinct values: max pooling is differentiable away from ties
    x = np.random.default_rng(5).permutation(2 * np.prod(in_shape)).reshape(2, *in_shape) / 7.0
    fd_check(layer, x)


def test_pooling_reference_values():
    x = np.arange(2 * 5 * 5, dtype=np.float64).reshape(1, 5, 5, 2) % 7
    mp = make(MaxPool2D(2), (5, 5, 2))
    ap = make(AvgPool2D(3, stride=2, padding="same"), (5, 5, 2))
    ref_max = np.array(
        [
            [x[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(0, 1)) for j in range(2)]
            for i in range(2)
        ]
    )
    np.testing.assert_array_equal(mp.forward(x)[0], ref_max)
    # same padding with 3/2: one row/column each side, padding not counted in the mean
    xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    ref_avg = np.array(
        [
            [np.nanmean(xp[2 * i : 2 * i + 3, 2 * j : 2 * j + 3], axis=(0, 1)) for j in range(3)]
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(ap.forward(x)[0], ref_avg, rtol=1e-13)


def test_max_pool_ties_send_gradient_to_first_maximum():
    layer = make(MaxPool2D(2), (2, 4, 1))
    x = np.array([[1.0, 1.0, 0.0, 3.0], [1.0, 0.0, 3.0, 3.0]]).reshape(1, 2, 4, 1)
    layer.forward(x, training=True)
    dx = layer.backward(np.array([10.0, 20.0]).reshape(1, 1, 2, 1))
    # window 1 ties at (0,0),(0,1),(1,0): first in row-major order wins; window 2 at (0,1) first
    expect = np.array([[10.0, 0.0, 0.0, 20.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(dx, expect)


@pytest.mark.parametrize(
    "layer,in_shape",
    [
        (Conv2D(3, 3, padding="same"), (5, 5, 2)),
        (Conv1D(2, 3, stride=2), (7, 2)),
        (MaxPool2D(2, padding="same"), (5, 5, 2)),
        (AvgPool2D(2), (4, 4, 2)),
        (MaxPool1D(2), (6, 2)),
        (GlobalAvgPool2D(), (4, 4, 2)),
        (Flatten(), (4, 4, 2)),
    ],
)
def test_float32_stays_float32_and_input_untouched(layer, in_shape):
    make(layer, in_shape, dtype="float32")
    x = np.random.default_rng(6).standard_normal((3, *in_shape)).astype(np.float32)
    keep = x.copy()
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    g = np.ones_like(y)
    g_keep = g.copy()
    dx = layer.backward(g)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(g, g_keep)
    for grad in layer.grads.values():
        assert grad.dtype == np.float32


def test_a_smaller_batch_after_a_larger_one_keeps_padding_zero():
    layer = make(Conv2D(1, 3, padding=1), (4, 4, 1))
    x = np.random.default_rng(8).standard_normal((3, 4, 4, 1))
    layer.forward(x)
    small = layer.forward(x[1:2])
    np.testing.assert_allclose(small, layer.forward(x)[1:2], rtol=1e-13)


@pytest.mark.parametrize(
    "make_layer,in_shape,match",
    [
        (lambda: Conv2D(2, 3), (5, 5), "per-sample input shape"),
        (lambda: Conv2D(2, 7), (5, 5, 1), "too small"),
        (lambda: Conv1D(2, 3), (5, 5, 1), "per-sample input shape"),
        (lambda: MaxPool2D(2, padding=2), (5, 5, 1), "smaller than pool_size"),
        (lambda: Reshape((3, -1)), (4, 5), "cannot reshape"),
        (lambda: Reshape((3, 3)), (4, 5), "20 values"),
    ],
)
def test_bad_input_shapes_are_refused(make_layer, in_shape, match):
    with pytest.raises(ValueError, match=match):
        make_layer().build(in_shape)


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: Conv2D(0, 3), "filters"),
        (lambda: Conv2D(2, (3, 3, 3)), "kernel_size"),
        (lambda: Conv2D(2, 3, stride=0), "stride"),
        (lambda: Conv2D(2, 3, padding="full"), "padding"),
        (lambda: Conv2D(2, 3, padding=-1), "padding"),
        (lambda: Conv2D(2, 3, dilation=True), "dilation"),
        (lambda: MaxPool2D(0), "pool_size must be .* got 0"),
        (lambda: AvgPool1D((2, 2)), r"pool_size must be .* got \(2, 2\)"),
        (lambda: Reshape((2, -1, -1)), "at most one -1"),
        # a string or bytes was read character by character: "12" became (1, 2), b"12" (49, 50)
        (lambda: Reshape("12"), "sequence of ints, got '12'"),
        (lambda: Reshape(b"12"), r"sequence of ints, got b'12'"),
        (lambda: Reshape({2: 1}), r"sequence of ints, got \{2: 1\}"),  # was (2,): its keys
    ],
)
def test_bad_arguments_name_the_value(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_wrong_input_shape_after_build_is_refused():
    layer = make(Conv2D(2, 3), (5, 5, 1))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(n, 5, 5, 1\)"):
        layer.forward(np.zeros((1, 6, 5, 1)))
    with pytest.raises(ValueError, match="was built for input"):
        layer.build((6, 5, 1))


@pytest.mark.parametrize(
    "layer",
    [
        Conv2D(4, (3, 2), stride=(2, 1), padding="same", dilation=(1, 2), init="he_normal"),
        Conv1D(2, 5, stride=2, padding=1),
        MaxPool2D(3, stride=2, padding=1),
        AvgPool1D(2),
        Reshape((7, -1)),
        Flatten(),
        GlobalAvgPool2D(),
    ],
)
def test_config_rebuilds_an_equivalent_layer(layer):
    clone = type(layer)(**json.loads(json.dumps(layer.config())))
    assert clone.config() == layer.config()


def test_agrees_with_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    conv = make(Conv2D(4, (3, 2), stride=2, padding=1, dilation=(1, 2)), (7, 8, 3))
    pool = make(MaxPool2D(3, stride=2, padding=1), conv.out_shape)
    x = rng.standard_normal((2, 7, 8, 3))
    y = pool.forward(conv.forward(x, training=True), training=True)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(pool.backward(g))

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)  # NCHW
    Wt = torch.tensor(conv.params["W"].transpose(3, 2, 0, 1), requires_grad=True)  # (f, c, kh, kw)
    bt = torch.tensor(conv.params["b"], requires_grad=True)
    yt = F.conv2d(xt, Wt, bt, stride=2, padding=1, dilation=(1, 2))
    yt = F.max_pool2d(yt, 3, stride=2, padding=1)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.grads["W"], Wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10)
    np.testing.assert_allclose(conv.grads["b"], bt.grad.numpy(), rtol=1e-10)


HUGE = 10**39  # a model file's header may hold integers of up to 40 digits


@pytest.mark.parametrize(
    "factory, same_as, in_shape",
    [
        (lambda s: Conv2D(2, 3, stride=s), lambda: Conv2D(2, 3, stride=6), (6, 6, 2)),
        (
            lambda s: Conv2D(2, 3, stride=(1, s), padding=1),
            lambda: Conv2D(2, 3, padding=1, stride=(1, 9)),
            (5, 6, 1),
        ),
        (
            lambda s: Conv2D(2, 3, stride=s, padding="same"),
            lambda: Conv2D(2, 3, stride=7, padding="same"),
            (6, 5, 1),
        ),
        (lambda s: Conv2D(2, (1, 3), dilation=(s, 1)), lambda: Conv2D(2, (1, 3)), (4, 6, 2)),
        (lambda s: Conv1D(3, 2, stride=s), lambda: Conv1D(3, 2, stride=5), (5, 2)),
        (lambda s: MaxPool2D(2, stride=s), lambda: MaxPool2D(2, stride=5), (5, 4, 2)),
        (
            lambda s: AvgPool2D(3, stride=s, padding=1),
            lambda: AvgPool2D(3, stride=8, padding=1),
            (5, 4, 2),
        ),
        (lambda s: MaxPool1D(3, stride=s), lambda: MaxPool1D(3, stride=7), (6, 1)),
    ],
)
@pytest.mark.parametrize("lowering", ["im2col", "rows"])
def test_a_stride_or_dilation_that_is_never_applied_may_be_huge(
    factory, same_as, in_shape, lowering
):
    """A stride along an axis with one window (or a dilation along a kernel of one tap) never
    moves a window, but it was multiplied into the strided views' byte strides: from 2**60 on
    (a model file can hold 10**39) forward died in NumPy with "Python int too large to convert
    to C long". It computes what any stride giving one window computes, and keeps its value."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, *in_shape))
    G = None
    results = []
    for layer in (make(factory(HUGE), in_shape), make(same_as(), in_shape)):
        if hasattr(layer, "lowering"):
            layer.lowering = lowering
        y = layer.forward(x, training=True)
        G = rng.standard_normal(y.shape) if G is None else G
        results.append((y, layer.backward(G), {k: g.copy() for k, g in layer.grads.items()}))
    (y, dx, grads), (y_ref, dx_ref, grads_ref) = results
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_ref[k], rtol=1e-12, atol=1e-12)
    assert HUGE in json.loads(json.dumps(factory(HUGE).config())).values() or any(
        HUGE in v for v in factory(HUGE).config().values() if isinstance(v, list)
    )


@pytest.mark.parametrize(
    "kernel, stride, dilation, padding",
    [((3, 2), (2, 3), (1, 2), 1), ((2, 3), (1, 2), (2, 1), "same"), (3, 2, 1, "valid")],
)
def test_dx_is_the_full_correlation_of_the_dilated_gradient_with_the_flipped_kernel(
    kernel, stride, dilation, padding
):
    # The statement of conv.py's docstring and of docs/experiments/convolution.md, step 4:
    # dxp = full correlation of G (sh - 1 zeros between rows) with the kernel flipped in both
    # spatial axes, dilated as in the forward pass, its channel axes swapped; computed here
    # with a second Conv2D (stride 1) as the correlation.
    rng = np.random.default_rng(5)
    conv = make(Conv2D(4, kernel, stride=stride, padding=padding, dilation=dilation), (9, 11, 3))
    x = rng.standard_normal((2, 9, 11, 3))
    G = rng.standard_normal((2, *conv.out_shape))
    conv.forward(x, training=True)
    dx = conv.backward(G)
    (kh, kw), (sh, sw), (dh, dw) = conv._k2, conv._s2, conv._d2
    n, oh, ow, f = G.shape
    Gd = np.zeros((n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, f))
    Gd[:, ::sh, ::sw] = G
    eh, ew = dh * (kh - 1), dw * (kw - 1)  # "full": every window that overlaps the map
    Gp = np.pad(Gd, ((0, 0), (eh, eh), (ew, ew), (0, 0)))
    flipped = make(Conv2D(3, kernel, dilation=dilation), Gp.shape[1:])
    flipped.params["W"][...] = conv.params["W"][::-1, ::-1].transpose(0, 1, 3, 2)
    flipped.params["b"][...] = 0
    full = flipped.forward(Gp)  # dxp for rows and columns up to the last window's reach
    _, hp, wp, _ = conv._padded_shape(n, 3)
    dxp = np.zeros((n, hp, wp, 3))
    dxp[:, : full.shape[1], : full.shape[2]] = full[:, :hp, :wp]
    np.testing.assert_allclose(dx, conv._unpad(dxp), rtol=1e-12, atol=1e-12)
