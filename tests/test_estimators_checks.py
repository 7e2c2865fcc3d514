"""scikit-learn's own estimator checks, on both estimators, with no expected failures."""

import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from backprop import MLPClassifier, MLPRegressor

# Small networks and few epochs keep the ~60 checks per estimator fast; the checks that judge
# learning (accuracy > 0.83 on a simple problem) still pass with them.
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
    # the other two solvers, the full-batch one and plain sgd with Nesterov momentum
    MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=30, random_state=0),
    MLPRegressor(hidden_layer_sizes=(20,), solver="sgd", max_iter=100, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
