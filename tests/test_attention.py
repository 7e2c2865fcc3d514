"""Self-attention, embeddings, positional encodings and the per-step loss (float64 checks)."""

import numpy as np
import pytest
from conftest import finite_difference_check, standalone

import backprop as bp


def padding_mask(n, t):
    mask = np.ones((n, t), dtype=bool)
    mask[0, t - 2 :] = False
    return mask


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("masked", [False, True], ids=["unpadded", "padded"])
def test_attention_matches_finite_differences(heads, causal, masked, rng):
    n, t, d = 2, 5, 4
    x = rng.standard_normal((n, t, d))
    layer = standalone(bp.MultiHeadSelfAttention(heads, 2, causal=causal), (t, d))
    for key in ("bq", "bv", "bo"):  # non-zero biases, so their gradients are checked
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape)
    errors = finite_difference_check(layer, x, padding_mask(n, t) if masked else None)
    assert max(errors.values()) < 1e-6, errors


def test_attention_on_length_one_sequences(rng):
    layer = standalone(bp.MultiHeadSelfAttention(2, 3, causal=True), (1, 4))
    errors = finite_difference_check(layer, rng.standard_normal((3, 1, 4)))
    assert max(errors.values()) < 1e-6, errors


def test_causal_attention_ignores_the_future(rng):
    t = 6
    layer = standalone(bp.MultiHeadSelfAttention(2, 3, causal=True), (t, 4))
    x = rng.standard_normal((2, t, 4))
    before = layer.forward(x)
    x[:, 4:] = rng.standard_normal((2, 2, 4))
    after = layer.forward(x)
    np.testing.assert_allclose(after[:, :4], before[:, :4], rtol=1e-12)
    assert not np.allclose(after[:, 4:], before[:, 4:])


def test_padded_steps_change_neither_attention_outputs_nor_gradients(rng):
    n, t, length, d = 2, 6, 4, 4
    layer = standalone(bp.MultiHeadSelfAttention(2, 3), (t, d))
    x = rng.standard_normal((n, t, d))
    mask = np.ones((n, t), dtype=bool)
    mask[0, length:] = False
    g = rng.standard_normal((n, t, d))
    out = layer.forward(x, training=True, mask=mask)
    dx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert np.all(out[0, length:] == 0) and np.all(dx[0, length:] == 0)
    alone = standalone(bp.MultiHeadSelfAttention(2, 3), (length, d))
    for k in layer.params:
        alone.params[k][...] = layer.params[k]
    out0 = alone.forward(x[:1, :length], training=True)
    alone.backward(g[:1, :length])
    grads0 = {k: v.copy() for k, v in alone.grads.items()}
    other = standalone(bp.MultiHeadSelfAttention(2, 3), (t, d))
    for k in layer.params:
        other.params[k][...] = layer.params[k]
    other.forward(x[1:], training=True)
    other.backward(g[1:])
    np.testing.assert_allclose(out[0, :length], out0[0], rtol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads0[k] + other.grads[k], atol=1e-12)


def test_attention_weights_are_distributions_and_match_torch(rng):
    torch = pytest.importorskip("torch")
    n, t, d, h = 3, 5, 6, 2
    layer = standalone(bp.MultiHeadSelfAttention(h, d // h), (t, d))
    for key in ("bq", "bv", "bo"):
        layer.params[key][...] = rng.standard_normal(layer.params[key].shape)
    p = layer.params
    module = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.in_proj_weight.copy_(
            torch.from_numpy(np.concatenate([p["Wq"], p["Wk"], p["Wv"]], 1).T.copy())
        )
        module.in_proj_bias.copy_(torch.from_numpy(np.concatenate([p["bq"], 0 * p["bq"], p["bv"]])))
        module.out_proj.weight.copy_(torch.from_numpy(p["Wo"].T.copy()))
        module.out_proj.bias.copy_(torch.from_numpy(p["bo"].copy()))
    x = rng.standard_normal((n, t, d))
    g = rng.standard_normal((n, t, d))
    for causal in (False, True):
        layer.causal = causal
        ours = layer.forward(x, training=True)
        dx = layer.backward(g)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        attn_mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if causal else None
        theirs = module(xt, xt, xt, attn_mask=attn_mask, need_weights=False)[0]
        theirs.backward(torch.from_numpy(g))
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            layer.grads["Wo"], module.out_proj.weight.grad.numpy().T, atol=1e-12
        )
        module.zero_grad()


def test_embedding_gradient_mask_and_errors(rng):
    layer = standalone(bp.Embedding(7, 3), (4,))
    ids = rng.integers(0, 7, size=(5, 4))
    errors = finite_difference_check(layer, ids, wrt_input=False)
    assert errors["E"] < 1e-6, errors
    out = layer.forward(ids)
    np.testing.assert_array_equal(out, layer.params["E"][ids])
    with pytest.raises(ValueError, match=r"got id 7, outside 0..6"):
        layer.forward(np.array([[1, 2, 7, 0]]))
    with pytest.raises(ValueError, match=r"got id -1"):
        layer.forward(np.array([[1, -1, 3, 0]]))
    with pytest.raises(ValueError, match="integer ids"):
        layer.forward(np.array([[0.5, 1, 2, 3]]))
    # a float id beyond int64 was cast first (a RuntimeWarning) and reported as id -2**63
    with np.errstate(all="raise"), pytest.raises(ValueError, match=r"got id 1e\+20, outside"):
        layer.forward(np.array([[1e20, 1, 2, 3]]))
    assert bp.Embedding.integer_input is True
    padded = standalone(bp.Embedding(7, 3, mask_zero=True), (4,))
    ids[0, 2:] = 0
    out = padded.forward(ids, training=True)
    assert np.all(out[0, 2:] == 0)
    padded.backward(np.ones_like(out))
    assert np.all(padded.grads["E"][0] == 0)
    np.testing.assert_array_equal(padded.compute_mask(ids, None), ids != 0)


def test_masks_flow_from_embedding_through_pointwise_layers(rng):
    from backprop.layers.masking import forward_with_mask

    ids = rng.integers(1, 5, size=(2, 4))
    ids[0, 3] = 0
    emb = standalone(bp.Embedding(5, 3, mask_zero=True), (4,))
    lstm = standalone(bp.LSTM(2, return_sequences=True), (4, 3))
    out, mask = forward_with_mask(emb, ids, False, None)

    class Pointwise(bp.Layer):  # a layer that knows nothing of masks
        def forward(self, x, training=False):
            return np.tanh(x)

    out, mask = forward_with_mask(Pointwise(), out, False, mask)
    np.testing.assert_array_equal(mask, ids != 0)
    out, mask = forward_with_mask(lstm, out, False, mask)
    assert np.all(out[0, 3] == 0) and mask is not None
    out, mask = forward_with_mask(standalone(bp.GRU(2), (4, 2)), out, False, mask)
    assert mask is None and out.shape == (2, 2)


def test_masking_layer_marks_all_equal_steps(rng):
    x = rng.standard_normal((2, 3, 2))
    x[1, 2] = 0.0
    layer = standalone(bp.Masking(0.0), (3, 2))
    assert layer.compute_mask(x, None).tolist() == [[True] * 3, [True, True, False]]


@pytest.mark.parametrize("mask_value", [9.0, np.inf])
def test_masking_backward_zeroes_padded_steps_and_matches_finite_differences(mask_value, rng):
    """``y = x`` at real steps, the constant 0 at padded ones, so ``dx = dy`` and 0 there. The
    padded steps sit on the mask's edge (any change makes them real), so finite differences check
    the real steps only and the padded ones are checked to be exactly 0. A backward that passed
    ``dy`` through unmasked met no test: the layers after a Masking zero those steps again.
    (``Masking(0.0)`` is the identity, padded steps included, so its ``dx = dy`` everywhere.)"""
    n, t, d = 2, 4, 3
    x = rng.standard_normal((n, t, d))
    x[0, 2:] = mask_value
    x[1, 1] = mask_value
    padded = np.zeros((n, t), dtype=bool)
    padded[0, 2:] = padded[1, 1] = True
    layer = standalone(bp.Masking(mask_value), (t, d))
    R = rng.standard_normal((n, t, d))
    layer.forward(x, training=True)
    dx = layer.backward(R)
    assert np.all(dx[padded] == 0)
    np.testing.assert_array_equal(dx[~padded], R[~padded])
    eps = 1e-6
    for idx in zip(*np.nonzero(~padded), strict=True):
        for j in range(d):
            up, down = x.copy(), x.copy()
            up[(*idx, j)] += eps
            down[(*idx, j)] -= eps
            num = ((layer.forward(up) - layer.forward(down)) * R).sum() / (2 * eps)
            assert num == pytest.approx(dx[(*idx, j)], rel=1e-6, abs=1e-9)


def test_positional_encodings(rng):
    t, d = 5, 4
    x = rng.standard_normal((2, t, d))
    sin = standalone(bp.SinusoidalPositionalEncoding(), (t, d))
    table = sin.forward(x) - x
    # P[s, 0] = sin(s), P[s, 1] = cos(s), P[s, 2] = sin(s / 100), P[s, 3] = cos(s / 100)
    s = np.arange(t)
    expected = np.stack([np.sin(s), np.cos(s), np.sin(s / 100), np.cos(s / 100)], axis=1)
    np.testing.assert_allclose(table[0], expected, atol=1e-12)
    np.testing.assert_array_equal(sin.backward(x), x)
    learned = standalone(bp.LearnedPositionalEncoding(), (t, d))
    errors = finite_difference_check(learned, x)
    assert max(errors.values()) < 1e-6, errors
    with pytest.raises(ValueError, match="built for 5 steps, got 6"):
        learned.forward(rng.standard_normal((1, 6, d)))


def test_sequence_cross_entropy_ignores_padded_steps(rng):
    n, t, k = 3, 4, 5
    z = rng.standard_normal((n, t, k))
    y = rng.integers(0, k, size=(n, t))
    y[0, 2:] = -1
    w = np.array([1.0, 2.0, 0.5])
    loss = bp.SequenceCrossEntropy()
    value = loss.forward(z, y, sample_weight=w)
    grad = loss.backward()
    # Reference: the flat SoftmaxCrossEntropy over the real steps, each weighted by its sample.
    valid = y != -1
    flat = bp.SoftmaxCrossEntropy()
    ref = flat.forward(
        z[valid], y[valid], sample_weight=np.broadcast_to(w[:, None], y.shape)[valid]
    )
    assert value == pytest.approx(ref, rel=1e-12)
    assert np.all(grad[0, 2:] == 0)
    eps, num = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        old = z[idx]
        z[idx] = old + eps
        up = loss.forward(z, y, sample_weight=w)
        z[idx] = old - eps
        down = loss.forward(z, y, sample_weight=w)
        z[idx] = old
        num[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grad, num, atol=1e-8)
    with pytest.raises(ValueError, match="class label 5 out of range"):
        loss.forward(z, np.full((n, t), 5))
    with pytest.raises(ValueError, match="no real"):
        loss.forward(z, np.full((n, t), -1))
    # float labels were cast before the range check: inf and 1e20 were reported as -2**63
    for big, shown in ((1e20, r"1e\+20"), (np.inf, "inf"), (7.0, "7")):
        with np.errstate(all="raise"), pytest.raises(ValueError, match=f"class label {shown} out"):
            loss.forward(z, np.where(y == -1, -1.0, big))


@pytest.mark.parametrize("reduce", ["mean", "last"])
def test_sequence_pool_over_valid_steps(reduce, rng):
    x = rng.standard_normal((3, 4, 2))
    mask = padding_mask(3, 4)
    layer = standalone(bp.SequencePool(reduce), (4, 2))
    errors = finite_difference_check(layer, x, mask)
    assert max(errors.values()) < 1e-6, errors
    out = layer.forward(x, mask=mask)
    expected = x[0, :2].mean(axis=0) if reduce == "mean" else x[0, 1]
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)
    np.testing.assert_allclose(out[1], x[1].mean(axis=0) if reduce == "mean" else x[1, 3])


@pytest.mark.parametrize("fill", [np.inf, -np.inf, np.nan])
def test_non_finite_padded_steps_leave_attention_and_pooling_finite(fill, rng):
    # Masking(mask_value=inf) is allowed, and a Dense or LayerNorm before the attention turns an
    # inf padded step into NaN: a padded step's values must not reach a real one (0 * inf = NaN
    # in A @ V, in x^T dQ and in the pooling sum made every output NaN).
    n, t, length, d = 2, 5, 3, 4
    x = rng.standard_normal((n, t, d))
    g = rng.standard_normal((n, t, d))
    mask = np.ones((n, t), dtype=bool)
    mask[0, length:] = False
    clean = x.copy()
    x[0, length:] = fill
    for causal in (False, True):
        layer = standalone(bp.MultiHeadSelfAttention(2, 3, causal=causal), (t, d))
        with np.errstate(all="raise"):
            out = layer.forward(x, training=True, mask=mask)
            dx = layer.backward(g)
        grads = {k: v.copy() for k, v in layer.grads.items()}
        ref = layer.forward(clean, training=True, mask=mask)
        ref_dx = layer.backward(g)
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(dx, ref_dx)
        for k in grads:
            np.testing.assert_array_equal(grads[k], layer.grads[k])
    for reduce in ("mean", "last"):
        pool = standalone(bp.SequencePool(reduce), (t, d))
        with np.errstate(all="raise"):
            out = pool.forward(x, mask=mask)
        np.testing.assert_array_equal(out, pool.forward(clean, mask=mask))


def test_integer_sequences_give_the_numbers_of_their_float_copies(rng):
    # Stand-alone layers took the dtype of x for constants: int(1 / sqrt(k)) = 0 scaled every
    # attention score to 0 and the sinusoidal table cast to integers lost its values.
    x = rng.integers(-3, 4, size=(2, 4, 6))
    for layer in (bp.MultiHeadSelfAttention(2, 3), bp.SinusoidalPositionalEncoding()):
        layer = standalone(layer, (4, 6))
        np.testing.assert_allclose(layer.forward(x), layer.forward(x.astype(float)), rtol=1e-12)
    layer = standalone(bp.MultiHeadSelfAttention(2, 3, causal=True), (4, 6), dtype="float32")
    out = layer.forward(x.astype(np.float32), training=True)
    assert out.dtype == np.float32 and layer.backward(out).dtype == np.float32
