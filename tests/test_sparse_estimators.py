"""The estimators on scipy.sparse input: the same fit as the same data made dense, and parity
with scikit-learn's MLP fitted on the same sparse matrix (the oracle runs side by side)."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sknn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import backprop as bp


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    X[X < 0.3] = 0.0  # about 60% zeros: a sparse matrix with some structure
    return sp.csr_array(X), y[:300]


def fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam", "early_stopping": True, "n_iter_no_change": 2},
        {"solver": "sgd", "batch_size": 32},
        {"solver": "lbfgs"},
        {"solver": "adam", "normalization": "batch"},
    ],
)
def test_classifier_on_sparse_equals_classifier_on_dense(digits, params):
    X, y = digits
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=X.shape[0])
    args = dict(hidden_layer_sizes=(12,), max_iter=8, random_state=0, **params)
    dense = fit_quietly(bp.MLPClassifier(**args), X.toarray(), y, sample_weight=w)
    sparse = fit_quietly(bp.MLPClassifier(**args), X, y, sample_weight=w)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
    for a, b in zip(
        sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        sparse.predict_proba(X), dense.predict_proba(X.toarray()), atol=1e-12
    )
    np.testing.assert_array_equal(sparse.predict(X.tocsc()), dense.predict(X.toarray()))
    if params.get("early_stopping"):
        np.testing.assert_allclose(sparse.validation_scores_, dense.validation_scores_)


def test_partial_fit_and_regressor_on_sparse(digits):
    X, y = digits
    target = y / 9.0
    dense, sparse = (bp.MLPRegressor(hidden_layer_sizes=(8,), random_state=1) for _ in range(2))
    for start in range(0, 300, 100):
        rows = slice(start, start + 100)
        dense.partial_fit(X[rows].toarray(), target[rows])
        sparse.partial_fit(X[rows], target[rows])
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()), rtol=1e-9)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_parity_with_sklearn_on_the_same_sparse_matrix(digits, solver):
    X, y = digits
    args = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=6, random_state=0)
    ours = fit_quietly(bp.MLPClassifier(**args), X, y)
    theirs = fit_quietly(sknn.MLPClassifier(**args), X, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8)


def test_float32_sparse_input_trains_and_predicts_in_float32(digits):
    X, y = digits
    X32 = X.astype(np.float32)
    ours = fit_quietly(
        bp.MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0), X32, y
    )
    assert ours.model_.dtype == np.float32 and ours.coefs_[0].dtype == np.float32
    assert ours.predict_proba(X32).dtype == np.float32
    theirs = fit_quietly(
        sknn.MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0), X32, y
    )
    np.testing.assert_allclose(ours.predict_proba(X32), theirs.predict_proba(X32), atol=1e-4)


def test_neural_net_estimators_on_sparse_equal_dense(digits):
    X, y = digits
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=X.shape[0])
    for est, target in ((bp.NeuralNetClassifier, y), (bp.NeuralNetRegressor, y / 9.0)):
        args = dict(epochs=3, batch_size=32, random_state=0)
        dense = est(**args).fit(X.toarray(), target, sample_weight=w)
        sparse = est(**args).fit(X.tocsc(), target, sample_weight=w)
        np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-10)
        np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()), rtol=1e-9)
    with pytest.raises(TypeError, match="first layer, BatchNorm, cannot take sparse input"):
        bp.NeuralNetClassifier(layers=[bp.BatchNorm(), bp.Dense(8)], epochs=1).fit(X, y)


def test_mc_dropout_predictions_take_the_sparse_input_the_estimator_was_fitted_on(digits):
    # they used to refuse it (sklearn's "dense data is required"): X.toarray() was the only way
    X, y = digits
    Xs, dense = X[:120], X[:120].toarray()
    clf = fit_quietly(
        bp.MLPClassifier(hidden_layer_sizes=(8,), dropout=0.3, max_iter=2, random_state=0),
        Xs,
        y[:120],
    )
    reg = bp.MLPRegressor(hidden_layer_sizes=(8,), dropout=0.3, max_iter=2, random_state=0)
    fit_quietly(reg, Xs, y[:120].astype(float))
    mean, std = clf.predict_proba_mc(Xs, n_samples=4)
    dense_mean, dense_std = clf.predict_proba_mc(dense, n_samples=4)
    np.testing.assert_allclose(mean, dense_mean, atol=1e-12)
    np.testing.assert_allclose(std, dense_std, atol=1e-12)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    np.testing.assert_allclose(reg.predict_mc(Xs, 4)[0], reg.predict_mc(dense, 4)[0], atol=1e-12)
