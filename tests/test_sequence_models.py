"""Sequence layers inside models: whole-model gradient checks with masks, clipping, files,
configs and the command line."""

import numpy as np
import pytest

import backprop as bp
from backprop import landscape


def token_batch(rng, n=4, t=6, vocab=9):
    ids = rng.integers(1, vocab, size=(n, t))
    ids[0, 4:] = 0  # padding (id 0) at the end of two sequences
    ids[2, 3:] = 0
    return ids


def test_whole_model_gradients_with_padding_masks_and_a_per_step_loss(rng):
    """Embedding(mask_zero) -> LSTM(sequences) -> Residual(LayerNorm, causal attention) ->
    positional encoding -> Dense: per-step cross-entropy that ignores padded steps."""
    ids = token_batch(rng)
    labels = rng.integers(0, 3, size=ids.shape)
    labels[ids == 0] = -1
    model = bp.Sequential(
        [
            bp.Embedding(9, 4, mask_zero=True),
            bp.LSTM(3, return_sequences=True),
            bp.LearnedPositionalEncoding(),
            bp.Residual([bp.LayerNorm(), bp.MultiHeadSelfAttention(2, 2, causal=True)]),
            bp.Dense(3),
        ],
        input_shape=(6,),
        dtype="float64",
        seed=0,
    )
    report = bp.check_gradients(model, bp.SequenceCrossEntropy(), ids, labels, check_input=False)
    assert report.passed, report


def test_evaluating_a_per_step_loss_in_chunks_gives_the_loss_over_all_the_data(rng):
    # SequenceCrossEntropy is a mean over real steps; chunks with more padding must not count
    # as much as chunks with less (their loss was weighted by rows), and a chunk with no real
    # step adds nothing instead of failing.
    ids = rng.integers(1, 9, size=(7, 5))
    labels = rng.integers(0, 3, size=ids.shape)
    for i, length in enumerate([1, 5, 2, 5, 0, 3, 1]):
        ids[i, length:] = 0
    labels[ids == 0] = -1
    model = bp.Sequential(
        [bp.Embedding(9, 4, mask_zero=True), bp.LSTM(3, return_sequences=True), bp.Dense(3)],
        input_shape=(5,),
        dtype="float64",
        seed=0,
    )
    loss = bp.SequenceCrossEntropy()
    weights = rng.uniform(0.5, 2.0, size=7)
    for w in (None, weights):
        whole = loss.forward(model.forward(ids), labels, w)
        trainer = bp.Trainer(model, loss, "sgd", metrics=[], l2=0.0)
        for batch_size in (1, 2, 3, 1024):
            got = trainer.evaluate(ids, labels, sample_weight=w, batch_size=batch_size)["loss"]
            assert got == pytest.approx(whole, rel=1e-12), (w is None, batch_size)
            _, line = landscape.loss_along_line(
                model,
                loss,
                ids,
                labels,
                model.flat_parameters,
                alphas=np.array([0.0]),
                sample_weight=w,
                batch_size=batch_size,
            )  # the loss landscape sums chunks the same way
            assert line[0] == pytest.approx(whole, rel=1e-12), (w is None, batch_size)


@pytest.mark.parametrize("cell", [bp.RNN, bp.GRU])
def test_whole_model_gradients_with_masking_and_mean_reduction(cell, rng):
    X = rng.standard_normal((3, 5, 2))
    X[1, 3:] = 0.0  # Masking(0.0) marks these steps as padding
    model = bp.Sequential(
        [bp.Masking(0.0), cell(4, reduce="mean", truncate=None), bp.Dense(2)],
        input_shape=(5, 2),
        dtype="float64",
        seed=0,
    )
    # dL/dX is not checked: nudging a padded step's zeros makes it a real step (the mask comes
    # from the data), so the loss is not differentiable in X there.
    y = rng.standard_normal((3, 2))
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, y, check_input=False)
    assert report.passed, report


def test_padding_does_not_change_a_models_predictions(rng):
    model = bp.Sequential(
        [bp.Embedding(9, 4, mask_zero=True), bp.GRU(5, return_sequences=True)]
        + [bp.Residual([bp.MultiHeadSelfAttention(2, 3)]), bp.SequencePool("mean"), bp.Dense(2)],
        input_shape=(6,),
        seed=0,
    )
    ids = token_batch(rng)
    short = model.predict(ids[:1, :4]) if False else None  # noqa: F841 (shape is fixed at 6)
    longer = ids.copy()
    out = model.predict(ids)
    longer[0, 4:] = 0  # already padding: same output
    np.testing.assert_array_equal(model.predict(longer), out)
    alone = bp.Sequential(
        [bp.Embedding(9, 4, mask_zero=True), bp.GRU(5, return_sequences=True)]
        + [bp.Residual([bp.MultiHeadSelfAttention(2, 3)]), bp.SequencePool("mean"), bp.Dense(2)],
        input_shape=(4,),
        seed=0,
    )
    alone.load_state_dict(model.state_dict())
    np.testing.assert_allclose(alone.predict(ids[:1, :4]), out[:1], rtol=1e-5, atol=1e-6)


def test_global_norm_clipping_applies_to_recurrent_models(rng):
    X = rng.standard_normal((32, 8, 3)).astype(np.float32)
    y = rng.standard_normal(32).astype(np.float32)
    model = bp.Sequential([bp.LSTM(6), bp.Dense(1)], input_shape=(8, 3), seed=0)
    model.layers[0].params["U"][...] *= 20  # large recurrent weights: a large gradient

    seen = []

    class Watch(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append((logs["grad_norm"], float(np.linalg.norm(model.flat_gradients))))

    trainer = bp.Trainer(
        model, bp.MeanSquaredError(), bp.SGD(lr=0.01), batch_size=8, epochs=1,
        clip_norm=0.5, callbacks=[Watch()], seed=0,
    )  # fmt: skip
    trainer.fit(X, y)
    assert all(before > 0.5 for before, _ in seen)  # the bound was active ...
    assert all(after <= 0.5 * (1 + 1e-5) for _, after in seen)  # ... and held


def test_sequence_models_save_and_load(tmp_path, rng):
    model = bp.Sequential(
        [bp.Embedding(9, 8, mask_zero=True), bp.SinusoidalPositionalEncoding()]
        + [bp.Residual([bp.LayerNorm(), bp.MultiHeadSelfAttention(2, 4, causal=True)])]
        + [bp.LSTM(5, return_sequences=True, truncate=3), bp.GRU(4, reduce="mean")]
        + [bp.Dense(3)],
        input_shape=(6,),
        seed=0,
    )
    ids = token_batch(rng)
    path = tmp_path / "seq.npz"
    bp.save(model, path)
    loaded = bp.load(path)
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))
    assert [layer.config() for layer in loaded.layers] == [la.config() for la in model.layers]
    assert loaded.layers[3].truncate == 3 and loaded.layers[2].layers[1].causal


@pytest.mark.parametrize(
    "config", ["adding-lstm.toml", "mnist-rows-lstm.toml", "mnist-rows-transformer.toml"]
)
def test_sequence_configs_build(config):
    from pathlib import Path

    from backprop.app import config as config_mod

    cfg = bp.load_config(Path(__file__).resolve().parents[1] / "configs" / config)
    shape = (100, 2) if "adding" in config else (28, 28)
    model = config_mod.build_model(cfg, shape, 1 if "adding" in config else 10)
    assert model.out_shape == ((1,) if "adding" in config else (10,))


@pytest.mark.slow
def test_adding_config_trains_through_the_command_line(tmp_path):
    from backprop.app.cli import main

    args = ["--set", "data.n_samples=200", "--set", "data.length=8", "--set", "trainer.epochs=2"]
    assert (
        main(["train", "configs/adding-lstm.toml", "--out", str(tmp_path), "--quiet", *args]) == 0
    )
    model = bp.load(tmp_path / "model.npz")
    assert isinstance(model.layers[0], bp.LSTM) and model.in_shape == (8, 2)


@pytest.mark.slow
def test_neural_net_classifier_with_sequence_models(rng):
    """Sequence models through the scikit-learn estimator: float sequences and token ids."""
    from sklearn.base import clone

    X = rng.standard_normal((120, 6, 3)).astype(np.float32)
    y = (X[:, 0, 0] > 0).astype(int)  # the label sits at the first step: carried by the LSTM
    clf = bp.NeuralNetClassifier(
        layers=[bp.LSTM(8)], lr=0.01, batch_size=16, epochs=15, random_state=0
    )
    clf.fit(X, y)
    assert clf.predict(X).shape == (120,) and clf.predict_proba(X).shape == (120, 2)
    assert clf.score(X, y) > 0.9
    ids = rng.integers(1, 7, size=(120, 5))
    ids[:60, 3:] = 0  # padded
    labels = (ids[:, 0] > 3).astype(int)
    tok = clone(clf).set_params(
        layers=[bp.Embedding(7, 4, mask_zero=True), bp.GRU(6, reduce="mean")]
    )
    tok.fit(ids, labels)
    assert tok.score(ids, labels) > 0.8


def test_training_with_a_per_step_loss_weights_batches_by_real_steps_and_skips_empty_ones(rng):
    # The epoch loss was weighted by rows (so it was not the mean over the real steps the
    # weights were at), and a training batch with no real step (all padding, or zero sample
    # weights) raised "no real step" in the middle of fit; such a batch now carries no update.
    ids = rng.integers(1, 9, size=(9, 5))
    labels = rng.integers(0, 3, size=ids.shape)
    labels[:3] = -1  # the first batch of 3: no real step
    labels[3:6, 1:] = -1  # the second: one real step per row
    model = bp.Sequential(
        [bp.Embedding(9, 4), bp.LSTM(3, return_sequences=True), bp.Dense(3)],
        input_shape=(5,),
        dtype="float64",
        seed=0,
    )
    loss = bp.SequenceCrossEntropy()
    for w in (None, rng.uniform(0.5, 2.0, size=9)):
        before = model.flat_parameters.copy()
        whole = loss.forward(model.forward(ids), labels, w)
        trainer = bp.Trainer(model, loss, bp.SGD(1e-300), batch_size=3, shuffle=False)
        history = trainer.fit(ids, labels, sample_weight=w, epochs=1)
        assert history["loss"][-1] == pytest.approx(whole, rel=1e-12)
        assert trainer.step_count == 2  # the empty batch took no step
        model.flat_parameters[...] = before
    sgd = bp.Trainer(model, loss, bp.SGD(0.1, momentum=0.9), batch_size=3, shuffle=False)
    sgd.train_step(ids[3:6], labels[3:6])  # momentum that an empty batch must not apply
    after = model.flat_parameters.copy()
    with pytest.raises(ValueError, match="no real step in any training batch of epoch 1"):
        sgd.fit(ids[:3], labels[:3], epochs=1)
    assert np.array_equal(model.flat_parameters, after)


def test_a_training_batch_of_zero_sample_weight_takes_no_step(rng):
    # It raised "sample_weight must not sum to zero" in the middle of fit.
    X = rng.normal(size=(6, 5, 2))
    y = rng.integers(0, 3, size=6)
    model = bp.Sequential(
        [bp.Conv1D(2, 3), bp.GlobalAvgPool1D(), bp.Dense(3)], input_shape=(5, 2), seed=0
    )
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=3, shuffle=False)
    history = trainer.fit(X, y, sample_weight=[0, 0, 0, 1, 2, 1], epochs=2)
    assert trainer.step_count == 2 and trainer.optimizer.iterations == 2
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("cell", [bp.RNN, bp.LSTM, bp.GRU])
def test_infinite_padding_through_a_dense_layer_trains_like_zero_padding(cell):
    """Masking(np.inf) is allowed, but it passed inf on: a Dense before the recurrent layer
    computed inf * 0 = NaN in its weight gradient (x^T dy, dy = 0 at padded steps), so one step
    of training filled the weights with NaN. Masking now outputs 0 at padded steps."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 6, 3))
    X[1, 4:] = 0.0
    X[3, 2:] = 0.0
    Xinf = X.copy()
    Xinf[1, 4:] = np.inf
    Xinf[3, 2:] = np.inf
    y = np.array([0, 1, 1, 0])
    grads = []
    for value, data in ((0.0, X), (np.inf, Xinf)):
        model = bp.Sequential(
            [bp.Masking(value), bp.Dense(5), bp.Tanh(), cell(4), bp.Dense(2)],
            input_shape=(6, 3),
            dtype="float64",
            seed=0,
        )
        loss = bp.SoftmaxCrossEntropy()
        loss.forward(model.forward(data, training=True), y)
        dX = model.backward(loss.backward(), need_input_grad=True)
        assert np.all(dX[1, 4:] == 0) and np.all(dX[3, 2:] == 0)  # padding gets no gradient
        grads.append(model.gradients())
    for k, g in grads[0].items():
        assert np.all(np.isfinite(grads[1][k])), k
        np.testing.assert_array_equal(grads[1][k], g, err_msg=k)
