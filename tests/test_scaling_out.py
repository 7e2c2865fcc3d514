"""partial_fit over chunks, and the estimators on a Dask cluster (the optional extra).

The Dask tests start a LocalCluster of two worker processes on loopback and are skipped when
`backprop[dask]` (dask[distributed], dask-ml) is not installed; `make test` installs it.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import backprop as bp


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:1200], y[:1200]


def chunks(X, y, size):
    return [(X[i : i + size], y[i : i + size]) for i in range(0, len(X), size)]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_over_chunks_equals_one_epoch_of_fit(digits, solver):
    X, y = digits
    kw = {
        "hidden_layer_sizes": (32,),
        "solver": solver,
        "batch_size": 50,
        "shuffle": False,
        "random_state": 0,
        "momentum": 0.9,
    }
    inc = bp.MLPClassifier(**kw)
    for i, (Xc, yc) in enumerate(chunks(X, y, 200)):  # 200 = 4 batches of 50: same boundaries
        inc.partial_fit(Xc, yc, classes=np.arange(10) if i == 0 else None)
    full = bp.MLPClassifier(max_iter=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X, y)
    for a, b in zip(inc.coefs_ + inc.intercepts_, full.coefs_ + full.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    # The optimizer state carried across calls: a fresh optimizer per chunk would differ.
    fresh = bp.MLPClassifier(**kw)
    for i, (Xc, yc) in enumerate(chunks(X, y, 200)):
        fresh.partial_fit(Xc, yc, classes=np.arange(10) if i == 0 else None)
        fresh._trainer.optimizer.reset()
    assert not np.allclose(fresh.coefs_[0], full.coefs_[0])


def test_partial_fit_continues_exactly_after_a_pickle_round_trip(digits):
    """What a cluster does between chunks: ship the estimator to another process and back."""
    import pickle

    X, y = digits
    kw = {"hidden_layer_sizes": (16,), "batch_size": 50, "random_state": 0}
    here, shipped = bp.MLPClassifier(**kw), bp.MLPClassifier(**kw)
    for Xc, yc in chunks(X, y, 200):
        here.partial_fit(Xc, yc, classes=np.arange(10))
        shipped = pickle.loads(pickle.dumps(shipped))
        shipped.partial_fit(Xc, yc, classes=np.arange(10))
    np.testing.assert_array_equal(here.coefs_[0], shipped.coefs_[0])


def test_partial_fit_enforces_the_first_classes(digits):
    X, y = digits
    clf = bp.MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    clf.partial_fit(X[:100], y[:100] % 3, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X[:100], y[:100] % 3, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError):
        clf.partial_fit(X[:100], y[:100] % 4)  # label 3 was never declared
    with pytest.raises(ValueError, match="classes must be passed"):
        bp.MLPClassifier().partial_fit(X[:10], y[:10])


# -- Dask ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask_ml")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.slow  # a Dask LocalCluster
def test_incremental_over_a_chunked_dask_array_equals_local_partial_fit(client, digits):
    import dask.array as da
    from dask_ml.wrappers import Incremental

    X, y = digits
    Xd = da.from_array(X, chunks=(200, 64))  # six chunks: no single chunk holds the data
    yd = da.from_array(y, chunks=200)
    kw = {"hidden_layer_sizes": (32,), "batch_size": 50, "random_state": 0}
    inc = Incremental(bp.MLPClassifier(**kw), shuffle_blocks=False)
    inc.fit(Xd, yd, classes=np.arange(10))
    local = bp.MLPClassifier(**kw)
    for Xc, yc in chunks(X, y, 200):
        local.partial_fit(Xc, yc, classes=np.arange(10))
    np.testing.assert_allclose(inc.estimator_.coefs_[0], local.coefs_[0], rtol=1e-12)
    assert inc.score(Xd, yd) == pytest.approx(local.score(X, y))


@pytest.mark.slow  # a Dask LocalCluster
def test_parallel_post_fit_predicts_on_the_cluster(client, digits):
    import dask.array as da
    from dask_ml.wrappers import ParallelPostFit

    X, y = digits
    clf = ParallelPostFit(bp.MLPRegressor(hidden_layer_sizes=(16,), max_iter=30, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X[:300], y[:300].astype(float))
    pred = clf.predict(da.from_array(X, chunks=(300, 64)))
    np.testing.assert_allclose(pred.compute(), clf.estimator.predict(X), rtol=1e-12)


@pytest.mark.slow  # a Dask LocalCluster
def test_grid_search_runs_on_the_cluster_and_agrees_with_a_local_run(client, digits):
    import joblib
    from distributed import get_task_stream
    from sklearn.model_selection import GridSearchCV

    X, y = digits
    grid = {"alpha": [1e-4, 1.0, 30.0], "hidden_layer_sizes": [(8,), (32,)]}

    def search():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return GridSearchCV(bp.MLPClassifier(max_iter=20, random_state=0), grid, cv=3).fit(
                X[:600], y[:600]
            )

    local = search()
    with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        remote = search()
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    # the fits ran as cluster tasks (joblib groups several fits into one task)
    assert len(stream.data) >= 2


def test_a_failing_partial_fit_changes_nothing(digits):
    X, y = digits
    clf = bp.MLPClassifier(
        hidden_layer_sizes=(16,), batch_size=50, shuffle=False, random_state=0, dropout=0.1
    )
    clf.partial_fit(X[:200], y[:200], classes=np.arange(10))
    before = {
        "params": clf.model_.flat_parameters.copy(),
        "state": {k: v.copy() for k, v in clf._trainer.optimizer.state.items()},
        "t": clf._trainer.optimizer.iterations,
        "attrs": (clf.n_iter_, clf.t_, list(clf.loss_curve_), clf.best_loss_),
        "dropout": str(clf.model_.rng.bit_generator.state),
    }
    bad = X[200:400].copy()
    bad[120:] = 1e200  # finite, but the forward pass overflows: batch 3 of 4 diverges
    with pytest.raises(ValueError, match="non-finite"):
        clf.partial_fit(bad, y[200:400])
    np.testing.assert_array_equal(clf.model_.flat_parameters, before["params"])
    for key, value in before["state"].items():
        np.testing.assert_array_equal(clf._trainer.optimizer.state[key], value)
    assert clf._trainer.optimizer.iterations == before["t"]
    assert (clf.n_iter_, clf.t_, clf.loss_curve_, clf.best_loss_) == before["attrs"]
    assert str(clf.model_.rng.bit_generator.state) == before["dropout"]
    # ... and training goes on as if the failed call had never happened
    again = bp.MLPClassifier(
        hidden_layer_sizes=(16,), batch_size=50, shuffle=False, random_state=0, dropout=0.1
    )
    again.partial_fit(X[:200], y[:200], classes=np.arange(10))
    clf.partial_fit(X[200:400], y[200:400])
    again.partial_fit(X[200:400], y[200:400])
    np.testing.assert_array_equal(clf.coefs_[0], again.coefs_[0])
