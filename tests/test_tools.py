"""The training-run tools: LR range test, loss landscapes, MC dropout and calibration, dataset
cartography, adaptive gradient clipping (backprop/lr_finder.py, landscape.py, uncertainty.py,
cartography.py, regularization.clip_adaptive)."""

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

import backprop as bp
from backprop import landscape as ls
from backprop.regularization import clip_adaptive

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.experiments import tools as tools_experiment  # noqa: E402
from scripts.experiments._common import digits  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return digits()


def mlp(n_out=10, dropout=0.0, seed=0, dtype="float32"):
    layers = [bp.Dense(64, 64), bp.ReLU()]
    if dropout:
        layers.append(bp.Dropout(dropout))
    layers += [bp.Dense(64, n_out)]
    return bp.Sequential(layers, seed=seed, dtype=dtype)


def make_trainer(model, optimizer, epochs=15, **kw):
    return bp.Trainer(
        model, bp.SoftmaxCrossEntropy(), optimizer, batch_size=32, epochs=epochs, seed=0, **kw
    )


# -- learning-rate range test ------------------------------------------------------------------------
def test_lr_find_leaves_model_optimizer_and_trainer_bitwise_unchanged(data):
    model = mlp()
    opt = bp.Adam(1e-3)
    trainer = make_trainer(model, opt, epochs=1)
    trainer.fit(data["X_train"][:200], data["y_train"][:200])  # optimizer state is not empty
    before = (
        model.flat_parameters.copy(),
        model.flat_gradients.copy(),
        copy.deepcopy(opt.state_dict()),
        copy.deepcopy(trainer.state_dict()),
        copy.deepcopy(model.rng.bit_generator.state),
    )
    result = bp.lr_find(trainer, data["X_train"], data["y_train"], steps=30)
    assert len(result.lrs) >= 3
    np.testing.assert_array_equal(model.flat_parameters, before[0])
    np.testing.assert_array_equal(model.flat_gradients, before[1])
    after_opt = opt.state_dict()
    for key, value in before[2].items():
        np.testing.assert_array_equal(np.asarray(after_opt[key]), np.asarray(value), err_msg=key)
    assert trainer.state_dict()["shuffle_rng"] == before[3]["shuffle_rng"]
    assert trainer.state_dict()["step_count"] == before[3]["step_count"]
    assert model.rng.bit_generator.state == before[4]


def test_lr_find_takes_the_trainers_own_steps(rng):
    # Penalties scaled per sample, a frozen layer, a pruning mask and value clipping: the range
    # test's losses are those of Trainer.train_step at the same rates on the same batches (it
    # applied l1/l2 unscaled, revived pruned weights and ignored clip_value).
    X, y = rng.normal(size=(64, 6, 2)), rng.integers(0, 3, 64)

    def setup():
        model = bp.Sequential(
            [bp.Conv1D(4, 3), bp.ReLU(), bp.GRU(5), bp.Dense(3)],
            input_shape=(6, 2),
            dtype="float64",
            seed=0,
        )
        bp.pruning.prune(model, 0.5)
        model.layers[2].trainable = False
        return bp.Trainer(
            model,
            "cross_entropy",
            bp.SGD(0.1, momentum=0.9),
            batch_size=16,
            l1=0.01,
            l2=0.5,
            penalty_scale="per_sample",
            clip_value=0.05,
        )

    result = bp.lr_find(setup(), X, y, start=1e-3, end=1.0, steps=8, seed=0)
    trainer = setup()
    order, own = np.random.default_rng(0).permutation(64), []
    for k, lr in enumerate(result.lrs):
        idx = np.sort(order[16 * k : 16 * (k + 1)]) if k < 4 else None
        if idx is None:
            break
        trainer.optimizer.lr = lr
        own.append(trainer.train_step(X[idx], y[idx])[0])
    np.testing.assert_allclose(result.losses[: len(own)], own, rtol=1e-12)


def test_lr_find_on_an_unbuilt_model_trains_its_copy(data):
    # Its copy, unbuilt, took no step at all (Trainer.train_step took the trainable slices
    # before the first forward built it): the curve was the untrained model's noise and the
    # suggestion that noise's minimum.
    X, y = data["X_train"][:400], data["y_train"][:400]
    lazy = bp.Sequential([bp.Dense(64), bp.ReLU(), bp.Dense(10)], seed=0)
    built = mlp()
    runs = [
        bp.lr_find(make_trainer(m, bp.SGD(0.01), epochs=1), X, y, steps=30) for m in (lazy, built)
    ]
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
    assert runs[0].suggestion == runs[1].suggestion and not lazy.built


def test_lr_find_stops_when_the_loss_diverges_and_the_rates_grow_geometrically(data):
    trainer = make_trainer(mlp(), bp.SGD(0.01))
    result = bp.lr_find(trainer, data["X_train"], data["y_train"], start=1e-4, end=1e4, steps=60)
    assert result.diverged
    assert len(result.lrs) < 60
    ratios = result.lrs[1:] / result.lrs[:-1]
    np.testing.assert_allclose(ratios, (1e4 / 1e-4) ** (1 / 59), rtol=1e-9)
    assert result.smoothed[-1] > 4 * result.smoothed.min() or not np.isfinite(result.losses[-1])


def test_lr_find_does_not_call_a_loss_that_falls_below_zero_diverged(rng):
    # Poisson's loss drops log t! and goes negative; the rule s > 4 * min fired as soon as the
    # falling loss crossed 0 (-0.087 > 4 * -0.087), and the test stopped there, "diverged"
    X = rng.normal(size=(400, 3))
    y = rng.poisson(np.exp(0.5 * X[:, :1] + 2.0)).astype(float)
    model = bp.Sequential([bp.Dense(3, 8), bp.ReLU(), bp.Dense(8, 1)], seed=0, dtype="float64")
    model.layers[2].params["b"][:] = 2.0
    trainer = bp.Trainer(model, "poisson", bp.SGD(0.01), batch_size=16)
    result = bp.lr_find(trainer, X, y, start=1e-5, end=1.0, steps=40, seed=0)
    s = result.smoothed
    best = np.minimum.accumulate(s)
    assert best[-1] < -1.0  # it went on well below 0
    assert np.all(s[:-1] - best[:-1] <= 3 * np.abs(best[:-1]))  # no earlier stop was due
    assert result.diverged and s[-1] - best[-1] > 3 * abs(best[-1])


def test_suggest_takes_the_minimum_over_ten_and_the_steepest_descent_before_it():
    lrs = np.geomspace(1e-5, 1.0, 11)  # 1e-5, 1e-4.5, ..., 1
    smoothed = np.array([3.0, 3.0, 2.9, 2.5, 1.5, 1.0, 0.8, 0.7, 0.9, 2.0, 5.0])
    suggestion, steepest = bp.lr_finder.suggest(lrs, smoothed)
    assert suggestion == pytest.approx(lrs[7] / 10)
    assert steepest == pytest.approx(lrs[4])  # the largest drop per log-rate: 2.5 -> 1.0


@pytest.mark.parametrize(
    "lrs, smoothed, match",
    [
        # lengths that differ: the minimum's index was looked up in lrs all the same
        ([1e-3, 1e-2, 1e-1], [3.0, 2.0], r"one length.*got 3 and 2"),
        ([], [], r"at least one point"),
        ([[1e-3, 1e-2]], [[3.0, 2.0]], r"1-D"),
        ([1e-3, 0.0, 1e-1], [3.0, 2.0, 1.0], r"lrs must be positive and finite"),
        ([1e-3, 1e-2, 1e-1], [3.0, np.nan, 1.0], r"smoothed must be finite"),
    ],
)
def test_suggest_refuses_curves_it_cannot_read(lrs, smoothed, match):
    with pytest.raises(ValueError, match=match):
        bp.lr_finder.suggest(np.array(lrs), np.array(smoothed))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"start": 0.0}, "start"),
        ({"start": 1.0, "end": 0.1}, "end must be larger"),
        ({"steps": 2}, "steps"),
        ({"diverge": 1.0}, "diverge"),
        # a TypeError from a comparison, and NumPy's "expected non-negative integer" naming
        # nothing, before these were checked
        ({"beta": "0.9"}, r"beta must be a finite number in \[0, 1\), got '0.9'"),
        ({"beta": None}, "beta must be a finite number"),
        ({"seed": -1}, "seed must be an int >= 0, a numpy Generator or None, got -1"),
        ({"seed": "a"}, "seed must be an int"),
    ],
)
def test_lr_find_refuses_bad_ranges(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.lr_find(make_trainer(mlp(), bp.Adam()), data["X_train"], data["y_train"], **kwargs)


@pytest.mark.parametrize("X_of", [lambda X, y: X, lambda X, y: [(X[:10], y[:10])]])
def test_lr_find_without_y_says_it_needs_arrays(data, X_of):
    """``y=None`` (an array X, or a list of batches as fit takes) failed with "y holds labels
    that are not numbers ('None', ...)" or NumPy's "inhomogeneous shape"."""
    X = X_of(data["X_train"], data["y_train"])
    with pytest.raises(ValueError, match=r"lr_find needs the arrays X and y.*got y=None"):
        bp.lr_find(make_trainer(mlp(), bp.Adam()), X, None)


def test_lr_find_skips_batches_of_zero_weight_as_fit_does(rng):
    # Weights that are zero for most rows (a class left out, a subset selected): fit skips a
    # batch of zero total weight, but the range test stepped on it and stopped with the loss's
    # "sample_weight must not sum to zero". Every rate now gets a batch with some weight.
    X, y = rng.normal(size=(96, 5)), rng.integers(0, 3, 96)
    w = np.zeros(96)
    w[:6] = 1.0
    model = bp.Sequential([bp.Dense(5, 8), bp.ReLU(), bp.Dense(8, 3)], seed=0, dtype="float64")
    trainer = bp.Trainer(model, "cross_entropy", bp.SGD(0.1), batch_size=8)
    result = bp.lr_find(trainer, X, y, start=1e-3, end=1.0, steps=12, sample_weight=w)
    assert len(result.lrs) == len(result.losses) >= 3 and np.all(np.isfinite(result.losses))
    with pytest.raises(ValueError, match="zero total weight"):
        bp.lr_find(trainer, X, y, steps=12, sample_weight=np.zeros(96))


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, hand",
    [(lambda lr: bp.Adam(lr), 1e-3), (lambda lr: bp.SGD(lr, momentum=0.9), 0.01)],
    ids=["adam", "sgd-momentum"],
)
def test_the_suggested_rate_trains_as_well_as_a_hand_tuned_one(data, make, hand):
    trainer = make_trainer(mlp(), make(1e-3))
    suggested = bp.lr_find(trainer, data["X_train"], data["y_train"]).suggestion
    scores = []
    for lr in (hand, suggested):
        model = mlp()
        make_trainer(model, make(lr)).fit(data["X_train"], data["y_train"])
        scores.append(np.mean(model.predict(data["X_test"]).argmax(1) == data["y_test"]))
    assert scores[1] >= scores[0] - 0.02, (suggested, scores)


# -- loss landscapes ---------------------------------------------------------------------------------
def full_loss(model, X, y):
    return float(bp.SoftmaxCrossEntropy().forward(model.forward(X), y))


def test_loss_along_line_hits_both_ends_and_batching_does_not_change_it(data):
    X, y = data["X_train"][:300], data["y_train"][:300]
    start, trained = mlp(seed=1, dtype="float64"), mlp(seed=2, dtype="float64")
    before = trained.flat_parameters.copy()
    alphas, losses = ls.loss_along_line(
        trained,
        bp.SoftmaxCrossEntropy(),
        X,
        y,
        start.flat_parameters,
        alphas=np.array([0.0, 0.5, 1.0]),
        batch_size=37,
    )
    assert losses[0] == pytest.approx(full_loss(start, X, y), rel=1e-12)
    assert losses[2] == pytest.approx(full_loss(trained, X, y), rel=1e-12)
    mid = trained.copy()
    mid.flat_parameters[:] = 0.5 * (start.flat_parameters + before)
    assert losses[1] == pytest.approx(full_loss(mid, X, y), rel=1e-12)
    np.testing.assert_array_equal(trained.flat_parameters, before)  # not modified


def test_the_default_line_holds_both_ends_exactly(data):
    # The default grid used to be linspace(-0.25, 1.25, 41), step 0.0375: neither 0 nor 1 on
    # it, so `backprop landscape` printed the loss at alpha 0.0125 as "at the initial weights"
    # and at 0.9875 as "trained", and sharpness() measured from 0.0125.
    X, y = data["X_train"][:200], data["y_train"][:200]
    start, trained = mlp(seed=1, dtype="float64"), mlp(seed=2, dtype="float64")
    alphas, losses = ls.loss_along_line(
        trained, bp.SoftmaxCrossEntropy(), X, y, start.flat_parameters
    )
    assert alphas[0] == -0.25 and alphas[-1] == 1.25
    assert losses[alphas == 0.0] == pytest.approx([full_loss(start, X, y)], rel=1e-12)
    assert losses[alphas == 1.0] == pytest.approx([full_loss(trained, X, y)], rel=1e-12)
    center = full_loss(trained, X, y)  # sharpness is measured from the segment's end here
    beyond = 2 * trained.flat_parameters - start.flat_parameters
    line = ls.loss_along_line(
        trained, bp.SoftmaxCrossEntropy(), X, y, trained.flat_parameters, beyond
    )
    profile = line[1]
    assert ls.sharpness(alphas, profile, 0.25) == pytest.approx(
        np.max(profile[np.abs(alphas) <= 0.25]) - center, rel=1e-12
    )


def test_a_float32_line_ends_exactly_at_its_end_weights(data):
    # start + 1 * (end - start) rounds in float32 (about 800 of 4810 weights off by an ulp):
    # the "trained" loss that `backprop landscape` prints differed from the trained model's
    X, y = data["X_train"][:200], data["y_train"][:200]
    start, trained = mlp(seed=1), mlp(seed=2)
    trained.flat_parameters[...] *= 3
    _, losses = ls.loss_along_line(
        trained, bp.SoftmaxCrossEntropy(), X, y, start.flat_parameters, alphas=np.array([0.0, 1.0])
    )
    assert losses[0] == full_loss(start, X, y)
    assert losses[1] == full_loss(trained, X, y)


def test_filter_normalized_direction_matches_each_units_weight_norm():
    model = mlp(seed=3, dtype="float64")
    d = ls.filter_normalized_direction(model, np.random.default_rng(0))
    params = model.parameters()
    for name, sl in model.param_slices().items():
        piece = d[sl].reshape(params[name].shape)
        if name.endswith(".W"):
            np.testing.assert_allclose(
                np.linalg.norm(piece, axis=0), np.linalg.norm(params[name], axis=0), rtol=1e-12
            )
        else:
            assert not piece.any(), name  # biases get a zero direction


def test_project_trajectory_recovers_plane_coordinates():
    rng = np.random.default_rng(0)
    center, d1, d2 = rng.standard_normal((3, 50))
    coords = rng.standard_normal((7, 2))
    points = center + coords[:, :1] * d1 + coords[:, 1:] * d2
    np.testing.assert_allclose(ls.project_trajectory(points, center, d1, d2), coords, atol=1e-12)


def test_loss_surface_center_is_the_trained_loss_and_a_direction_raises_it(data):
    X, y = data["X_train"][:300], data["y_train"][:300]
    model = mlp(dtype="float64")
    make_trainer(model, bp.Adam(1e-2), epochs=20).fit(X, y)
    rng = np.random.default_rng(0)
    d1, d2 = (ls.filter_normalized_direction(model, rng) for _ in range(2))
    grid = np.array([-1.0, 0.0, 1.0])
    Z = ls.loss_surface(model, bp.SoftmaxCrossEntropy(), X, y, d1, d2, grid, grid)
    assert Z[1, 1] == pytest.approx(full_loss(model, X, y), rel=1e-12)
    assert Z.min() == Z[1, 1]  # a trained minimum: every unit step away is worse


def test_landscape_functions_name_their_bad_arguments():
    # A direction of the wrong length failed in a NumPy broadcast, a negative penalty gave a
    # loss below the data loss (-8.4), and sharpness with a radius below 0 or no profile failed
    # in a reduction of an empty array.
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 64)), rng.integers(0, 10, 10)
    model, loss = mlp(dtype="float64"), bp.SoftmaxCrossEntropy()
    model.build((64,))
    w, short = model.flat_parameters, np.zeros(3)
    with pytest.raises(ValueError, match=rf"d1 and d2 must have shape \({w.size},\) .*got \(3,\)"):
        ls.loss_surface(model, loss, X, y, short, w, [0.0], [0.0])
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0, got -1"):
        ls.loss_along_line(model, loss, X, y, w, alphas=[0.0, 1.0], l2=-1.0)
    with pytest.raises(ValueError, match="l1 must be a finite number >= 0"):
        ls.loss_surface(model, loss, X, y, w, w, [0.0], [0.0], l1=float("nan"))
    with pytest.raises(ValueError, match=r"center, d1 and d2 must have shape \(5,\)"):
        ls.project_trajectory(np.zeros((3, 5)), np.zeros(5), np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="trajectory must have shape"):
        ls.project_trajectory(np.zeros((3, 4)), np.zeros(5), np.zeros(5), np.zeros(5))
    lazy = bp.Sequential([bp.Dense(8), bp.Dense(3)])  # no weights yet: the shapes said (0,)
    with pytest.raises(ValueError, match=r"not built.*model.build\(input_shape\)"):
        ls.loss_along_line(lazy, loss, X, y, np.zeros(3))
    with pytest.raises(ValueError, match="not built"):
        ls.filter_normalized_direction(lazy, rng)  # it returned an empty direction
    with pytest.raises(ValueError, match="radius must be a finite number >= 0, got -1"):
        ls.sharpness([-1.0, 0.0, 1.0], [2.0, 1.0, 3.0], -1.0)
    with pytest.raises(ValueError, match="alphas and losses"):
        ls.sharpness([], [], 0.5)


# -- MC dropout and calibration ----------------------------------------------------------------------
def test_mc_dropout_needs_dropout_and_leaves_the_model_untouched(data):
    with pytest.raises(ValueError, match="Dropout"):
        bp.mc_dropout_predict(mlp(), data["X_test"])
    model = bp.Sequential(
        [bp.Dense(64, 32), bp.BatchNorm(32), bp.ReLU(), bp.Dropout(0.5), bp.Dense(32, 10)], seed=0
    )
    state = model.state_dict()
    rng_state = copy.deepcopy(model.rng.bit_generator.state)
    a = bp.mc_dropout_predict(model, data["X_test"][:50], n_samples=5, seed=3)
    b = bp.mc_dropout_predict(model, data["X_test"][:50], n_samples=5, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)  # the seed decides the masks
    assert a.std.max() > 0  # the masks differ between passes
    np.testing.assert_allclose(a.mean.sum(axis=1), 1.0, rtol=1e-9)
    for key, value in model.state_dict().items():  # BatchNorm statistics included
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert model.rng.bit_generator.state == rng_state
    assert all(layer.rng is model.rng for layer in model.layers if isinstance(layer, bp.Dropout))


def test_mc_dropout_honours_padding_masks_and_dropout_inside_residuals(rng):
    # It ran the layers one by one: padding masks never reached the LSTM (a padded sequence got
    # other numbers than the same sequence alone), and a Dropout inside a Residual was not found.
    def seq_model(t):
        layers = [bp.Embedding(9, 4, mask_zero=True), bp.LSTM(4), bp.Dropout(0.5), bp.Dense(3)]
        return bp.Sequential(layers, input_shape=(t,), dtype="float64", seed=0)

    ids = rng.integers(1, 9, size=(6, 2))
    padded = np.concatenate([ids, np.zeros((6, 3), dtype=ids.dtype)], axis=1)
    short, long = seq_model(2), seq_model(5)
    long.flat_parameters[...] = short.flat_parameters  # no parameter depends on t
    a = bp.mc_dropout_predict(short, ids, n_samples=4, seed=1)
    b = bp.mc_dropout_predict(long, padded, n_samples=4, seed=1)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-12)
    np.testing.assert_allclose(b.std, a.std, rtol=1e-12, atol=1e-15)
    nested = bp.Sequential(
        [bp.Dense(3, 8), bp.Residual([bp.Dense(8), bp.Dropout(0.5)]), bp.Dense(2)], seed=0
    )
    out = bp.mc_dropout_predict(nested, rng.normal(size=(5, 3)), n_samples=4)
    assert out.std.max() > 0  # the nested Dropout was on
    assert "forward" not in vars(nested.layers[1].layers[1])  # its own forward again


def test_mc_dropout_names_an_empty_input():
    # it ended in np.concatenate's "need at least one array to concatenate"
    model = bp.Sequential([bp.Dense(3, 4), bp.Dropout(0.5), bp.Dense(4, 2)], seed=0)
    with pytest.raises(ValueError, match="X has 0 samples"):
        bp.mc_dropout_predict(model, np.empty((0, 3)))


def test_mc_dropout_of_a_sequence_classifier_averages_per_step_probabilities(rng):
    # output_transform called SequenceCrossEntropy a regression ("identity"): the MC mean was
    # the mean of the logits, the std that of logits, and no entropy was given.
    layers = [bp.Embedding(9, 4), bp.LSTM(5, return_sequences=True), bp.Dropout(0.5), bp.Dense(3)]
    model = bp.Sequential(layers, input_shape=(4,), dtype="float64", seed=0)
    ids = rng.integers(0, 9, size=(6, 4))
    loss = bp.SequenceCrossEntropy()
    assert bp.uncertainty.output_transform(loss) == "softmax"
    mc = bp.mc_dropout_predict(model, ids, n_samples=5, output=loss, seed=2)
    masks = np.random.default_rng(2)
    passes = []
    for _ in range(5):  # the same masks, drawn by hand: softmax over each step's classes
        h = model.layers[1].forward(model.layers[0].forward(ids))
        keep = masks.random(h.shape) < 0.5
        passes.append(special.softmax(model.layers[3].forward(h * keep / 0.5), axis=-1))
    P = np.stack(passes)
    np.testing.assert_allclose(mc.mean, P.mean(0), rtol=1e-12)
    np.testing.assert_allclose(mc.std, P.std(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(mc.mean.sum(axis=-1), 1.0, rtol=1e-12)
    assert mc.entropy.shape == (6, 4) and mc.mutual_information.shape == (6, 4)


@pytest.mark.slow
def test_mc_dropout_entropy_is_higher_on_a_class_never_seen(data):
    seen = data["y_train"] != 9
    model = bp.Sequential(
        [bp.Dense(64, 128), bp.ReLU(), bp.Dropout(0.3), bp.Dense(128, 9)],
        seed=0,
    )
    make_trainer(model, bp.Adam(1e-3), epochs=30).fit(data["X_train"][seen], data["y_train"][seen])
    mc = bp.mc_dropout_predict(model, data["X_test"], n_samples=20, seed=0)
    unseen = data["y_test"] == 9
    assert mc.entropy[unseen].mean() > 2 * mc.entropy[~unseen].mean()
    assert mc.mutual_information[unseen].mean() > mc.mutual_information[~unseen].mean()


def test_ece_of_a_hand_worked_example():
    # two bins used (of 10): confidence 0.95 (3 samples, 2 right) and 0.65 (1 sample, right)
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.05, 0.95], [0.35, 0.65]])
    y = np.array([0, 0, 0, 1])
    # |2/3 - 0.95| * 3/4 + |1 - 0.65| * 1/4
    expected = abs(2 / 3 - 0.95) * 0.75 + 0.35 * 0.25
    assert bp.expected_calibration_error(probs, y, n_bins=10) == pytest.approx(expected)
    conf, acc, counts = bp.reliability_curve(probs, y, n_bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 3]


def test_ece_bins_are_closed_on_the_right_as_guo_et_al_define_them():
    # Bin m is ((m - 1) / M, m / M] (Guo et al. 2017; scikit-learn's calibration_curve and
    # torchmetrics bin so too). Bins closed on the left put the confidence 0.6 alone in
    # [0.6, 0.7) and gave an ECE of 0.475 instead of |1/2 - 0.575| = 0.075.
    probs, y = np.array([[0.4, 0.6], [0.45, 0.55]]), np.array([1, 0])
    assert bp.expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0.075)
    conf, acc, counts = bp.reliability_curve(probs, y, n_bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0] and acc[5] == 0.5
    # Confidences 0.7 = 7 / 10 (0.7 * 10 rounds above 7) and 1 close bins 6 and 9.
    probs = np.array([[0.3, 0.7], [0.0, 1.0], [0.35, 0.65]])
    assert bp.reliability_curve(probs, [1, 1, 0], n_bins=10)[2].tolist() == [0] * 6 + [2, 0, 0, 1]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, y: bp.expected_calibration_error(p, y, n_bins=0), "n_bins"),
        (lambda p, y: bp.reliability_curve(p, y, n_bins=2.5), "n_bins"),
        (lambda p, y: bp.expected_calibration_error(p[:0], y[:0]), "no samples"),
        (lambda p, y: bp.TemperatureScaling().fit(p[:0], y[:0]), "no samples"),
        (lambda p, y: bp.expected_calibration_error(p, y + 2), "label 2 out of range"),
        (lambda p, y: bp.TemperatureScaling().fit(p, y - 1), "label -1 out of range"),
        (lambda p, y: bp.TemperatureScaling().fit(p, y + 0.5), "integer labels"),
        (lambda p, y: bp.expected_calibration_error(3 * p, y), "predicted probabilities"),
        (lambda p, y: bp.reliability_curve(p - 0.5, y), "predicted probabilities"),
        (lambda p, y: bp.expected_calibration_error(p[:, 1:], 0 * y), "predicted probabilities"),
        (lambda p, y: bp.reliability_curve(np.where(p > 0.8, np.nan, p), y), "probabilities"),
        # a NaN or infinite logit made the objective NaN: T = 0.49 came back, silently
        (lambda p, y: bp.TemperatureScaling().fit(np.where(p > 0.8, np.nan, p), y), "finite"),
        (lambda p, y: bp.TemperatureScaling().fit(np.where(p > 0.8, np.inf, p), y), "finite"),
        # one row of logits failed in SciPy with an AxisError
        (lambda p, y: bp.TemperatureScaling().transform(p[0]), r"2-D \(n, n_classes\)"),
    ],
)
def test_calibration_refuses_what_it_cannot_measure(call, match):
    # n_bins=0 failed inside np.bincount, no data gave NaN (a temperature of 0.49 from a NaN
    # objective), label -1 read the last column (T = 20) and 5 was counted wrong or raised
    # an IndexError; float labels were truncated. Logits (3 * p) gave an ECE of 1.1, above its
    # bound of 1; negative or NaN scores failed inside np.bincount; a single column of p(1)
    # put every sample in class 0
    probs, y = np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 1])
    with pytest.raises(ValueError, match=match):
        call(probs, y)


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = 3.0 * rng.standard_normal((20000, 5))
    true_t = 2.5
    p = special.softmax(logits / true_t, axis=1)
    y = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
    ts = bp.TemperatureScaling().fit(logits, y)
    assert ts.temperature_ == pytest.approx(true_t, rel=0.05)
    scaled = ts.transform(logits)
    np.testing.assert_array_equal(scaled.argmax(1), logits.argmax(1))  # predictions unchanged
    assert bp.expected_calibration_error(scaled, y) < bp.expected_calibration_error(
        special.softmax(logits, axis=1), y
    )


# -- dataset cartography -----------------------------------------------------------------------------
def test_cartography_finds_flipped_labels(data):
    X, y = data["X_train"], data["y_train"]
    rng = np.random.default_rng(1)
    n_flip = int(0.05 * len(y))
    flipped = rng.choice(len(y), n_flip, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, n_flip)) % 10
    carto = bp.Cartography(X, noisy)
    make_trainer(mlp(), bp.Adam(1e-3), epochs=12, callbacks=[carto]).fit(X, noisy)
    assert carto.probabilities.shape == (12, len(y))
    assert carto.probabilities.dtype == np.float32
    top = carto.suspicious(n_flip)
    assert np.isin(top, flipped).mean() >= 0.5  # chance is 0.05
    assert set(carto.suspicious()) == set(range(len(y)))


def test_cartography_records_p_of_the_given_label():
    X = np.eye(3, dtype=np.float32)
    model = bp.Sequential([bp.Dense(3, 3)], seed=0)
    carto = bp.Cartography(X, np.array([0, 1, 2]))
    carto.on_epoch_end(type("View", (), {"model": model})(), 0, {})
    expected = special.softmax(model.forward(X).astype(np.float64), axis=1)[[0, 1, 2], [0, 1, 2]]
    np.testing.assert_allclose(carto.probabilities[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="integer labels"):
        bp.Cartography(X, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match="no epoch"):
        bp.Cartography(X, np.array([0, 1, 2])).confidence()
    assert carto.suspicious(5).size == 3 and carto.suspicious(0).size == 0
    with pytest.raises(ValueError, match="k must be a non-negative integer or None, got -1"):
        carto.suspicious(-1)  # it gave every sample but the least suspicious one


def test_cartography_refuses_labels_outside_the_models_classes():
    # label -1 read the last class's probability, and a label past the last class raised an
    # IndexError from inside the epoch's end
    X = np.eye(3, dtype=np.float32)
    view = type("View", (), {"model": bp.Sequential([bp.Dense(3, 3)], seed=0)})()
    with pytest.raises(ValueError, match="label -1"):
        bp.Cartography(X, np.array([0, -1, 2]))
    carto = bp.Cartography(X, np.array([0, 3, 2]))
    with pytest.raises(ValueError, match="label 3 out of range for 3 classes"):
        carto.on_epoch_end(view, 0, {})


# -- adaptive gradient clipping ----------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    factor=st.floats(1e-3, 1.0),
    scale=st.floats(1e-3, 1e3),
)
def test_agc_never_leaves_a_unit_ratio_above_the_factor(seed, factor, scale):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((5, 4)), rng.standard_normal(4) * 0.0, rng.standard_normal(3)]
    grads = [scale * rng.standard_normal(p.shape) for p in params]
    before = [g.copy() for g in grads]
    clip_adaptive(params, grads, factor, eps=1e-3)
    for w, g, g0 in zip(params, grads, before, strict=True):
        wu = np.maximum(
            np.linalg.norm(w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w[None], axis=0), 1e-3
        )
        gu = np.linalg.norm(g.reshape(-1, g.shape[-1]) if g.ndim > 1 else g[None], axis=0)
        assert np.all(gu <= factor * wu * (1 + 1e-9))
        # a unit inside the bound is untouched; a clipped one keeps its direction
        g0u = np.linalg.norm(g0.reshape(-1, g0.shape[-1]) if g0.ndim > 1 else g0[None], axis=0)
        inside = g0u <= factor * wu
        cols = g.reshape(-1, g.shape[-1]) if g.ndim > 1 else g[None]
        cols0 = g0.reshape(-1, g0.shape[-1]) if g0.ndim > 1 else g0[None]
        np.testing.assert_array_equal(cols[:, inside], cols0[:, inside])


def test_agc_in_the_trainer_records_the_pre_clip_norm_and_rescues_the_exploding_network(data):
    from scripts.experiments import exploding

    X, y = data["X_train"][:400], data["y_train"][:400]
    free = make_trainer(exploding.make_model(), bp.SGD(lr=exploding.LR), epochs=3)
    with pytest.raises(bp.TrainingDivergedError), np.errstate(all="ignore"):
        free.fit(X, y)
    model = exploding.make_model()
    norms = []

    class Norms(bp.Callback):
        def on_batch_end(self, trainer, batch, logs):
            norms.append(logs["grad_norm"])

    agc = make_trainer(
        model,
        bp.SGD(lr=exploding.LR),
        epochs=3,
        clip_mode="agc",
        clip_factor=0.1,
        callbacks=[Norms()],
    )
    history = agc.fit(X, y)
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0] / 2
    assert norms[0] > 100  # the recorded norm is the one before clipping
    with pytest.raises(ValueError, match="clip_mode"):
        make_trainer(mlp(), bp.SGD(0.1), clip_mode="global")


# -- the experiment page and the command line ----------------------------------------------------------
def test_tools_experiment_fast_form_makes_the_pages_points(tmp_path):
    results = tools_experiment.run(tmp_path, fast=True)
    assert results["cartography"]["precision"] > 10 * results["cartography"]["chance"]
    u = results["uncertainty"]
    assert u["entropy_unseen"] > u["entropy_seen"]
    agc = {r["setting"]: r for r in results["agc"]["rows"]}
    assert agc["no clipping"]["diverged"] != "no" and agc["AGC 0.1"]["diverged"] == "no"
    for name in ("lr_find", "landscape_1d", "landscape_2d", "reliability", "cartography"):
        assert (tmp_path / f"tools_{name}.png").stat().st_size > 5_000, name
    assert json.loads((tmp_path / "results.json").read_text())["fast"] is True


def test_the_tools_page_shows_the_numbers_of_its_results_file():
    folder = ROOT / "docs" / "experiments"
    page = (folder / "tools.md").read_text()
    summary = (folder / "tools" / "summary.md").read_text()
    results = json.loads((folder / "tools" / "results.json").read_text())
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert len(rows) > 15
    for line in rows:  # every table row the script wrote, verbatim
        assert line in page, line
    c = results["cartography"]
    assert f"share of {c['precision']:.4f} are flipped ones" in page
    u = results["uncertainty"]
    assert f"{u['entropy_seen']:.4f}" in summary  # the summary is made from the results


def test_the_tools_page_clips_the_network_of_the_clipping_page():
    # Section 5 retrains exploding.make_model() (float64) with the clipping page's SGD: its
    # unclipped and clip_norm=1 runs are that page's, number for number. (They were not: the
    # tools results predated the float64 network and said the run was lost a batch earlier.)
    folder = ROOT / "docs" / "experiments"
    agc = json.loads((folder / "tools" / "results.json").read_text())["agc"]["rows"]
    runs = json.loads((folder / "exploding" / "results.json").read_text())["runs"]
    rows = {r["setting"]: r for r in agc}
    for name in ("no clipping", "clip_norm=1"):
        for key in ("diverged", "updates", "test_accuracy"):
            assert rows[name][key] == runs[name][key], (name, key)
    clipped = rows["clip_norm=1"]["final_train_loss"]
    assert clipped == pytest.approx(runs["clip_norm=1"]["final_train_loss"], rel=1e-9)


def test_the_tools_command_line(tmp_path, monkeypatch, capsys):
    from backprop.app.cli import main

    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs" / "digits.toml")
    quick = ["--set", "trainer.epochs=3", "--set", "output.plots=false"]
    run_dir = tmp_path / "run"
    args = ["train", config, *quick, "--set", "output.trajectory=true"]
    assert main([*args, "--out", str(run_dir), "--quiet"]) == 0
    assert np.load(run_dir / "trajectory.npy").shape[0] == 4  # start + 3 epochs
    assert main(["lr-find", config, "--steps", "20", "--out", str(tmp_path / "lr.png")]) == 0
    assert (tmp_path / "lr.png").stat().st_size > 5_000
    assert main(["landscape", str(run_dir), "--points", "5", "--samples", "200"]) == 0
    assert (run_dir / "figures" / "landscape_2d.png").is_file()
    assert main(["uncertainty", str(run_dir), "--samples", "3"]) == 0
    numbers = json.loads((run_dir / "uncertainty.json").read_text())
    assert 0 <= numbers["test_ece"] <= 1 and numbers["temperature"] > 0
    assert main(["cartography", config, *quick, "--top", "5", "--out", str(tmp_path / "c")]) == 0
    assert len((tmp_path / "c" / "suspicious.csv").read_text().splitlines()) == 6
    assert main(["landscape", str(run_dir), "--points", "2"]) == 2
    # an even grid misses alpha = beta = 0: its printed "center" was the loss at (1/3, 1/3)
    capsys.readouterr()
    assert main(["landscape", str(run_dir), "--points", "4"]) == 2
    assert "--points must be odd" in capsys.readouterr().err
    assert main(["landscape", str(tmp_path / "nowhere")]) == 2


def _digits_run(tmp_path, hidden: str):
    """Train ``hidden`` (``[[model.layers]]`` tables), then a Dense output, on digits for 2
    epochs with the ``backprop`` command; returns the run directory."""
    from backprop.app.cli import main

    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nsource = "digits"\nvalidation_size = 0.1\n'
        + hidden
        + '[[model.layers]]\ntype = "Dense"\n'
        "[loss]\nname = 'cross_entropy'\n[trainer]\nepochs = 2\n[output]\nplots = false\n"
    )
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_landscape_command_says_what_batchnorm_does_to_the_initial_end(tmp_path, capsys):
    # The line moves the parameters only: BatchNorm's running statistics are the trained ones
    # at every alpha, so "loss at the initial weights" (2.74 here) was not the initial model's
    # loss (2.43); the command now prints that one too and says why they differ
    from backprop.app.cli import main
    from backprop.app.tools import _load_run

    run_dir = _digits_run(
        tmp_path,
        '[[model.layers]]\ntype = "Dense"\nout_features = 16\n'
        '[[model.layers]]\ntype = "BatchNorm"\n[[model.layers]]\ntype = "ReLU"\n',
    )
    capsys.readouterr()
    assert main(["landscape", str(run_dir), "--points", "3", "--samples", "200"]) == 0
    out = capsys.readouterr().out
    _, ds, initial, _, trainer = _load_run(run_dir)
    own = bp.Trainer(initial, trainer.loss, "sgd").evaluate(ds.X_train[:200], ds.y_train[:200])
    assert f"the initial model itself: {own['loss']:.4g}" in out
    assert "running statistics" in out


def test_uncertainty_command_finds_a_dropout_inside_a_residual_block(tmp_path, capsys):
    # mc_dropout_predict switches on every Dropout, nested ones too; the command used to look
    # at the top-level layers only, skip MC dropout and say the model had no Dropout layer
    from backprop.app.cli import main

    run_dir = _digits_run(
        tmp_path,
        '[[model.layers]]\ntype = "Dense"\nout_features = 32\n'
        '[[model.layers]]\ntype = "Residual"\nlayers = [{ type = "Dense", out_features = 32 }, '
        '{ type = "ReLU" }, { type = "Dropout", drop_rate = 0.2 }]\n',
    )
    assert main(["uncertainty", str(run_dir), "--samples", "3"]) == 0
    assert "no Dropout" not in capsys.readouterr().out
    numbers = json.loads((run_dir / "uncertainty.json").read_text())
    assert 0 <= numbers["mc_ece"] <= 1 and 0 < numbers["mc_accuracy"] <= 1


def test_cartography_command_refuses_a_one_logit_classifier(tmp_path, capsys):
    # XOR trains one logit with binary cross-entropy: the callback cannot read p(label) from
    # it, and the command used to end in its ValueError's traceback after the first epoch
    from backprop.app.cli import main

    out = tmp_path / "c"
    assert main(["cartography", str(ROOT / "configs" / "xor.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "one output per class" in err and "binary_cross_entropy" in err
    assert not out.exists()


def test_estimators_offer_mc_dropout(data):
    X, y = data["X_train"], data["y_train"]
    clf = bp.MLPClassifier(hidden_layer_sizes=(32,), dropout=0.3, max_iter=20, random_state=0)
    with pytest.warns(Warning):  # 20 iterations: sklearn's ConvergenceWarning
        clf.fit(X, y)
    mean, std = clf.predict_proba_mc(data["X_test"], n_samples=8)
    assert mean.shape == std.shape == (len(data["X_test"]), 10)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-6)
    assert std.max() > 0
    assert np.mean(mean.argmax(1) == data["y_test"]) > 0.8
    plain = bp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with pytest.warns(Warning):
        plain.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="Dropout"):
        plain.predict_proba_mc(X[:5])
    reg = bp.MLPRegressor(hidden_layer_sizes=(16,), dropout=0.2, max_iter=5, random_state=0)
    with pytest.warns(Warning):
        reg.fit(X[:200], y[:200].astype(float))
    m, s = reg.predict_mc(X[:7], n_samples=4)
    assert m.shape == s.shape == (7,)


def test_mc_dropout_of_a_poisson_model_averages_rates_not_log_rates(rng):
    # Poisson outputs are log-rates (predict and score take exp); output_transform called the
    # loss a plain regression, so MLPRegressor(loss="poisson").predict_mc averaged log-rates
    # and returned negative "counts" next to predict's positive ones
    X = rng.normal(size=(120, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 1.0))
    assert bp.uncertainty.output_transform(bp.Poisson()) == "exp"
    reg = bp.MLPRegressor(
        hidden_layer_sizes=(8,), loss="poisson", dropout=0.2, max_iter=5, random_state=0
    )
    with pytest.warns(Warning):
        reg.fit(X, y)
    mean, std = reg.predict_mc(X[:6], n_samples=5, random_state=1)
    masks = np.random.default_rng(1)
    model = reg.model_
    passes = []
    for _ in range(5):  # the same masks by hand: rates exp(z) of each pass
        h = X[:6]
        for layer in model.layers:
            if isinstance(layer, bp.Dropout):
                keep = masks.random(h.shape, dtype=h.dtype) < 1 - layer.drop_rate
                h = h * keep / (1 - layer.drop_rate)
            else:
                h = layer.forward(h)
        passes.append(np.exp(h.astype(np.float64)).ravel())
    np.testing.assert_allclose(mean, np.mean(passes, axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, np.std(passes, axis=0), rtol=1e-5, atol=1e-12)
    assert np.all(mean > 0)
