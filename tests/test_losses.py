"""Losses: finite-difference gradients, known values, the scaling convention, stability."""

import numpy as np
import pytest

import backprop as bp


def numeric_grad(loss, y_pred, y_true, sample_weight=None, eps=1e-6):
    g = np.zeros_like(y_pred)
    for idx in np.ndindex(*y_pred.shape):
        orig = y_pred[idx]
        y_pred[idx] = orig + eps
        plus = loss.forward(y_pred, y_true, sample_weight)
        y_pred[idx] = orig - eps
        minus = loss.forward(y_pred, y_true, sample_weight)
        y_pred[idx] = orig
        g[idx] = (plus - minus) / (2 * eps)
    return g


def cases(rng):
    n, k = 6, 3
    z = rng.normal(size=(n, k)) * 2
    return {
        "mse": (bp.MeanSquaredError(), z, rng.normal(size=(n, k))),
        "mae": (
            bp.MeanAbsoluteError(),
            z,
            z + rng.choice([-1, 1], size=(n, k)) * rng.uniform(0.1, 1, (n, k)),
        ),
        "huber": (bp.Huber(0.8), z, rng.normal(size=(n, k)) * 2),
        "ce-labels": (bp.SoftmaxCrossEntropy(), z, rng.integers(0, k, n)),
        "ce-onehot": (bp.SoftmaxCrossEntropy(), z, np.eye(k)[rng.integers(0, k, n)]),
        "ce-smoothing": (bp.SoftmaxCrossEntropy(label_smoothing=0.1), z, rng.integers(0, k, n)),
        "bce-multilabel": (bp.BinaryCrossEntropy(), z, rng.integers(0, 2, (n, k))),
        "bce-binary": (bp.BinaryCrossEntropy(), z[:, :1], rng.integers(0, 2, n)),
        "poisson": (bp.Poisson(), z, rng.poisson(2.0, (n, k))),
    }


@pytest.mark.parametrize("name", list(cases(np.random.default_rng(0))))
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_matches_finite_differences(name, weighted):
    rng = np.random.default_rng(7)
    loss, y_pred, y_true = cases(rng)[name]
    w = rng.uniform(0.1, 3.0, size=y_pred.shape[0]) if weighted else None
    loss.forward(y_pred, y_true, w)
    analytic = loss.backward().copy()
    numeric = numeric_grad(loss, y_pred.copy(), y_true, w)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_scaling_convention_known_values():
    y = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[0.0, 0.0], [3.0, 3.0]])
    # per sample: mean_k r^2 -> (1 + 4)/2 = 2.5 and (0 + 4)/2 = 2; mean over samples 2.25
    assert bp.MeanSquaredError().forward(y, t) == pytest.approx(2.25)
    # weighted by (1, 3): (2.5 + 3 * 2) / 4
    assert bp.MeanSquaredError().forward(y, t, [1, 3]) == pytest.approx(8.5 / 4)
    # MAE: (1.5 + 1) / 2
    assert bp.MeanAbsoluteError().forward(y, t) == pytest.approx(1.25)
    # Huber(1): r = 1 -> 0.5, r = 2 -> 1.5, r = 0 -> 0, r = 2 -> 1.5; means 1.0 and 0.75
    assert bp.Huber(1.0).forward(y, t) == pytest.approx(0.875)


def test_cross_entropy_known_value_and_equivalence_of_label_forms():
    z = np.array([[2.0, 1.0, 0.1]])
    expected = -np.log(np.exp(2.0) / np.exp([2.0, 1.0, 0.1]).sum())  # 0.4170300162778335
    ce = bp.SoftmaxCrossEntropy()
    assert ce.forward(z, [0]) == pytest.approx(expected)
    assert ce.forward(z, [[1, 0, 0]]) == pytest.approx(expected)
    assert expected == pytest.approx(0.4170300162778335)


def test_cross_entropies_are_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ce = bp.SoftmaxCrossEntropy()
        assert ce.forward(z, [0, 0]) == pytest.approx(0.5 * 2e4)
        assert np.all(np.isfinite(ce.backward()))
        bce = bp.BinaryCrossEntropy()
        value = bce.forward(z[:, :1], [1, 1])
        assert value == pytest.approx(0.5 * 1e4)
        assert np.all(np.isfinite(bce.backward()))


def test_float32_in_float32_out():
    z = np.ones((4, 3), dtype=np.float32)
    for loss, t in [
        (bp.MeanSquaredError(), np.zeros((4, 3))),
        (bp.SoftmaxCrossEntropy(), [0, 1, 2, 0]),
        (bp.BinaryCrossEntropy(), np.zeros((4, 3))),
        (bp.Huber(), np.zeros((4, 3))),
        (bp.Poisson(), np.zeros((4, 3))),
    ]:
        loss.forward(z, t)
        assert loss.backward().dtype == np.float32


@pytest.mark.parametrize(
    "loss, y_pred, y_true, match",
    [
        (bp.SoftmaxCrossEntropy(), np.zeros((2, 3)), [0, 3], "label 3 out of range for 3"),
        (bp.SoftmaxCrossEntropy(), np.zeros((2, 3)), [0.5, 1], "integer"),
        # float labels are range-checked before the cast to int (1e20 wrapped to -2**63)
        (bp.SoftmaxCrossEntropy(), np.zeros((2, 3)), [0.0, 3.0], "label 3 out of range for 3"),
        (bp.SoftmaxCrossEntropy(), np.zeros((2, 3)), [0.0, 1e20], r"label 1e\+20 out of range"),
        (bp.SoftmaxCrossEntropy(), np.zeros((2, 3)), [0, 1, 2], "3 labels for 2"),
        (bp.MeanSquaredError(), np.zeros((2, 3)), np.zeros((2, 2)), "shape"),
        (bp.BinaryCrossEntropy(), np.zeros((2, 1)), [0, 2], r"\[0, 1\]"),
        # a NaN target passed the range check (NaN < 0 is False) and gave a NaN loss
        (bp.BinaryCrossEntropy(), np.zeros((2, 1)), [0, np.nan], r"\[0, 1\]"),
        (bp.Poisson(), np.zeros((2, 1)), [1, -1], "counts >= 0"),
    ],
)
def test_bad_targets_get_clear_errors(loss, y_pred, y_true, match):
    with pytest.raises(ValueError, match=match):
        loss.forward(y_pred, y_true)


@pytest.mark.parametrize("w, match", [([1, -1], "non-negative"), ([1], "shape"), ([0, 0], "zero")])
def test_bad_sample_weights(w, match):
    with pytest.raises(ValueError, match=match):
        bp.MeanSquaredError().forward(np.zeros((2, 1)), np.zeros(2), w)


def test_loss_does_not_modify_inputs():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 3))
    t = rng.normal(size=(5, 3))
    z0, t0 = z.copy(), t.copy()
    for loss in (bp.MeanSquaredError(), bp.Huber(), bp.MeanAbsoluteError()):
        loss.forward(z, t)
        loss.backward()
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(t, t0)


def test_r2_metric_of_poisson_is_that_of_the_rates_as_score_reports():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = rng.poisson(np.exp(0.5 * X[:, :1])).astype(float)
    model = bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, bp.Poisson(), "sgd", epochs=1, metrics=["r2"], seed=0)
    expected = r2_score(y, np.exp(trainer.predict(X)))  # the outputs are log-rates
    assert trainer.evaluate(X, y)["r2"] == pytest.approx(expected, rel=1e-12)
    assert trainer.score(X, y) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "loss", [bp.SoftmaxCrossEntropy(), bp.BinaryCrossEntropy(), bp.SequenceCrossEntropy()]
)
def test_r2_metric_with_a_classification_loss_is_refused(loss):
    # r2 of logits against labels is meaningless (and crashed on a reshape for softmax CE)
    model = bp.Sequential([bp.Dense(3, 2)], seed=0)
    with pytest.raises(ValueError, match="r2 metric needs a regression loss"):
        bp.Trainer(model, loss, "sgd", metrics=["r2"])


@pytest.mark.parametrize(
    "rows",
    [
        [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]],  # multi-hot: a job for BinaryCrossEntropy
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # an all-zero row
        [[2.0, -1.0, 0.0], [0.0, 1.0, 0.0]],  # sums to 1, but a negative "probability"
        [[np.nan, 0.0, 1.0], [0.0, 1.0, 0.0]],
    ],
)
def test_softmax_cross_entropy_refuses_target_rows_that_are_not_probabilities(rows):
    # l(z + c) = l(z) + c (1 - sum t): unbounded below unless every row sums to 1 (and with a
    # negative entry, below in the direction of that class), so training would only drift
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="row 0 is"):
        bp.SoftmaxCrossEntropy().forward(z, np.array(rows))


def test_softmax_cross_entropy_single_output_zero_labels_column_is_refused():
    # (n, 1) zeros with one output read as probability rows summing to 0: the loss was z itself
    with pytest.raises(ValueError, match="probability rows"):
        bp.SoftmaxCrossEntropy().forward(np.full((3, 1), -0.4), np.zeros((3, 1), int))


def test_softmax_cross_entropy_accepts_rows_summing_to_one_up_to_rounding():
    z = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    t = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # float32 rounding in the sums
    assert np.isfinite(bp.SoftmaxCrossEntropy(label_smoothing=0.1).forward(z, t))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: bp.Huber("1"), "delta must be a finite number > 0, got '1'"),
        (lambda: bp.Huber(True), "delta must be a finite number > 0, got True"),
        (lambda: bp.SoftmaxCrossEntropy("0.1"), r"label_smoothing must be .* in \[0, 1\)"),
    ],
)
def test_loss_parameters_of_the_wrong_type_get_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_loss_class_or_a_list_instead_of_a_loss_gets_a_clear_error():
    with pytest.raises(
        TypeError, match=r"got the class SoftmaxCrossEntropy; use SoftmaxCrossEntropy\(\)"
    ):
        bp.Trainer(bp.Sequential([bp.Dense(3, 2)]), bp.SoftmaxCrossEntropy, "sgd")
    with pytest.raises(ValueError, match=r"unknown loss \['mse'\]; valid names"):
        bp.losses.get(["mse"])  # was: TypeError: unhashable type: 'list'


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_of_rows_keeps_float32_precision_for_large_logits(smoothing):
    # t . z - max(z) cancelled: with logits near 1e4 (float32 ulp 1e-3) label smoothing and
    # soft rows were off by ~4e-4; torch's float32 value is within 3e-7
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(64, 10)) + 1e4).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    z64 = z.astype(np.float64)
    t = (1 - smoothing) * np.eye(10)[labels] + smoothing / 10
    log_softmax = z64 - z64.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    expected = -(t * log_softmax).sum(1).mean()
    soft = np.full((64, 10), 0.05, np.float32)
    soft[np.arange(64), labels] = 0.55
    expected_soft = -(soft * log_softmax).sum(1).mean()
    ce = bp.SoftmaxCrossEntropy(label_smoothing=smoothing)
    assert ce.forward(z, labels) == pytest.approx(expected, abs=2e-6)
    assert bp.SoftmaxCrossEntropy().forward(z, soft) == pytest.approx(expected_soft, abs=2e-6)


@pytest.mark.parametrize("scale", [1e39, 1e-40])
def test_sequence_cross_entropy_weights_beyond_float32_range_scale_out(scale):
    # only w_i / sum(w) matters, as for the other losses; weights cast to float32 before the
    # division overflowed to inf (a NaN loss) or went subnormal (a wrong loss)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 4, 5)).astype(np.float32)
    y = rng.integers(0, 5, (3, 4))
    y[0, 2:] = -1
    loss = bp.SequenceCrossEntropy()
    expected = loss.forward(z, y, np.array([1.0, 2.0, 3.0]))
    grad = loss.backward().copy()
    assert loss.forward(z, y, scale * np.array([1.0, 2.0, 3.0])) == pytest.approx(
        expected, rel=1e-9
    )
    np.testing.assert_allclose(loss.backward(), grad, rtol=1e-5, atol=1e-9)


def test_softmax_cross_entropy_accepts_rows_rounded_to_a_few_decimals():
    # [0.33] * 3 sums to 0.99; ten classes rounded to 2 decimals can be off by 0.05 at most
    z = np.zeros((2, 10))
    t = np.zeros((2, 10))
    t[0, :3] = 0.33
    t[1] = np.round(np.full(10, 0.096), 2)  # 0.1 each: sums to 1.0
    t[1, 0] = 0.07
    value = bp.SoftmaxCrossEntropy().forward(z, t)  # each row's sum times log(10)
    assert value == pytest.approx((0.99 + t[1].sum()) / 2 * np.log(10))
