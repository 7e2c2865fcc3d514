"""Residual(layers): x + f(x), nested names in the flat buffer, nesting everywhere (issue 12)."""

import copy

import numpy as np
import pytest

import backprop as bp
from backprop.app import config as cfg
from backprop.checkpoint import load_checkpoint, save_checkpoint


def _model(dtype="float64", seed=0):
    return bp.Sequential(
        [
            bp.Dense(4, 6),
            bp.Residual([bp.Dense(6), bp.Tanh(), bp.Dense(6)]),
            bp.Residual([bp.LayerNorm(), bp.Residual([bp.PReLU(), bp.Dense(6)])]),
            bp.Residual([bp.BatchNorm(), bp.Dropout(0.2)]),
            bp.Dense(3),
        ],
        dtype=dtype,
        seed=seed,
    )


def test_forward_is_x_plus_f_of_x(rng):
    inner = [bp.Dense(5), bp.Tanh(), bp.Dense(5)]
    model = bp.Sequential([bp.Residual(inner)], input_shape=(5,), dtype="float64", seed=0)
    X = rng.normal(size=(4, 5))
    f = X
    for layer in inner:
        f = layer.forward(f)
    np.testing.assert_allclose(model.forward(X), X + f, rtol=1e-12)
    # Dropout hands x itself back at inference: the output must be a new array, not x doubled
    # in place.
    alone = bp.Sequential([bp.Residual([bp.Dropout(0.5)])], input_shape=(5,), dtype="float64")
    X2 = X.copy()
    np.testing.assert_array_equal(alone.forward(X2), 2 * X)
    np.testing.assert_array_equal(X2, X)


def test_nested_names_live_in_the_one_flat_buffer():
    model = _model()
    params = model.parameters()
    assert {"1.0.W", "1.2.b", "2.0.gamma", "2.1.0.alpha", "2.1.1.W", "3.0.beta"} <= set(params)
    assert {"3.0.running_mean", "3.0.running_var"} == set(model.buffers())
    for key, p in params.items():
        assert np.shares_memory(p, model.flat_parameters), key
        assert np.shares_memory(model.gradients()[key], model.flat_gradients), key
    slices = model.param_slices()
    weights = [k for k, s in slices.items() if s.stop <= model.n_weights]
    assert set(weights) == {"0.W", "1.0.W", "1.2.W", "2.1.1.W", "4.W"}
    model.flat_parameters[:] = 0.25
    assert np.all(model.layers[2].layers[1].layers[1].params["W"] == 0.25)


def test_backward_sums_both_paths_and_matches_finite_differences(rng):
    model = _model()
    model.parameters()["2.1.0.alpha"][...] = np.linspace(-0.4, 0.5, 6)
    X = rng.normal(size=(7, 4))
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, rng.integers(0, 3, 7), l2=0.1)
    assert report.passed, str(report)
    assert {c.name for c in report.checks} == set(model.parameters()) | {"input"}


def test_gradient_check_sees_a_missing_skip_path(rng):
    class NoSkip(bp.Residual):  # forgets the "+ grad_out" of the identity path
        def backward(self, grad_out):
            return super().backward(grad_out) - grad_out

    model = bp.Sequential(
        [bp.Dense(3, 4), NoSkip([bp.Tanh()]), bp.Dense(2)], dtype="float64", seed=0
    )
    report = bp.check_gradients(
        model, bp.MeanSquaredError(), rng.normal(size=(5, 3)), np.ones((5, 2))
    )
    assert not report["0.W"].passed and report["2.W"].passed


def test_summary_shows_nested_layers_with_their_shapes_and_counts():
    text = _model().summary()
    lines = text.splitlines()
    assert any(line.startswith("2.1.1") and "Dense" in line for line in lines)
    residual = next(line for line in lines if line.startswith("1 "))
    assert "Residual" in residual and "(None, 6)" in residual and " 84 " in residual
    # 30 + (42 + 42) + (12 + 6 + 42) + 12 + 21 = 207
    assert "total parameters: 207 (207 trainable)" in text


def test_save_and_load_round_trip_bitwise(tmp_path, rng):
    model = _model(dtype="float32")
    model.forward(rng.normal(size=(9, 4)), training=True)  # move the running statistics
    model.layers[2].layers[1].trainable = False
    bp.save(model, tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")
    assert repr(back) == repr(model)
    for key, value in model.state_dict().items():
        assert np.array_equal(back.state_dict()[key], value), key
    assert back.layers[2].layers[1].trainable is False
    X = rng.normal(size=(5, 4))
    assert np.array_equal(back.predict(X), model.predict(X))


def test_freezing_a_residual_freezes_everything_inside(rng):
    model = _model()
    model.layers[2].trainable = False
    model.layers[1].layers[2].trainable = False
    names = set(model.trainable_parameter_names())
    assert not {k for k in names if k.startswith("2.")}
    assert "1.0.W" in names and "1.2.W" not in names
    before = model.state_dict()
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.05), batch_size=4, epochs=2, seed=0)
    trainer.fit(rng.normal(size=(16, 4)), rng.integers(0, 3, 16))
    after = model.state_dict()
    for key in ("2.0.gamma", "2.1.0.alpha", "2.1.1.W", "1.2.W"):
        assert np.array_equal(before[key], after[key]), key
    assert not np.array_equal(before["1.0.W"], after["1.0.W"])
    report = bp.check_gradients(
        model, bp.MeanSquaredError(), rng.normal(size=(4, 4)), np.ones((4, 3))
    )
    assert "2.1.1.W" not in {c.name for c in report.checks}


def test_freezing_a_nested_layer_between_fits_of_one_trainer_holds_it(rng):
    # The trainer caches its trainable slices; freezing a layer inside a Residual (not a
    # top-level flag) after a first fit must still refresh them, else the L2 gradient and the
    # optimizer's momentum keep moving the "frozen" weights.
    model = _model()
    trainer = bp.Trainer(
        model, "cross_entropy", bp.SGD(0.1, momentum=0.9), l2=0.1, batch_size=4, epochs=1, seed=0
    )
    X, y = rng.normal(size=(16, 4)), rng.integers(0, 3, 16)
    trainer.fit(X, y)
    model.layers[1].layers[2].trainable = False
    before = model.state_dict()
    trainer.fit(X, y)
    after = model.state_dict()
    assert np.array_equal(before["1.2.W"], after["1.2.W"])
    assert not np.array_equal(before["1.0.W"], after["1.0.W"])


def test_a_frozen_residual_freezes_the_batchnorm_statistics_inside(rng):
    # Freezing a BatchNorm keeps its running statistics; freezing a Residual that holds it (at
    # any depth) must do the same, and unfreezing it lets them move again.
    X, y = rng.normal(2.0, 3.0, size=(32, 4)), rng.integers(0, 2, 32)
    for freeze in ("layer", "container", "outer container"):
        bn = bp.BatchNorm()
        inner = bp.Residual([bp.Dense(4), bn])
        outer = bp.Residual([inner, bp.Tanh()])
        model = bp.Sequential([outer, bp.Dense(2)], input_shape=(4,), dtype="float64", seed=0)
        frozen = {"layer": bn, "container": inner, "outer container": outer}[freeze]
        frozen.trainable = False
        trainer = bp.Trainer(model, "cross_entropy", "sgd", epochs=1, batch_size=8, seed=0)
        before = {k: v.copy() for k, v in model.buffers().items()}
        trainer.fit(X, y)
        for key, value in model.buffers().items():
            assert np.array_equal(before[key], value), (freeze, key)
        assert bn.trainable is (freeze != "layer")  # the children's own flags are untouched
        report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X[:5], y[:5])
        assert report.passed, str(report)
        frozen.trainable = True
        trainer.fit(X, y)
        assert not np.array_equal(before["0.0.1.running_mean"], bn.buffers["running_mean"])


def test_a_frozen_residual_reports_zero_gradients_and_still_passes_dx(rng):
    """A frozen container reports zero gradients, as a frozen layer does (its children, whose
    own flags stay trainable, fill theirs and the container zeroes them); dx still goes through
    both paths, checked against finite differences. A backward that forgot the zeroing passed
    every test: the trainer skips frozen slices anyway."""
    block = bp.Residual([bp.Dense(4), bp.Tanh(), bp.Dense(4)])
    model = bp.Sequential([bp.Dense(4), block, bp.Dense(2)], input_shape=(3,), dtype="float64")
    block.trainable = False
    X = rng.normal(size=(5, 3))
    model.forward(X, training=True)
    model.backward(rng.normal(size=(5, 2)))
    assert block.grads and all(np.all(g == 0) for g in block.grads.values())
    assert all(np.any(g != 0) for g in model.layers[0].grads.values())
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, rng.normal(size=(5, 2)))
    assert report.passed, str(report)
    assert "input" in {c.name for c in report.checks}


def test_a_residual_must_keep_the_shape():
    with pytest.raises(ValueError, match=r"Residual: its layers map input shape \(4,\) to \(2,\)"):
        bp.Residual([bp.Dense(2)]).build((4,))
    with pytest.raises(ValueError, match="at least one layer"):
        bp.Residual([])


def test_residual_in_a_toml_config(tmp_path):
    path = tmp_path / "res.toml"
    path.write_text(
        """
[model]
seed = 1

[[model.layers]]
type = "Dense"
out_features = 8

[[model.layers]]
type = "Residual"
layers = [{type = "Dense", out_features = 8}, {type = "ReLU"}, {type = "Dense", out_features = 8}]

[[model.layers]]
type = "Dense"
"""
    )
    config = bp.load_config(path)
    model = cfg.build_model(config, n_features=5, n_outputs=3)
    assert model.parameters()["1.2.W"].shape == (8, 8) and model.out_shape == (3,)
    again = cfg.build_model(bp.load_config(path), 5, 3)
    assert np.array_equal(model.flat_parameters, again.flat_parameters)
    assert "Residual" in cfg.dumps(config.resolved)


def _run(tmp_path, epochs, resume=None):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    model = _model(dtype="float32", seed=4)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=8, seed=2)
    if resume is not None:
        load_checkpoint(resume, trainer)
    trainer.fit(X, y, epochs=epochs)
    return model, trainer


def test_checkpoint_and_resume_bitwise(tmp_path):
    straight, _ = _run(tmp_path, 4)
    _, half = _run(tmp_path, 2)
    save_checkpoint(tmp_path / "c.npz", half)
    resumed, _ = _run(tmp_path, 2, resume=tmp_path / "c.npz")
    assert np.array_equal(straight.flat_parameters, resumed.flat_parameters)
    for key, value in straight.buffers().items():
        assert np.array_equal(resumed.buffers()[key], value), key


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda ln: [bp.Dense(4), ln, bp.Dense(4), ln, bp.Dense(2)], "3"),
        (lambda ln: [bp.Dense(4), bp.Residual([ln]), bp.Residual([ln]), bp.Dense(2)], "2.0"),
        (lambda ln: [bp.Dense(4), bp.Residual([ln, bp.Dense(4), ln]), bp.Dense(2)], "1.2"),
    ],
)
def test_one_layer_object_at_two_places_is_refused(build, name):
    """The same LayerNorm object at two places was accepted: it was bound to the second place's
    parameters, and its cache held the last forward only, so its gradients were wrong without a
    word (check_gradients failed). Sharing is not supported: the error names both places."""
    ln = bp.LayerNorm()
    with pytest.raises(ValueError, match=rf"layer {name} \(LayerNorm\) is the same object as"):
        bp.Sequential(build(ln), input_shape=(3,), seed=0)


def _masked_pair(inside, cell):
    """Masking(0) inside the Residual or before it: the same function of the data when the mask
    made inside reaches the layers after it (padded steps are 0, so masking them first changes
    no value)."""
    d = 4
    if inside:
        layers = [bp.Residual([bp.Masking(0.0), bp.MultiHeadSelfAttention(2, 2)]), cell]
    else:
        layers = [bp.Masking(0.0), bp.Residual([bp.MultiHeadSelfAttention(2, 2)]), cell]
    return bp.Sequential(layers + [bp.Dense(2)], input_shape=(5, d), dtype="float64", seed=0)


@pytest.mark.parametrize("make_cell", [lambda: bp.LSTM(3), lambda: bp.SequencePool("mean")])
def test_a_mask_made_inside_a_residual_reaches_the_layers_inside_and_after_it(make_cell, rng):
    """Residual ran each of its layers with the incoming mask and handed that mask on, so the
    mask of a Masking inside it was lost: the attention beside it and the LSTM (or mean pool)
    after it read the padded steps, and the predictions changed with the padding."""
    X = rng.standard_normal((3, 5, 4))
    X[0, 3:], X[1, 1:] = 0.0, 0.0  # padded steps
    inside, outside = _masked_pair(True, make_cell()), _masked_pair(False, make_cell())
    inside_state = inside.state_dict()
    outside.load_state_dict({_rename(k): v for k, v in inside_state.items()})
    np.testing.assert_allclose(inside.forward(X), outside.forward(X), rtol=1e-12, atol=1e-12)
    # and the gradients agree too (the layers cached the mask they were given)
    for model in (inside, outside):
        model.forward(X, training=True)
        model.backward(np.ones((3, 2)))
    grads = outside.gradients()
    for key, g in inside.gradients().items():
        np.testing.assert_allclose(g, grads[_rename(key)], rtol=1e-10, atol=1e-12)


def _rename(key):
    """A parameter of the model with Masking inside the Residual, named as in the other one."""
    if key.startswith("0.1."):
        return "1.0." + key[4:]
    index, rest = key.split(".", 1)
    return f"{int(index) + 1}.{rest}"


def test_a_batchnorm_taken_out_of_a_frozen_residual_trains_in_its_new_model(rng):
    """A frozen Residual marks its children frozen_by_container on every forward, and the mark
    stayed when a layer was taken out (a block's layers reused in a new model): the BatchNorm,
    trainable and at the top of a new model, kept normalizing training batches with its running
    statistics and never updated them, as if still frozen."""
    X = rng.normal(5.0, 3.0, size=(16, 3))
    block = bp.Residual([bp.BatchNorm(), bp.Dense(3)])
    block.trainable = False
    bp.Sequential([bp.Dense(3, 3), block], seed=0).forward(X, training=True)
    for new in (
        bp.Sequential(copy.deepcopy(block.layers), input_shape=(3,), dtype="float64", seed=0),
        bp.Sequential(block.layers, input_shape=(3,), dtype="float64", seed=0),
    ):
        bn = new.layers[0]
        out = new.forward(X, training=True)
        ref = bp.Sequential([bp.BatchNorm(), bp.Dense(3)], input_shape=(3,), dtype="float64")
        ref.load_state_dict(new.state_dict())
        np.testing.assert_allclose(out, ref.forward(X, training=True), rtol=1e-12)
        assert not np.all(bn.buffers["running_mean"] == 0)  # the statistics move
    solo = copy.deepcopy(block.layers[0])
    solo.initialize((3,), dtype="float64")
    solo.forward(X, training=True)
    assert not np.all(solo.buffers["running_mean"] == 0)
