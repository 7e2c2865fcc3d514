"""NeuralNetClassifier / NeuralNetRegressor: scikit-learn estimators over any layer stack."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import backprop as bp


class Flat(bp.Layer):
    """``(n, *s) -> (n, prod(s))`` (test-local; the conv issue brings a real Flatten)."""

    def build(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, training=False):
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        return grad_out.reshape(len(grad_out), *self.in_shape)


def _hidden():
    return [bp.Dense(16), bp.Tanh()]


def _residual_stack():
    return [bp.Dense(12), bp.Residual([bp.Dense(12), bp.Tanh()])]


ESTIMATORS = [
    bp.NeuralNetClassifier([bp.Dense(20), bp.ReLU()], epochs=40, lr=0.01, random_state=0),
    bp.NeuralNetRegressor([bp.Dense(20), bp.ReLU()], epochs=100, lr=0.01, random_state=0),
    # a function returning the stack, a residual block, and full-batch L-BFGS
    bp.NeuralNetClassifier(
        _residual_stack,  # a function (picklable, as clone and joblib need) returning the stack
        optimizer="lbfgs",
        mode="batch",
        epochs=30,
        random_state=0,
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _images(n=90, seed=0):
    """Tiny 4x4 one-channel "images": the class is the quadrant holding the bright blob."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(scale=0.3, size=(n, 4, 4, 1))
    for i, c in enumerate(y):
        r, k = divmod(int(c), 2)
        X[i, 2 * r : 2 * r + 2, 2 * k : 2 * k + 2, 0] += 2.0
    return X, y


def test_classifier_takes_nd_input_in_model_selection():
    X, y = _images()
    est = bp.NeuralNetClassifier(
        lambda: [bp.Dense(4), bp.ReLU(), Flat(), bp.Dense(16), bp.ReLU()],
        epochs=30,
        lr=0.01,
        random_state=0,
    )
    est.fit(X, y)
    assert est.model_.in_shape == (4, 4, 1) and est.n_features_in_ == 4
    assert est.predict_proba(X).shape == (90, 3)
    np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1)
    assert est.score(X, y) > 0.9
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.mean() > 0.8
    grid = GridSearchCV(est, {"lr": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert grid.best_params_ == {"lr": 1e-2}


def test_the_given_layers_are_never_modified():
    X, y = _images()
    stack = [bp.Dense(5), bp.ReLU(), Flat()]
    est = bp.NeuralNetClassifier(stack, epochs=2, random_state=0).fit(X, y)
    assert not stack[0].built and stack[0].params == {}
    assert est.model_.layers[0] is not stack[0] and est.model_.layers[0].built
    assert isinstance(est.model_.layers[-1], bp.Dense) and est.model_.out_shape == (3,)


def test_same_random_state_same_model_and_warm_start_continues():
    X, y = _images()
    a = bp.NeuralNetClassifier([Flat(), *_hidden()], epochs=3, random_state=4).fit(X, y)
    b = bp.NeuralNetClassifier([Flat(), *_hidden()], epochs=3, random_state=4).fit(X, y)
    assert np.array_equal(a.model_.flat_parameters, b.model_.flat_parameters)
    warm = bp.NeuralNetClassifier([Flat(), *_hidden()], epochs=3, random_state=4, warm_start=True)
    warm.fit(X, y)
    first = warm.model_
    before = first.flat_parameters.copy()
    warm.fit(X, y)
    assert warm.model_ is first and warm.n_iter_ == 6 and len(warm.loss_curve_) == 6
    assert not np.array_equal(before, first.flat_parameters)


@pytest.mark.parametrize(
    "change", [dict(layers=[bp.Dense(7), bp.Tanh()]), dict(output_layer=False)]
)
def test_warm_start_refuses_a_changed_layer_list(change):
    """set_params(layers=...) between warm_start fits kept training the network built first,
    while get_params (and a file saved then) named the new layers."""
    X, y = _images()
    X = X.reshape(len(X), -1)
    warm = bp.NeuralNetClassifier([bp.Dense(5), bp.ReLU()], epochs=1, random_state=0)
    warm.set_params(warm_start=True).fit(X, y)
    before = warm.model_.flat_parameters.copy()
    warm.set_params(**change)
    with pytest.raises(ValueError, match="do not match the fitted network"):
        warm.fit(X, y)
    np.testing.assert_array_equal(warm.model_.flat_parameters, before)
    warm.set_params(layers=[bp.Dense(5), bp.ReLU()], output_layer=True)
    warm.model_.layers[0].trainable = False  # freezing a fitted layer is no change of stack
    warm.fit(X, y)
    assert warm.n_iter_ == 2


def test_warm_start_history_keeps_one_entry_per_epoch_in_every_key():
    """A warm fit appended each key's new values to the old lists: with validation_split added
    in the second fit, history_["val_loss"][0] belonged to epoch 3 of history_["loss"], and
    "epoch" restarted at 1. Epochs without a value now hold NaN and the epochs count on."""
    X, y = _images()
    X = X.reshape(len(X), -1)
    warm = bp.NeuralNetClassifier([bp.Dense(5), bp.ReLU()], epochs=2, random_state=0)
    warm.set_params(warm_start=True).fit(X, y)
    warm.set_params(validation_split=0.2).fit(X, y)
    warm.set_params(validation_split=None, epochs=1).fit(X, y)
    assert {len(values) for values in warm.history_.values()} == {5}
    assert warm.history_["epoch"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    val = np.array(warm.history_["val_loss"])
    assert np.isnan(val[[0, 1, 4]]).all() and np.isfinite(val[2:4]).all()


def test_regressor_with_residual_blocks_in_a_pipeline():
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(200, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    est = bp.NeuralNetRegressor(
        [bp.Dense(32), bp.Residual([bp.Dense(32), bp.Tanh(), bp.Dense(32)]), bp.Tanh()],
        epochs=60,
        lr=0.01,
        validation_split=0.1,
        random_state=0,
    )
    pipe = make_pipeline(StandardScaler(), est).fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert len(est.history_["val_loss"]) == 60 and pipe.predict(X).shape == (200,)


def test_poisson_regressor_predicts_rates():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, size=(300, 2))
    y = rng.poisson(np.exp(1.0 + X[:, 0]))
    est = bp.NeuralNetRegressor([], loss="poisson", epochs=60, lr=0.05, random_state=0).fit(X, y)
    p = est.predict(X)
    assert np.all(p > 0)
    W, b = est.model_.parameters()["0.W"], est.model_.parameters()["0.b"]
    assert b[0] == pytest.approx(1.0, abs=0.25) and W[0, 0] == pytest.approx(1.0, abs=0.3)
    with pytest.raises(ValueError, match="loss must be one of"):
        bp.NeuralNetRegressor(loss="hinge").fit(X, y)


def test_poisson_predictions_follow_the_fitted_loss_not_a_later_set_params(tmp_path):
    """predict read the loss parameter at predict time: set_params(loss="mse") after a Poisson
    fit turned rates into log-rates without a refit (and a file saved then loaded so)."""
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, size=(50, 2))
    y = rng.poisson(np.exp(1.0 + X[:, 0]))
    est = bp.NeuralNetRegressor([], loss="poisson", epochs=2, random_state=0).fit(X, y)
    rates = est.predict(X)
    est.set_params(loss="mse")
    np.testing.assert_array_equal(est.predict(X), rates)
    bp.save(est, tmp_path / "est.bp")
    np.testing.assert_array_equal(bp.load(tmp_path / "est.bp").predict(X), rates)
    est.set_params(warm_start=True).fit(X, y)  # the network goes on as a regression of y
    np.testing.assert_array_equal(est.predict(X), est.model_.predict(X).ravel())


class Lookup(bp.Layer):
    """Integer ids -> rows of a learned table (test-local; the rnn issue brings Embedding)."""

    integer_input = True

    def build(self, in_shape):
        return (*in_shape, 3)

    def param_specs(self):
        return {"T": ((6, 3), "weight")}

    def reset_parameters(self, rng):
        self.params["T"][...] = rng.normal(size=(6, 3))

    def forward(self, x, training=False):
        if training:
            self._x = x
        return self.params["T"][x]

    def backward(self, grad_out):
        self.grads["T"][...] = 0
        np.add.at(self.grads["T"], self._x, grad_out)
        return np.zeros(self._x.shape)


def test_integer_token_input_reaches_the_first_layer_uncast():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 6, size=(120, 4))
    y = (X == 5).any(axis=1).astype(int)
    est = bp.NeuralNetClassifier(
        [Lookup(), Flat(), bp.Dense(8), bp.Tanh()], epochs=40, lr=0.03, random_state=0
    ).fit(X, y)
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError, match="integer input"):
        est.predict(X.astype(float))


def test_fitted_estimators_save_and_load_with_bp_save(tmp_path):
    X, y = _images()
    X = X.reshape(len(X), 16)
    labels = np.array(["left-top", "right-top", "left-bottom"])[y]
    clf = bp.NeuralNetClassifier(
        [bp.Dense(8), bp.ReLU(), bp.Residual([bp.Dense(8), bp.Tanh()])], epochs=3, random_state=0
    ).fit(X, labels)
    bp.save(clf, tmp_path / "clf.npz")
    back = bp.load(tmp_path / "clf.npz")
    assert type(back) is bp.NeuralNetClassifier and list(back.classes_) == list(clf.classes_)
    assert np.array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.history_ == clf.history_ and back.get_params()["epochs"] == 3
    assert isinstance(back.layers[2], bp.Residual) and not back.layers[2].built

    rng = np.random.default_rng(0)
    Xr, yr = rng.normal(size=(40, 3)), rng.normal(size=40)
    reg = bp.NeuralNetRegressor(_hidden, epochs=2, random_state=0).fit(Xr, yr)
    with pytest.warns(UserWarning, match="layers"):  # a function cannot be written as JSON
        bp.save(reg, tmp_path / "reg.npz")
    back = bp.load(tmp_path / "reg.npz")
    assert back.layers is None and np.array_equal(back.predict(Xr), reg.predict(Xr))
    assert back.predict(Xr).shape == (40,)


def test_zero_sample_weights_equal_removing_the_samples_and_dtype_follows_X():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    w = (rng.uniform(size=30) > 0.3).astype(float)
    kw = {"mode": "batch", "epochs": 5, "lr": 0.05, "shuffle": False, "random_state": 0}
    weighted = bp.NeuralNetClassifier(_hidden, **kw).fit(X, y, sample_weight=w)
    removed = bp.NeuralNetClassifier(_hidden, **kw).fit(X[w > 0], y[w > 0])
    assert weighted.model_.dtype == np.float64  # float64 X, as scikit-learn gives
    np.testing.assert_allclose(weighted.predict_proba(X), removed.predict_proba(X), rtol=1e-10)
    assert not np.allclose(
        bp.NeuralNetClassifier(_hidden, **kw).fit(X, y).predict_proba(X), removed.predict_proba(X)
    )
    f32 = bp.NeuralNetClassifier(_hidden, **kw).fit(X.astype(np.float32), y)
    assert f32.model_.dtype == np.float32
    with pytest.raises(ValueError, match="sample_weight.shape"):
        removed.fit(X, y, sample_weight=w[:5])
