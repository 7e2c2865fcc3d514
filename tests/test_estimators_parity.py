"""Parity with scikit-learn itself: same arguments, same random_state, float64 data ->
the same initial weights, batches, updates, loss_curve_, early-stopping split and scores.

The oracle is scikit-learn's MLP run side by side in the same test; nothing is hard-coded.
"""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sknn
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_linnerud,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import backprop as bp


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """SciPy's L-BFGS-B calls BLAS on tiny vectors; on a busy 2-core box a BLAS thread pool
    makes each call ~6x slower (measured: 0.14 s -> 0.02 s per fit). One thread is enough."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


RTOL = 1e-6


def _scaled(X):
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)


def _data(name):
    if name == "iris":
        X, y = load_iris(return_X_y=True)
        return _scaled(X), y
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X[:240] / 16.0, y[:240]
    if name == "binary":
        X, y = load_breast_cancer(return_X_y=True)
        return _scaled(X[:200]), y[:200]
    if name == "multilabel":
        X, Y = make_multilabel_classification(
            n_samples=120, n_features=8, n_classes=3, random_state=0
        )
        return _scaled(X.astype(float)), Y
    if name == "regression":
        X, y = load_diabetes(return_X_y=True)
        return _scaled(X[:220]), (y[:220] - y.mean()) / y.std()
    if name == "multioutput":
        X, Y = load_linnerud(return_X_y=True)
        return _scaled(X), _scaled(Y)
    if name == "counts":
        X, y = load_diabetes(return_X_y=True)
        return _scaled(X[:200]), np.round(y[:200] / 50.0)
    raise KeyError(name)


def _fit_both(kind, X, y, fit_kwargs=None, **params):
    fit_kwargs = fit_kwargs or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = getattr(sknn, kind)(**params).fit(X, y, **fit_kwargs)
        ours = getattr(bp, kind)(**params).fit(X, y, **fit_kwargs)
    return theirs, ours


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))


def _assert_same(theirs, ours, X):
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_
    assert len(ours.loss_curve_) == len(theirs.loss_curve_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=RTOL)
    for a, b in zip(
        theirs.coefs_ + theirs.intercepts_, ours.coefs_ + ours.intercepts_, strict=True
    ):
        assert b.shape == a.shape
        assert _rel(a, b) < RTOL
    if hasattr(theirs, "predict_proba"):
        np.testing.assert_allclose(
            ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL, atol=1e-12
        )
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=RTOL, atol=1e-10)
    if theirs.validation_scores_ is None:
        assert ours.validation_scores_ is None
        np.testing.assert_allclose(ours.best_loss_, theirs.best_loss_, rtol=RTOL)
    else:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=RTOL)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=RTOL)


SGD_SETTINGS = [
    dict(momentum=0.0),
    dict(momentum=0.9, nesterovs_momentum=False),
    dict(momentum=0.9, nesterovs_momentum=True),
    dict(learning_rate="invscaling", power_t=0.25, learning_rate_init=0.05),
    # tol and n_iter_no_change chosen so the rate is divided by 5 within the 10 epochs
    dict(learning_rate="adaptive", tol=0.05, n_iter_no_change=1),
    # the same without 'adaptive': training stops early instead, at the same epoch
    dict(learning_rate="constant", tol=0.05, n_iter_no_change=1),
]


@pytest.mark.parametrize(
    "setting", SGD_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())
)
@pytest.mark.parametrize("name", ["iris", "regression"])
def test_sgd_parity(name, setting):
    X, y = _data(name)
    kind = "MLPClassifier" if name == "iris" else "MLPRegressor"
    params = dict(
        hidden_layer_sizes=(7, 5), solver="sgd", batch_size=32, max_iter=10, random_state=3
    )
    params["learning_rate_init"] = 0.01 if kind == "MLPRegressor" else 0.1
    params.update(setting)
    theirs, ours = _fit_both(kind, X, y, **params)
    _assert_same(theirs, ours, X)
    # the learning rate in force at the end (invscaling decay, adaptive divisions)
    assert ours._trainer.optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)


@pytest.mark.parametrize(
    "name,params",
    [
        ("iris", dict(activation="tanh")),
        ("digits", dict(activation="relu", alpha=0.01)),
        ("binary", dict(activation="logistic")),
        ("multilabel", dict(activation="relu")),
        ("regression", dict(activation="tanh", alpha=0.1)),
        ("multioutput", dict(activation="identity", batch_size=7)),
        ("counts", dict(activation="relu", loss="poisson", learning_rate_init=0.003)),
    ],
)
def test_adam_parity(name, params):
    X, y = _data(name)
    kind = "MLPRegressor" if name in ("regression", "multioutput", "counts") else "MLPClassifier"
    base = dict(hidden_layer_sizes=(12,), solver="adam", batch_size=50, max_iter=10, random_state=7)
    base.update(params)
    theirs, ours = _fit_both(kind, X, y, **base)
    _assert_same(theirs, ours, X)


@pytest.mark.parametrize(
    "name,solver",
    [
        ("iris", "sgd"),
        ("digits", "adam"),
        ("binary", "adam"),
        ("multilabel", "sgd"),
        ("regression", "adam"),
    ],
)
def test_early_stopping_parity(name, solver):
    """Same split, same validation scores, same stopping epoch, same restored best weights."""
    X, y = _data(name)
    kind = "MLPRegressor" if name == "regression" else "MLPClassifier"
    theirs, ours = _fit_both(
        kind,
        X,
        y,
        hidden_layer_sizes=(10,),
        solver=solver,
        batch_size=40,
        max_iter=10,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=2,
        tol=1e-3,
        learning_rate_init=0.01,
        random_state=11,
    )
    assert len(ours.validation_scores_) == len(theirs.validation_scores_) >= 3
    _assert_same(theirs, ours, X)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("name", ["iris", "regression"])
def test_sample_weight_parity(name, early_stopping):
    """Weighted loss, penalty scaled by the batch's weight sum, weighted validation scores."""
    X, y = _data(name)
    weights = np.random.default_rng(0).integers(0, 4, size=len(y)).astype(float)
    kind = "MLPClassifier" if name == "iris" else "MLPRegressor"
    theirs, ours = _fit_both(
        kind,
        X,
        y,
        fit_kwargs={"sample_weight": weights},
        hidden_layer_sizes=(8,),
        solver="sgd",
        batch_size=25,
        max_iter=10,
        learning_rate_init=0.01,
        random_state=2,
        early_stopping=early_stopping,
        n_iter_no_change=2,
    )
    _assert_same(theirs, ours, X)


def test_partial_fit_and_warm_start_parity():
    X, y = _data("iris")
    params = dict(hidden_layer_sizes=(6,), solver="sgd", batch_size=30, random_state=5)
    theirs, ours = sknn.MLPClassifier(**params), bp.MLPClassifier(**params)
    for _ in range(4):
        theirs.partial_fit(X, y, classes=[0, 1, 2])
        ours.partial_fit(X, y, classes=[0, 1, 2])
    _assert_same(theirs, ours, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = sknn.MLPRegressor(warm_start=True, max_iter=3, **params)
        ours = bp.MLPRegressor(warm_start=True, max_iter=3, **params)
        Xr, yr = _data("regression")
        for _ in range(3):
            theirs.fit(Xr, yr)
            ours.fit(Xr, yr)
    _assert_same(theirs, ours, Xr)


@pytest.mark.parametrize(
    "name,extra",
    [
        ("iris", {}),
        ("iris", dict(max_fun=10)),  # stopped by the evaluation budget
        ("iris", dict(tol=1e-2, alpha=1.0, max_iter=200)),  # stopped by the gradient tolerance
        ("regression", {}),
        ("multilabel", {}),
    ],
)
def test_lbfgs_reaches_the_same_loss(name, extra):
    X, y = _data(name)
    kind = "MLPRegressor" if name == "regression" else "MLPClassifier"
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=40, random_state=0)
    theirs, ours = _fit_both(kind, X, y, **{**params, **extra})
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    for a, b in zip(theirs.coefs_, ours.coefs_, strict=True):
        assert _rel(a, b) < 1e-5


def test_initial_weights_are_sklearns():
    """The initial weights themselves, drawn in scikit-learn's order W0, b0, W1, b1, ... with
    Glorot's bound (factor 2 for the logistic activation)."""
    X, y = _data("iris")
    ours = bp.MLPClassifier(hidden_layer_sizes=(4, 3), activation="logistic", random_state=9)
    ours._check_params()
    ours.n_outputs_ = 3
    ours.out_activation_ = "softmax"
    ours._build(4, np.dtype(np.float64), np.random.RandomState(9))
    rs = np.random.RandomState(9)
    for fan_in, fan_out, W, b in zip(
        [4, 4, 3], [4, 3, 3], ours.coefs_, ours.intercepts_, strict=True
    ):
        bound = np.sqrt(2.0 / (fan_in + fan_out))  # factor 2 for the logistic activation
        np.testing.assert_array_equal(W, rs.uniform(-bound, bound, (fan_in, fan_out)))
        np.testing.assert_array_equal(b, rs.uniform(-bound, bound, fan_out))


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=()),  # no hidden layer: a linear model
        dict(hidden_layer_sizes=[5, 4], activation="logistic", momentum=1.0),
        dict(batch_size=500),  # larger than the data: clipped, with a warning
        dict(shuffle=False, batch_size=20),
        dict(solver="adam", n_iter_no_change=np.inf, tol=10.0),
    ],
    ids=["no-hidden", "momentum-1", "big-batch", "no-shuffle", "inf-patience"],
)
@pytest.mark.filterwarnings("ignore:Got `batch_size`:UserWarning")
def test_edge_settings_parity(params):
    X, y = _data("iris")
    base = dict(hidden_layer_sizes=(5,), solver="sgd", max_iter=10, random_state=0)
    theirs, ours = _fit_both("MLPClassifier", X, y, **{**base, **params})
    _assert_same(theirs, ours, X)


def test_random_state_instance_and_verbose_output(capsys):
    """A RandomState instance is used as is (its stream advances), and verbose prints what
    scikit-learn prints."""
    X, y = _data("iris")
    params = dict(hidden_layer_sizes=(4,), solver="sgd", batch_size=50, max_iter=3, verbose=True)
    params.update(early_stopping=True, validation_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = sknn.MLPClassifier(random_state=np.random.RandomState(4), **params).fit(X, y)
        printed_theirs = capsys.readouterr().out
        ours = bp.MLPClassifier(random_state=np.random.RandomState(4), **params).fit(X, y)
        printed_ours = capsys.readouterr().out
    assert printed_ours == printed_theirs and "Validation score" in printed_ours
    _assert_same(theirs, ours, X)


def test_float32_agrees_to_float32_rounding():
    """In float32 both libraries round differently (summation order); the closest honest
    promise is agreement to a few float32 ulps over the 10 epochs."""
    X, y = _data("iris")
    params = dict(
        hidden_layer_sizes=(8,), solver="adam", batch_size=25, max_iter=10, random_state=2
    )
    theirs, ours = _fit_both(
        "MLPClassifier", X.astype(np.float32), y, learning_rate_init=0.01, **params
    )
    assert ours.coefs_[0].dtype == theirs.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    for a, b in zip(theirs.coefs_, ours.coefs_, strict=True):
        assert _rel(a, b) < 1e-4
