"""The behaviours scikit-learn's own test_mlp.py relies on, checked fast and side by side with
scikit-learn: hand-set weights, divergence under early stopping, and the mirrored internals."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sknn
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer

import backprop as bp


def hand_set(est):
    """Set the fitted attributes by hand, as scikit-learn's test_fit does, on an unfitted MLP."""
    est.coefs_ = [0] * 2
    est.intercepts_ = [0] * 2
    est.coefs_[0] = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]])
    est.coefs_[1] = np.array([[0.1], [0.2]])
    est.intercepts_[0] = np.array([0.1, 0.1])
    est.intercepts_[1] = np.array([1.0])
    est.n_outputs_, est.n_layers_, est.out_activation_ = 1, 3, "logistic"
    est.n_iter_, est.t_, est.best_loss_, est.loss_curve_ = 0, 0, np.inf, []
    est._no_improvement_count = 0
    est._coef_velocity = [np.zeros_like(c) for c in est.coefs_]
    est._intercept_velocity = [np.zeros_like(b) for b in est.intercepts_]
    return est


def test_partial_fit_continues_from_hand_set_weights_as_sklearn_does():
    X, y = np.array([[0.6, 0.8, 0.7], [0.1, 0.4, 0.9]]), np.array([0, 1])
    args = dict(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic",
                random_state=1, hidden_layer_sizes=2, momentum=0)  # fmt: skip
    ours, theirs = hand_set(bp.MLPClassifier(**args)), hand_set(sknn.MLPClassifier(**args))
    for est in (ours, theirs):
        est.partial_fit(X, y, classes=[0, 1])
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(ours.coefs_[1], [[0.1], [0.2]])  # it did take a step
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-12)


def test_assigning_an_item_of_coefs_writes_into_the_fitted_model():
    X, y = load_iris(return_X_y=True)
    clf = bp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    clf.coefs_[1] = np.zeros((5, 3))
    clf.intercepts_[1] = np.array([0.0, 5.0, 0.0])
    assert np.all(clf.model_.layers[-1].params["W"] == 0)
    assert np.all(clf.predict(X) == clf.classes_[1])
    with pytest.raises(ValueError, match=r"expected shape \(5, 3\)"):
        clf.coefs_[1] = np.zeros((3, 5))


def test_weights_of_the_wrong_shape_are_refused_not_broadcast_or_reshaped():
    """`clf.coefs_ = [...]` on a fitted estimator broadcast a (1, 5) array into every row of a
    (4, 5) W, and hand-set weights before partial_fit were reshaped whenever their size fitted,
    so a transposed (5, 4) W trained scrambled; scikit-learn fails on both (a matmul error)."""
    X, y = load_iris(return_X_y=True)
    clf = bp.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before = [c.copy() for c in clf.coefs_]
    with pytest.raises(ValueError, match=r"coefs_\[0\]: expected shape \(4, 5\), got \(1, 5\)"):
        clf.coefs_ = [np.ones((1, 5)), np.ones((5, 3))]
    with pytest.raises(ValueError, match="intercepts_ has 1 arrays but the network has 2"):
        clf.intercepts_ = [np.zeros(5)]
    for a, b in zip(before, clf.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    est = hand_set(bp.MLPClassifier(hidden_layer_sizes=2, random_state=1, solver="sgd"))
    est.coefs_[0] = est.coefs_[0].T.copy()  # (2, 3) for a (3, 2) W
    with pytest.raises(ValueError, match=r"coefs_\[0\]: expected shape \(3, 2\), got \(2, 3\)"):
        est.partial_fit(np.ones((2, 3)), np.array([0, 1]), classes=[0, 1])


def diverging(early_stopping):
    return bp.MLPRegressor(
        hidden_layer_sizes=20, activation="identity", solver="sgd", learning_rate_init=1.0,
        max_iter=20, early_stopping=early_stopping, n_iter_no_change=10, random_state=0,
    )  # fmt: skip


def test_divergence_with_early_stopping_warns_records_nan_and_keeps_the_best_weights():
    X, y = load_iris(return_X_y=True)
    reg = diverging(early_stopping=True)
    with pytest.warns(ConvergenceWarning, match="NaN is recorded"):
        reg.fit(X, y)
    assert isinstance(reg.validation_scores_[-1], float) and np.isnan(reg.validation_scores_[-1])
    assert np.isnan(reg.loss_curve_[-1]) and len(reg.loss_curve_) == reg.n_iter_
    assert np.all(np.isfinite(reg.model_.flat_parameters))
    np.testing.assert_array_equal(reg.model_.flat_parameters, reg._best_params)
    assert np.all(np.isfinite(reg.predict(X)))
    with pytest.raises(ValueError, match="non-finite"):
        diverging(early_stopping=False).fit(X, y)


def test_mirrored_internals_match_sklearn():
    X, y = load_iris(return_X_y=True)
    args = dict(solver="sgd", learning_rate="invscaling", power_t=0.25, max_iter=3,
                hidden_layer_sizes=4, warm_start=True, random_state=0)  # fmt: skip
    ours, theirs = bp.MLPClassifier(**args), sknn.MLPClassifier(**args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (ours, theirs, ours, theirs):
            est.fit(X, y)
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    # The loss and gradient at the same packed parameters, on the same data (scikit-learn's
    # method needs an L-BFGS fit first).
    args = dict(solver="lbfgs", max_iter=2, hidden_layer_sizes=4, alpha=0.01, random_state=0)
    ours, theirs = bp.MLPClassifier(**args), sknn.MLPClassifier(**args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (ours, theirs):
            est.fit(X, y)
    Y = LabelBinarizer().fit_transform(y).astype(np.float64)
    theta = np.concatenate([a.ravel() for a in theirs.coefs_ + theirs.intercepts_])
    bufs = [[], [], [], []]
    value, grad = ours._loss_grad_lbfgs(theta, X, Y, None, *bufs)
    n = len(X)
    acts = [X] + [np.empty((n, u)) for u in (4, 3)]
    deltas = [np.empty((n, u)) for u in (4, 3)]
    cg = [np.empty((4, 4)), np.empty((4, 3))]
    ig = [np.empty(4), np.empty(3)]
    ref_value, ref_grad = theirs._loss_grad_lbfgs(theta, X, Y, None, acts, deltas, cg, ig)
    assert value == pytest.approx(ref_value, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-12)
