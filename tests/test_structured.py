"""Structured pruning: removing whole hidden units gives a smaller, equivalent-where-it-should-be
Sequential."""

import numpy as np
import pytest

import backprop as bp
from backprop import pruning, structured


def _model(seed=0):
    return bp.Sequential(
        [
            bp.Dense(5, 8),
            bp.BatchNorm(8),
            bp.PReLU(8),
            bp.Dense(8, 6),
            bp.ReLU(),
            bp.Dropout(0.1),
            bp.Dense(6, 3),
        ],
        dtype="float64",
        seed=seed,
    )


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


def _trained():
    X, y = _data()
    model = _model()
    bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=10, epochs=3, seed=0).fit(X, y)
    return model, X, y


def test_prunable_layers_and_shapes_after_removal():
    model, X, _ = _trained()
    assert structured.hidden_groups(model) == {0: ([1, 2], 3), 3: ([4, 5], 6)}
    small = structured.remove_units(model, {0: [1, 6], 3: [0]})
    shapes = {k: v.shape for k, v in small.parameters().items()}
    assert shapes["0.W"] == (5, 6) and shapes["0.b"] == (6,)
    assert shapes["1.gamma"] == shapes["1.beta"] == shapes["2.alpha"] == (6,)
    assert small.buffers()["1.running_mean"].shape == (6,)
    assert shapes["3.W"] == (6, 5) and shapes["6.W"] == (5, 3)
    kept = [0, 2, 3, 4, 5, 7]
    np.testing.assert_array_equal(small.parameters()["0.W"], model.parameters()["0.W"][:, kept])
    np.testing.assert_array_equal(
        small.parameters()["2.alpha"], model.parameters()["2.alpha"][kept]
    )
    np.testing.assert_array_equal(
        small.buffers()["1.running_var"], model.buffers()["1.running_var"][kept]
    )
    np.testing.assert_array_equal(
        small.parameters()["3.W"], model.parameters()["3.W"][kept][:, [1, 2, 3, 4, 5]]
    )
    assert small.n_parameters < model.n_parameters


def test_removing_dead_units_leaves_predictions_unchanged():
    model, X, _ = _trained()
    model.parameters()["3.b"][[1, 4]] = -1e3  # two ReLU units now output 0 on every row
    dead = structured.dead_units(model, X)
    assert dead[3].tolist() == [1, 4] and dead[0].size == 0
    small = structured.remove_units(model, dead)
    assert small.layers[3].out_features == 4
    diff = np.abs(small.predict(X) - model.predict(X))
    assert diff.max() <= 1e-12  # exact but for the order of a float64 sum without zero terms


def test_a_constant_unit_is_folded_into_the_next_bias():
    model, X, _ = _trained()
    model.parameters()["0.W"][:, 2] = 0  # unit 2 of layer 0: constant after BatchNorm and PReLU
    small = structured.remove_units(model, {0: [2]}, X=X)
    np.testing.assert_allclose(small.predict(X), model.predict(X), rtol=0, atol=1e-12)
    unfolded = structured.remove_units(model, {0: [2]})
    assert np.abs(unfolded.predict(X) - model.predict(X)).max() > 1e-6


def test_norm_ranking_keeps_the_units_with_the_largest_incoming_weights():
    model, X, _ = _trained()
    W = model.parameters()["0.W"]
    W[:, [3, 5]] *= 100  # the two strongest units
    small = structured.prune_units(model, {0: 2}, criterion="norm")
    np.testing.assert_array_equal(small.parameters()["0.W"], W[:, [3, 5]])
    assert small.layers[3].out_features == 6  # not asked: untouched


def test_activation_ranking_keeps_the_most_active_units():
    model, X, _ = _trained()
    acts = structured.activations(model, X)
    assert acts[0].shape == (60, 8) and acts[3].shape == (60, 6)
    score = np.abs(acts[3]).mean(axis=0)
    best = np.sort(np.argsort(-score)[:3])
    small = structured.prune_units(model, {3: 3}, criterion="activation", X=X, fold=False)
    np.testing.assert_array_equal(small.parameters()["6.W"], model.parameters()["6.W"][best])
    half = structured.prune_units(model, 0.5, criterion="activation", X=X)
    assert [half.layers[i].out_features for i in (0, 3)] == [4, 3]


def test_activations_of_a_sequence_model_honour_its_padding_mask():
    # The layers ran one by one without the mask: attention looked at padded steps, so the
    # ranking and the folded means came from activations the model never produces.
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, size=(6, 5))
    ids[:, 3:] = 0
    layers = [bp.Embedding(9, 4, mask_zero=True), bp.MultiHeadSelfAttention(1, 4)]
    model = bp.Sequential(
        [*layers, bp.Dense(6), bp.ReLU(), bp.Dense(3)],
        input_shape=(5,),
        dtype="float64",
        seed=0,
    )
    got = structured.activations(model, ids, batch_size=4)[2]
    h, mask = model.check_input(ids), None
    for layer in model.layers[:4]:
        h, mask = bp.layers.masking.forward_with_mask(layer, h, False, mask)
    np.testing.assert_allclose(got, h.reshape(-1, 6), rtol=1e-12, atol=1e-15)


def test_the_smaller_model_trains_and_its_gradients_are_right():
    model, X, y = _trained()
    small = structured.prune_units(model, 0.5, criterion="norm")
    small.layers[5].drop_rate = 0.0  # deterministic for the finite differences
    report = bp.check_gradients(small, bp.SoftmaxCrossEntropy(), X[:8], y[:8])
    assert report.passed
    bp.Trainer(small, "cross_entropy", "adam", batch_size=10, epochs=1).fit(X, y)


def test_a_mask_follows_the_kept_weights():
    model, X, _ = _trained()
    pruning.prune(model, 0.5, scope="layer")
    small = structured.remove_units(model, {0: [0, 1]})
    masks = {
        k: model.weight_mask[s].reshape(model.parameters()[k].shape)
        for k, s in pruning.weight_slices(model).items()
    }
    got = small.weight_mask[pruning.weight_slices(small)["0.W"]].reshape(5, 6)
    np.testing.assert_array_equal(got, masks["0.W"][:, 2:])
    assert np.all(small.flat_parameters[: small.n_weights][~small.weight_mask] == 0)


def test_the_smaller_model_goes_on_with_the_dropout_stream():
    # remove_units built the new model with seed=0: its Dropout masks started over from the
    # seed-0 stream instead of going on from the trained model's (as model.copy() does)
    model, X, _ = _trained()
    assert any(isinstance(layer, bp.Dropout) for layer in model.layers)
    model.rng.random(5)  # (training drew its masks from it too: not where seed 0's starts)
    small = structured.remove_units(model, {0: [0, 1]})
    assert small.rng.bit_generator.state == model.rng.bit_generator.state
    assert small.rng is not model.rng and small.seed == model.seed


def test_a_boolean_mask_of_units_is_refused_not_read_as_indices_0_and_1():
    # np.asarray(mask, int) turned [F, F, T, F, T, F] into indices {0, 1}: the wrong units
    # went, without a word; 2.7 became unit 2
    model = bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 2)], seed=0)
    dead = np.array([False, False, True, False, True, False])
    with pytest.raises(ValueError, match="flatnonzero"):
        structured.remove_units(model, {0: dead})
    with pytest.raises(ValueError, match="integer unit indices"):
        structured.remove_units(model, {0: [2.7]})
    small = structured.remove_units(model, {0: np.flatnonzero(dead)})
    kept = model.layers[0].params["W"][:, [0, 1, 3, 5]]
    np.testing.assert_array_equal(small.layers[0].params["W"], kept)
    assert structured.remove_units(model, {0: []}).layers[0].params["W"].shape == (4, 6)


def test_bad_requests_name_the_problem():
    model, X, _ = _trained()
    with pytest.raises(ValueError, match="prunable layers: \\[0, 3\\]"):
        structured.remove_units(model, {6: [0]})
    with pytest.raises(ValueError, match="cannot remove units \\[8\\]"):
        structured.remove_units(model, {0: [8]})
    with pytest.raises(ValueError, match="disconnect"):
        structured.remove_units(model, {3: list(range(6))})
    with pytest.raises(ValueError, match="needs data X"):
        structured.prune_units(model, 0.5, criterion="activation")
    with pytest.raises(ValueError, match="keep must be an integer in \\[1, 8\\]"):
        structured.prune_units(model, {0: 9})
    norm = bp.Sequential([bp.Dense(4, 6), bp.LayerNorm(6), bp.Dense(6, 2)])
    assert structured.hidden_groups(norm) == {}  # LayerNorm mixes units: not prunable


@pytest.mark.parametrize(
    "rows, batch_size, match",
    [
        (10, 0, "batch_size must be a positive integer, got 0"),
        (10, -1, "batch_size must be a positive integer, got -1"),
        (10, 2.5, "batch_size must be a positive integer, got 2.5"),
        (0, 16, r"at least one sample, got X of shape \(0, 5\)"),
    ],
)
def test_activations_refuse_a_bad_batch_size_or_no_samples(rows, batch_size, match):
    """batch_size=-1 (or 0 rows) ran no batch and ended in np.concatenate's 'need at least one
    array to concatenate', naming neither the argument nor its value."""
    model, X, _ = _trained()
    with pytest.raises(ValueError, match=match):
        structured.activations(model, X[:rows], batch_size=batch_size)
