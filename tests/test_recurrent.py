"""RNN, LSTM and GRU: BPTT against finite differences (float64), masks, truncation, torch parity."""

import numpy as np
import pytest
from conftest import finite_difference_check, standalone

import backprop as bp

CELLS = [bp.RNN, bp.LSTM, bp.GRU]
T, D, H = 4, 3, 2


def data(rng, n=3, t=T):
    x = rng.standard_normal((n, t, D))
    mask = np.ones((n, t), dtype=bool)
    mask[1, 2:] = False  # padded at the end
    mask[2, 1] = False  # a hole in the middle
    return x, mask


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"return_sequences": True},
        {"reduce": "mean"},
        {"activation": "relu"},
    ],
    ids=["last", "sequences", "mean", "relu"],
)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_bptt_matches_finite_differences(cls, kw, masked, rng):
    if "activation" in kw and cls is not bp.RNN:
        pytest.skip("activation is an RNN option")
    x, mask = data(rng)
    layer = standalone(cls(H, **kw), (T, D))
    errors = finite_difference_check(layer, x, mask if masked else None)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_length_one_sequences(cls, return_sequences, rng):
    x = rng.standard_normal((2, 1, D))
    layer = standalone(cls(H, return_sequences=return_sequences), (1, D))
    errors = finite_difference_check(layer, x)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_padded_steps_change_neither_outputs_nor_gradients(cls, return_sequences, rng):
    """A sequence padded with garbage, in a batch, gives the outputs and parameter gradients of
    the same sequence alone without its padding."""
    t, length = 6, 4
    x = rng.standard_normal((2, t, D))
    mask = np.ones((2, t), dtype=bool)
    mask[0, length:] = False
    layer = standalone(cls(H, return_sequences=return_sequences), (t, D))
    out = layer.forward(x, training=True, mask=mask)
    g = rng.standard_normal(out.shape)
    if return_sequences:
        g[0, length:] = 0  # a loss that ignores padded steps (they are 0 anyway)
    dx = layer.backward(g)
    padded_grads = {k: v.copy() for k, v in layer.grads.items()}
    alone = standalone(cls(H, return_sequences=return_sequences), (length, D))
    for k in layer.params:
        alone.params[k][...] = layer.params[k]
    out1 = alone.forward(x[:1, :length], training=True)
    alone.backward(g[:1, :length] if return_sequences else g[:1])
    second = standalone(cls(H, return_sequences=return_sequences), (t, D))
    for k in layer.params:
        second.params[k][...] = layer.params[k]
    out2 = second.forward(x[1:], training=True)
    second.backward(g[1:])
    if return_sequences:
        np.testing.assert_allclose(out[0, :length], out1[0], rtol=1e-12)
        assert np.all(out[0, length:] == 0)
    else:
        np.testing.assert_allclose(out[0], out1[0], rtol=1e-12)
    np.testing.assert_allclose(out[1], out2[0], rtol=1e-12)
    for k in layer.grads:
        np.testing.assert_allclose(padded_grads[k], alone.grads[k] + second.grads[k], atol=1e-12)
    assert np.all(dx[0, length:] == 0)


@pytest.mark.parametrize("cls", CELLS)
def test_mean_over_valid_steps(cls, rng):
    x, mask = data(rng)
    seq = standalone(cls(H, return_sequences=True), (T, D))
    mean = standalone(cls(H, reduce="mean"), (T, D))
    for k in seq.params:
        mean.params[k][...] = seq.params[k]
    expected = seq.forward(x, mask=mask).sum(axis=1) / mask.sum(axis=1)[:, None]
    np.testing.assert_allclose(mean.forward(x, mask=mask), expected, rtol=1e-12)


def chunk_of(step, t, k):
    """Chunks of k steps aligned to the end of a t-step sequence: chunk 0 is the last."""
    return (t - 1 - step) // k


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_truncated_bptt_keeps_exactly_the_gradient_inside_each_chunk(cls, return_sequences, rng):
    """With truncate=k, a loss on the outputs of one chunk of k steps reaches exactly the inputs
    of that chunk, with their true gradient (finite differences), and nothing before it."""
    t, k = 7, 3
    x = rng.standard_normal((2, t, D))
    layer = standalone(cls(H, return_sequences=return_sequences, truncate=k), (t, D))
    out = layer.forward(x, training=True)
    chunks = [0] if not return_sequences else [0, 1, 2]
    for c in chunks:
        R = rng.standard_normal(out.shape)
        if return_sequences:
            R[:, [chunk_of(s, t, k) != c for s in range(t)]] = 0
        layer.forward(x, training=True)
        dx = layer.backward(R)
        eps, num = 1e-6, np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            old = x[idx]
            x[idx] = old + eps
            up = (layer.forward(x) * R).sum()
            x[idx] = old - eps
            down = (layer.forward(x) * R).sum()
            x[idx] = old
            num[idx] = (up - down) / (2 * eps)
        inside = np.array([chunk_of(s, t, k) == c for s in range(t)])
        np.testing.assert_allclose(dx[:, inside], num[:, inside], rtol=1e-6, atol=1e-9)
        assert np.all(dx[:, ~inside] == 0)
        assert np.any(num[:, ~inside] != 0) or c == 2  # the full gradient does reach back


@pytest.mark.parametrize("cls", CELLS)
def test_truncation_longer_than_the_sequence_is_full_bptt(cls, rng):
    x, mask = data(rng)
    full = standalone(cls(H, return_sequences=True), (T, D))
    cut = standalone(cls(H, return_sequences=True, truncate=T), (T, D))
    for k in full.params:
        cut.params[k][...] = full.params[k]
    g = rng.standard_normal((3, T, H))
    for layer in (full, cut):
        layer.forward(x, training=True, mask=mask)
        layer.backward(g)
    for k in full.grads:
        np.testing.assert_allclose(cut.grads[k], full.grads[k], rtol=1e-12)


def test_truncation_counts_back_from_each_sequences_last_valid_step(rng):
    """A padded sequence is truncated k steps back from its own last valid step."""
    t, k = 6, 2
    x = rng.standard_normal((1, t, D))
    mask = np.array([[True] * 4 + [False] * 2])
    layer = standalone(bp.RNN(H, truncate=k), (t, D))
    layer.forward(x, training=True, mask=mask)
    dx = layer.backward(np.ones((1, H)))
    reached = np.any(dx[0] != 0, axis=1)
    assert reached.tolist() == [False, False, True, True, False, False]


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_truncation_counts_valid_steps_only_with_padding_inside(cls, return_sequences, rng):
    """Padding in the middle of a sequence (id 0 inside an Embedding(mask_zero=True) sequence)
    is not counted by truncate=k: the padded sequence gets the input and parameter gradients of
    the same sequence without its padded steps."""
    t, k, keep = 7, 3, [0, 1, 2, 5, 6]
    x = rng.standard_normal((1, t, D))
    mask = np.zeros((1, t), dtype=bool)
    mask[0, keep] = True
    layer = standalone(cls(H, return_sequences=return_sequences, truncate=k), (t, D))
    out = layer.forward(x, training=True, mask=mask)
    g = rng.standard_normal(out.shape)
    dx = layer.backward(g)
    alone = standalone(cls(H, return_sequences=return_sequences, truncate=k), (len(keep), D))
    for name in layer.params:
        alone.params[name][...] = layer.params[name]
    alone.forward(x[:, keep], training=True)
    dx1 = alone.backward(g[:, keep] if return_sequences else g)
    np.testing.assert_allclose(dx[:, keep], dx1, atol=1e-12)
    for name in layer.grads:
        np.testing.assert_allclose(layer.grads[name], alone.grads[name], atol=1e-12)


def test_lstm_forget_bias_and_gate_order():
    layer = standalone(bp.LSTM(3, forget_bias=1.5), (2, 2))
    b = layer.params["b"]
    assert np.all(b[3:6] == 1.5) and not np.any(b[:3] == 1.5) and not np.any(b[6:] == 1.5)
    torch_like = standalone(bp.LSTM(3, forget_bias=None), (2, 2))
    assert np.all(np.abs(torch_like.params["b"]) <= 1 / np.sqrt(3))


@pytest.mark.parametrize("cls", CELLS)
def test_float32_stays_float32(cls, rng):
    layer = standalone(cls(H, return_sequences=True), (T, D), dtype="float32")
    x = rng.standard_normal((2, T, D)).astype(np.float32)
    out = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32


def test_clear_errors(rng):
    layer = standalone(bp.LSTM(H), (T, D))
    with pytest.raises(ValueError, match=r"\(n, t, features\)"):
        layer.forward(rng.standard_normal((2, D)))
    with pytest.raises(ValueError, match="expected 3 features per step, got 5"):
        layer.forward(rng.standard_normal((2, T, 5)))
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        layer.forward(rng.standard_normal((2, T, D)), mask=np.ones((2, T + 1), bool))
    with pytest.raises(ValueError, match="reduce"):
        bp.GRU(2, reduce="max")
    with pytest.raises(ValueError, match="truncate"):
        bp.RNN(2, truncate=0)
    with pytest.raises(ValueError, match="activation"):
        bp.RNN(2, activation="sigmoid")
    # a NaN forget bias made every output NaN, a NaN mask value masked nothing: both refused
    with pytest.raises(ValueError, match="forget_bias must be a finite number, got nan"):
        bp.LSTM(2, forget_bias=float("nan"))
    with pytest.raises(ValueError, match="forget_bias must be a finite number, got 'a'"):
        bp.LSTM(2, forget_bias="a")
    with pytest.raises(ValueError, match="mask_value must be a .*number, got nan"):
        bp.Masking(float("nan"))
    with pytest.raises(RuntimeError, match="without a preceding forward"):
        standalone(bp.GRU(H), (T, D)).backward(np.ones((2, H)))


def torch_weights(layer, module):
    """Copy our parameters into a torch module (the mapping documented in layers/cells.py)."""
    import torch

    H, p = layer.units, layer.params
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(p["W"].T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(p["U"].T.copy()))
        module.bias_ih_l0.copy_(torch.from_numpy(p["b"].copy()))
        hh = np.zeros_like(p["b"])
        if "b_hn" in p:
            hh[2 * H :] = p["b_hn"]
        module.bias_hh_l0.copy_(torch.from_numpy(hh))


@pytest.mark.parametrize("cls", CELLS)
def test_outputs_and_gradients_match_torch(cls, rng):
    torch = pytest.importorskip("torch")
    n, t, d, h = 4, 6, 5, 3
    layer = standalone(cls(h, return_sequences=True), (t, d))
    module = {bp.RNN: torch.nn.RNN, bp.LSTM: torch.nn.LSTM, bp.GRU: torch.nn.GRU}[cls](
        d, h, batch_first=True, dtype=torch.float64
    )
    torch_weights(layer, module)
    x = rng.standard_normal((n, t, d))
    g = rng.standard_normal((n, t, h))
    ours = layer.forward(x, training=True)
    dx = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs = module(xt)[0]
    theirs.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], module.weight_ih_l0.grad.numpy().T, atol=1e-12)
    np.testing.assert_allclose(layer.grads["U"], module.weight_hh_l0.grad.numpy().T, atol=1e-12)
    last = standalone(cls(h), (t, d))
    for k in layer.params:
        last.params[k][...] = layer.params[k]
    h_n = module(xt)[1]
    h_n = h_n[0] if cls is bp.LSTM else h_n  # the LSTM returns (h_n, c_n)
    np.testing.assert_allclose(last.forward(x), h_n[0].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_with_torch_initialized_forget_gate_saves_and_loads(tmp_path, rng):
    """LSTM(forget_bias=None) wrote a file that load refused ("forget_bias: expected a number,
    got None"): None was accepted only where it is the default, not where the hint allows it."""
    model = bp.Sequential([bp.LSTM(4, forget_bias=None), bp.Dense(2)], input_shape=(T, D), seed=0)
    bp.save(model, tmp_path / "lstm.npz")
    loaded = bp.load(tmp_path / "lstm.npz")
    assert loaded.layers[0].forget_bias is None
    x = rng.standard_normal((5, T, D))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("kw", [{}, {"reduce": "mean"}, {"return_sequences": True}])
def test_sequences_without_steps_are_refused(cls, kw):
    """t = 0 gave NaN outputs (reduce="mean": 0 / 0) or zeros whose backward died with an
    IndexError; a layer used on its own now refuses it, naming the shape."""
    layer = standalone(cls(H, **kw), (T, D))
    with pytest.raises(ValueError, match=r"at least one step.*\(2, 0, 3\)"):
        layer.forward(np.zeros((2, 0, D)), training=True)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("pad", [np.inf, np.nan])
def test_infinite_or_nan_padding_does_not_leak_into_the_state(cls, pad, rng):
    """Masking(np.inf) is allowed, but inf at padded steps made x @ W NaN there and the carry
    (m * new + (1 - m) * old) turned 0 * NaN into NaN outputs, and x.T @ da NaN gradients."""
    x, mask = data(rng)
    clean = standalone(cls(H, return_sequences=True), (T, D))
    dirty = standalone(cls(H, return_sequences=True), (T, D))
    g = rng.standard_normal((3, T, H))
    xp = np.where(mask[:, :, None], x, pad)
    outs = [layer.forward(v, training=True, mask=mask) for layer, v in ((clean, x), (dirty, xp))]
    dxs = [layer.backward(g) for layer in (clean, dirty)]
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(dxs[1], dxs[0])
    for k in clean.grads:
        np.testing.assert_array_equal(dirty.grads[k], clean.grads[k])


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("kw", [{}, {"return_sequences": True}, {"reduce": "mean"}])
def test_unpadded_rows_are_bitwise_unchanged_by_padding_elsewhere_in_the_batch(cls, kw, rng):
    """The carry ``old + m (new - old)`` rounds: with m = 1 it gave new only to the last bit, so
    one padded sequence in a batch changed the others' outputs and input gradients."""
    t = 12
    x = rng.standard_normal((5, t, D))
    mask = np.ones((5, t), dtype=bool)
    mask[0, 7:] = False
    layer = standalone(cls(H, **kw), (t, D))
    out_plain = layer.forward(x, training=True)
    g = rng.standard_normal(out_plain.shape)
    dx_plain = layer.backward(g)
    out_masked = layer.forward(x, training=True, mask=mask)
    dx_masked = layer.backward(g)
    np.testing.assert_array_equal(out_masked[1:], out_plain[1:])
    np.testing.assert_array_equal(dx_masked[1:], dx_plain[1:])


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("n, t", [(1, T), (3, 1)])
def test_returned_sequence_is_not_the_layers_cache(cls, n, t, rng):
    """For one sequence (or one step) the returned sequence was a view of the states the
    backward pass reads: changing it in place changed the gradients."""
    layer = standalone(cls(H, return_sequences=True), (t, D))
    x = rng.standard_normal((n, t, D))
    out = layer.forward(x, training=True)
    layer.backward(np.ones_like(out))
    expected = {k: v.copy() for k, v in layer.grads.items()}
    out = layer.forward(x, training=True)
    out[...] = 0
    layer.backward(np.ones_like(out))
    for k in expected:
        np.testing.assert_array_equal(layer.grads[k], expected[k])


def test_gru_recurrent_gradient_is_the_input_one_with_its_n_block_times_r(rng):
    # The BPTT equations in layers/recurrent.py: the GRU's dU and dh_{s-1} take da_rec, equal to
    # da_in except in the n block, where the reset gate multiplies: da_rec = r * da_in.
    n, t, d, H = 3, 5, 4, 2
    layer = standalone(bp.GRU(H, return_sequences=True), (t, d))
    x = rng.standard_normal((n, t, d))
    layer.forward(x, training=True)
    g = rng.standard_normal((n, t, H))
    cache = layer._cache
    da_in, da_rec = layer._steps_backward(np.ascontiguousarray(g.transpose(1, 0, 2)), None)
    r = cache["gates"][:, :, :H]
    np.testing.assert_array_equal(da_rec[:, :, : 2 * H], da_in[:, :, : 2 * H])
    np.testing.assert_allclose(da_rec[:, :, 2 * H :], r * da_in[:, :, 2 * H :], rtol=1e-14)
    layer.backward(g)
    hs = cache["hs"][:-1].reshape(t * n, H)
    np.testing.assert_allclose(layer.grads["U"], hs.T @ da_rec.reshape(t * n, 3 * H), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["b_hn"], da_rec[:, :, 2 * H :].sum((0, 1)), rtol=1e-12)


def test_masking_adds_no_copy_for_zero_padding_nor_a_first_layer_backward(rng, monkeypatch):
    """Masking zeroes padded steps (for inf padding), but Masking(0.0)'s padded steps already
    are 0: it copied the batch anyway, and as a model's first layer its backward_params_only
    ran the gradient np.where for nothing (it has no parameters): ~3% of an LSTM(64) step."""
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    x[1, 3:] = 0.0
    layer = standalone(bp.Masking(0.0), (6, 3))
    assert layer.forward(x, training=True) is x
    model = bp.Sequential([bp.Masking(0.0), bp.LSTM(5), bp.Dense(2)], input_shape=(6, 3), seed=0)
    y = model.forward(x, training=True)

    def refuse(self, grad_out):
        raise AssertionError("Masking.backward ran for a first layer")

    monkeypatch.setattr(bp.Masking, "backward", refuse)
    model.backward(np.ones_like(y), need_input_grad=False)
    # an incoming mask over non-zero steps is still zeroed
    mask = np.ones((4, 6), dtype=bool)
    mask[2, 4:] = False
    out = layer.forward(x, mask=mask)
    assert not out[2, 4:].any() and np.array_equal(out[mask], x[mask])
