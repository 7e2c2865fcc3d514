"""MLPClassifier / MLPRegressor inside scikit-learn's tooling, with bad input, and as thin
adapters (one Trainer.fit per fit, no loop of their own)."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import backprop as bp
from backprop.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200], (y[:200] - 150) / 75


def small_clf(**kw):
    params = dict(hidden_layer_sizes=(10,), learning_rate_init=0.01, max_iter=60, random_state=0)
    return bp.MLPClassifier(**{**params, **kw})


def test_fit_is_one_trainer_fit(iris, monkeypatch):
    """The estimator owns no loop: every epoch runs inside Trainer.fit."""
    calls = []
    original = Trainer.fit

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("epochs"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    clf = small_clf(solver="sgd").fit(*iris)
    assert calls == [60]
    assert len(clf._trainer.history["loss"]) == clf.n_iter_
    clf.partial_fit(*iris)
    assert calls == [60, 1]


@pytest.mark.slow
def test_pipeline_grid_search_and_cross_val(iris, diabetes):
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), small_clf()).fit(X, y)
    assert pipe.score(X, y) > 0.9
    grid = GridSearchCV(small_clf(), {"alpha": [1e-4, 1e-1]}, cv=3, n_jobs=2).fit(*iris)
    assert grid.best_params_["alpha"] in (1e-4, 1e-1)
    assert grid.best_score_ > 0.8
    scores = cross_val_score(
        bp.MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0), *diabetes, cv=3
    )
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_clone_pickle_joblib(iris, tmp_path):
    clf = small_clf(dropout=0.1).fit(*iris)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    X = iris[0]
    for restored in (
        pickle.loads(pickle.dumps(clf)),
        joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0]),
    ):
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
        # coefs_ are still the model's weights after the round trip
        W = restored.coefs_[0]
        before = float(W[0, 0])
        W[0, 0] += 1.0
        assert restored.model_.layers[0].params["W"][0, 0] == before + 1.0
        restored.partial_fit(*iris)  # and training goes on
        assert restored.n_iter_ == 1


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_float32_in_float32_out(kind, iris):
    X, y = iris
    est = getattr(bp, kind)(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    est.fit(X.astype(np.float32), y)
    assert est.model_.dtype == np.float32
    assert all(c.dtype == np.float32 for c in est.coefs_ + est.intercepts_)
    out = (
        est.predict_proba(X.astype(np.float32))
        if kind == "MLPClassifier"
        else est.predict(X.astype(np.float32))
    )
    assert out.dtype == np.float32
    est64 = getattr(bp, kind)(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    assert est64.coefs_[0].dtype == np.float64


def test_float32_training_on_request_for_float64_input(iris):
    X, y = iris
    clf = small_clf(dtype="float32").fit(X, y)
    assert X.dtype == np.float64 and clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32
    assert clf.score(X, y) > 0.9


def test_callers_arrays_are_never_modified(iris):
    X, y = iris
    w = np.linspace(0.5, 1.5, len(y))
    X0, y0, w0 = X.copy(), y.copy(), w.copy()
    for arr in (X, y, w):
        arr.setflags(write=False)  # any write would raise
    for solver in ("sgd", "adam", "lbfgs"):
        clf = small_clf(solver=solver, early_stopping=solver != "lbfgs").fit(X, y, sample_weight=w)
        clf.predict_proba(X)
    reg = bp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, X[:, 0])
    reg.predict(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(w, w0)


def test_bad_input_gets_clear_errors(iris):
    X, y = iris
    clf = small_clf()
    with pytest.raises(NotFittedError):
        clf.predict(X)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, y)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clf.fit(bad, y)
    with pytest.raises(ValueError, match="2D array"):
        clf.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="0 sample"):
        clf.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:-1])
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, y, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Unknown label type"):
        small_clf().fit(X, X[:, 0])


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(alpha=-1.0), "'alpha' parameter of MLPClassifier must be a float in the range"),
        (dict(solver="newton"), "'solver' parameter"),
        (dict(activation="swish"), "'activation' parameter"),
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
        (dict(learning_rate="sometimes"), "'learning_rate' parameter"),
        (dict(max_iter=0), "'max_iter' parameter"),
        (dict(momentum=1.5), "'momentum' parameter"),
        (dict(batch_size=0), "'batch_size' parameter"),
        (dict(dropout=[0.1, 0.2]), "dropout has 2 entries but there are 1 hidden layers"),
        (dict(normalization="group"), "normalization must be"),
    ],
)
def test_invalid_parameters_are_named(iris, params, match):
    with pytest.raises(ValueError, match=match):
        small_clf(**params).fit(*iris)


def test_partial_fit_rules(iris):
    X, y = iris
    with pytest.raises(ValueError, match="classes must be passed"):
        small_clf(solver="sgd").partial_fit(X, y)
    with pytest.raises(ValueError, match="does not support early_stopping"):
        small_clf(solver="sgd", early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        small_clf(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    clf = small_clf(solver="sgd").partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.predict_proba(X).shape == (150, 3)


def test_convergence_warning_like_sklearn(iris):
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        bp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(*iris)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        bp.MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2, random_state=0).fit(
            *iris
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        bp.MLPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=500, random_state=0).fit(
            *iris
        )
