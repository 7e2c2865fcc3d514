"""scikit-learn's own estimator checks, on both estimators, with no expected failures."""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from backprop import MLPClassifier, MLPRegressor


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """SciPy's L-BFGS-B calls BLAS on tiny vectors; on a busy 2-core box a BLAS thread pool
    makes each call ~6x slower (measured: 0.14 s -> 0.02 s per fit). One thread is enough."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# Small networks and few epochs keep the ~60 checks per estimator fast; the checks that judge
# learning (accuracy > 0.83 on a simple problem) still pass with them.
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    # the other two solvers, the full-batch one and plain sgd with Nesterov momentum
    MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=10, random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), solver="sgd", max_iter=100, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
