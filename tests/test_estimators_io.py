"""bp.save / bp.load for fitted estimators: same predictions and attributes, no pickle."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

import backprop as bp

ROOT = Path(__file__).resolve().parent.parent


def fitted(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def cases():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    Xm, Ym = make_multilabel_classification(n_samples=80, n_classes=3, random_state=0)
    Xr, yr = make_regression(n_samples=80, n_features=5, n_targets=2, random_state=0)
    clf = {"hidden_layer_sizes": (8,), "max_iter": 30, "random_state": 0}
    return {
        "int-labels": (bp.MLPClassifier(**clf), X, y),
        "string-labels": (bp.MLPClassifier(**clf, dropout=0.1, normalization="batch"), X, names),
        "binary": (bp.MLPClassifier(**clf, solver="lbfgs"), X, y == 1),
        "multilabel": (bp.MLPClassifier(**clf, early_stopping=True), Xm, Ym),
        "regressor": (
            bp.MLPRegressor(
                hidden_layer_sizes=(8,),
                max_iter=30,
                random_state=0,
                activation=["gelu"],
            ),
            Xr,
            yr,
        ),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_round_trip_predicts_identically(name, tmp_path):
    est, X, y = cases()[name]
    fitted(est, X, y)
    path = tmp_path / "model.npz"
    bp.save(est, path)
    back = bp.load(path)
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(back.classes_, est.classes_)
    for attr in (
        "n_iter_",
        "loss_curve_",
        "best_loss_",
        "validation_scores_",
        "n_layers_",
        "n_outputs_",
        "out_activation_",
        "n_features_in_",
        "t_",
    ):
        assert getattr(back, attr) == getattr(est, attr), attr
    assert back.get_params() == est.get_params()
    assert back.score(X, y) == est.score(X, y)


def test_loaded_estimator_can_keep_training(tmp_path):
    est, X, y = cases()["int-labels"]
    fitted(est, X, y)
    bp.save(est, tmp_path / "m.npz")
    back = bp.load(tmp_path / "m.npz")
    before = back.coefs_[0].copy()
    back.partial_fit(X, y)
    assert not np.array_equal(back.coefs_[0], before)
    assert np.shares_memory(back.coefs_[0], back.model_.flat_parameters)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_loaded_mlp_continues_a_warm_fit_as_the_saved_one(tmp_path, solver):
    """A warm_start fit starts a new optimizer anyway, so a loaded estimator can continue it
    exactly; but the file dropped the no-improvement count, so the tol stop (or the 'adaptive'
    rate cut) of the next fit came epochs later than in the estimator that was saved."""
    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=(5,), tol=0.05, n_iter_no_change=4, max_iter=6)
    adaptive = (
        dict(learning_rate="adaptive", n_iter_no_change=8, tol=1.0) if solver == "sgd" else {}
    )
    params = {**params, **adaptive}
    est = fitted(bp.MLPClassifier(solver=solver, warm_start=True, random_state=0, **params), X, y)
    assert est._no_improvement_count > 0
    bp.save(est, tmp_path / "est.bp")
    back = bp.load(tmp_path / "est.bp")
    for model in (est, back):
        fitted(model, X, y)
    assert back.n_iter_ == est.n_iter_ and back.loss_curve_ == est.loss_curve_
    np.testing.assert_array_equal(back.model_.flat_parameters, est.model_.flat_parameters)


@pytest.mark.parametrize(
    "kw",
    [
        # 'invscaling' sets lr = learning_rate_init / (t_ + 1) ** power_t after each epoch, and
        # the file keeps t_; but the loaded estimator's new optimizer started its first
        # partial_fit at learning_rate_init again (21x the rate after 3 calls here), so even
        # plain SGD, which has no optimizer state to lose, went elsewhere than the saved one
        dict(hidden_layer_sizes=(5,), learning_rate="invscaling"),
        # the file keeps the update count (_updates), so the pruning curve (and a step-based
        # schedule, given again) goes on where the saved one was; it started over
        dict(hidden_layer_sizes=(8,), sparsity=0.5),
    ],
    ids=["invscaling-rate", "update-count"],
)
def test_a_loaded_mlp_continues_partial_fit_where_the_saved_one_was(tmp_path, kw):
    X, y = load_iris(return_X_y=True)
    est = bp.MLPClassifier(solver="sgd", momentum=0.0, random_state=0, batch_size=16, **kw)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1, 2])
    bp.save(est, tmp_path / "est.bp")
    back = bp.load(tmp_path / "est.bp")
    for _ in range(3):
        for model in (est, back):
            model.partial_fit(X, y)
    assert back._trainer.step_count == est._trainer.step_count == 6 * 10
    assert back.loss_curve_ == est.loss_curve_
    np.testing.assert_array_equal(back.model_.flat_parameters, est.model_.flat_parameters)


def test_object_parameters_are_dropped_with_a_warning(tmp_path):
    X, y = load_iris(return_X_y=True)
    est = fitted(
        bp.MLPClassifier(
            hidden_layer_sizes=(4,), max_iter=5, random_state=0, callbacks=[bp.GradientMonitor()]
        ),
        X,
        y,
    )
    with pytest.warns(UserWarning, match="callbacks hold Python objects"):
        bp.save(est, tmp_path / "m.npz")
    assert bp.load(tmp_path / "m.npz").callbacks is None


def test_unfitted_estimator_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        bp.save(bp.MLPRegressor(), tmp_path / "m.npz")


@pytest.mark.slow
def test_loading_in_a_fresh_process_needs_no_estimator_import(tmp_path):
    est, X, y = cases()["int-labels"]
    fitted(est, X, y)
    bp.save(est, tmp_path / "m.npz")
    code = (
        "import sys, numpy as np, backprop as bp; m = bp.load(sys.argv[1]); "
        "print(type(m).__name__, m.predict(np.load(sys.argv[2]))[:5].tolist())"
    )
    np.save(tmp_path / "x.npy", X)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "m.npz"), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == f"MLPClassifier {est.predict(X)[:5].tolist()}"


def test_a_file_whose_classes_contradict_its_label_type_is_refused(tmp_path):
    est, X, y = cases()["int-labels"]
    fitted(est, X, y)
    path = tmp_path / "m.npz"
    bp.save(est, path)
    header, arrays = bp.io.read_archive(path, lambda h: None)
    header["config"]["fitted"]["y_type_"] = "binary"  # three classes cannot be binary
    bp.io.write_archive(path, {k: header[k] for k in ("kind", "config", "metadata")}, arrays)
    with pytest.raises(bp.ModelFileError, match="label type"):
        bp.load(path)


def test_a_loaded_neuralnet_continues_its_random_stream_with_warm_start(tmp_path):
    """The file keeps the network's random stream: warm_start after loading drew other Dropout
    masks and RandomShift2D shifts than the saved estimator would have (weights differed)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 6, 6, 1)).astype(np.float32), np.arange(40) % 3
    stack = [bp.RandomShift2D(1), bp.Conv2D(2, 3), bp.Flatten(), bp.Dropout(0.3)]
    est = bp.NeuralNetClassifier(stack, epochs=2, random_state=0).fit(X, y)
    bp.save(est, tmp_path / "est.npz")
    loaded = bp.load(tmp_path / "est.npz")
    assert loaded.model_.rng.bit_generator.state == est.model_.rng.bit_generator.state
    for e in (est, loaded):
        e.set_params(warm_start=True).fit(X, y)
    assert np.array_equal(loaded.model_.flat_parameters, est.model_.flat_parameters)
    assert loaded.model_.dtype == np.float32


def test_a_forged_random_stream_state_is_refused(tmp_path):
    from backprop.io import ModelFileError, read_archive, write_archive

    est = bp.NeuralNetRegressor([bp.Dense(3), bp.Dropout(0.2)], epochs=1, random_state=0)
    est.fit(np.zeros((8, 2)), np.zeros(8))
    bp.save(est, tmp_path / "est.npz")
    header, arrays = read_archive(tmp_path / "est.npz")
    header["config"]["model_rng"]["bit_generator"] = "MT19937"
    write_archive(
        tmp_path / "forged.npz", {"kind": header["kind"], "config": header["config"]}, arrays
    )
    with pytest.raises(ModelFileError, match=r"forged.npz: config.model_rng.bit_generator"):
        bp.load(tmp_path / "forged.npz")
    header["config"]["model_rng"]["bit_generator"] = "PCG64"
    header["config"]["model_rng"]["uinteger"] = 10**12  # an int, but not a uint32: NumPy's check
    write_archive(
        tmp_path / "big.npz", {"kind": header["kind"], "config": header["config"]}, arrays
    )
    with pytest.raises(ModelFileError, match=r"big.npz: state the configured objects refuse"):
        bp.load(tmp_path / "big.npz")
    del header["config"]["model_rng"]  # a file from before the stream was kept still loads
    write_archive(
        tmp_path / "old.npz", {"kind": header["kind"], "config": header["config"]}, arrays
    )
    assert bp.load(tmp_path / "old.npz").predict(np.zeros((2, 2))).shape == (2,)


def test_a_loaded_neuralnet_refits_with_the_standardization_it_was_given(tmp_path):
    """Standardize's mean and scale were left out of its config: the `layers` parameter of a
    loaded estimator (its unfitted stack) came back with the identity, so refitting it (clone,
    GridSearchCV) trained on unstandardized inputs, unlike the saved estimator."""
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    X, y = rng.normal(3.0, 2.0, size=(30, 2)), np.arange(30) % 2
    front = bp.Standardize(2, mean=[3.0, 2.5], scale=[2.0, 0.5])
    est = bp.NeuralNetClassifier([front, bp.Dense(4), bp.Tanh()], epochs=2, random_state=0)
    bp.save(est.fit(X, y), tmp_path / "est.npz")
    loaded = bp.load(tmp_path / "est.npz")
    assert loaded.layers[0].config() == front.config() == {
        "n_features": 2, "inverse": False, "mean": [3.0, 2.5], "scale": [2.0, 0.5]
    }  # fmt: skip
    refit, again = clone(loaded).fit(X, y), clone(est).fit(X, y)
    assert np.array_equal(refit.predict_proba(X), again.predict_proba(X))
    assert repr(front) == "Standardize(n_features=2, inverse=False)"  # the lists stay out
