"""scikit-learn's MLP losses as backprop Losses: values equal to scikit-learn's own functions,
gradients checked by finite differences in float64."""

import numpy as np
import pytest
from sklearn.neural_network._base import LOSS_FUNCTIONS

import backprop as bp
from backprop.estimators import losses as L


def _case(loss, n, k, rng):
    z = rng.normal(size=(n, k))
    if isinstance(loss, L.LogLoss):
        y = np.eye(k)[rng.integers(0, k, n)]
    elif isinstance(loss, L.BinaryLogLoss):
        y = rng.integers(0, 2, (n, k)).astype(float)
    elif isinstance(loss, L.HalfPoissonDeviance):
        y = rng.poisson(2.0, (n, k)).astype(float)
    else:
        y = rng.normal(size=(n, k))
    return z, y


SKLEARN_NAME = {
    L.HalfSquaredError: "squared_error",
    L.HalfPoissonDeviance: "poisson",
    L.LogLoss: "log_loss",
    L.BinaryLogLoss: "binary_log_loss",
}


@pytest.mark.parametrize("cls", list(SKLEARN_NAME))
@pytest.mark.parametrize("weighted", [False, True])
def test_value_is_sklearns(cls, weighted, rng):
    loss = cls()
    k = 3 if cls is not L.BinaryLogLoss else 2
    z, y = _case(loss, 9, k, rng)
    w = rng.uniform(0.1, 2.0, 9) if weighted else None
    theirs = LOSS_FUNCTIONS[SKLEARN_NAME[cls]](y, loss.link(z), w)
    assert loss.forward(z, y, w) == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("cls", list(SKLEARN_NAME))
def test_gradient_is_delta_p_minus_y(cls, rng):
    """scikit-learn's delta: (p - y) * w_i / sum(w)."""
    loss = cls()
    z, y = _case(loss, 6, 3, rng)
    w = rng.uniform(0.5, 2.0, 6)
    loss.forward(z, y, w)
    np.testing.assert_allclose(loss.backward(), (loss.link(z) - y) * (w / w.sum())[:, None])


@pytest.mark.parametrize("cls", list(SKLEARN_NAME))
def test_gradients_by_finite_differences(cls, rng):
    """Through a whole float64 network, with the per-sample L2 penalty's plain form."""
    n_out = 1 if cls is L.HalfSquaredError else 3  # see the multi-output test below
    model = bp.Sequential([bp.Dense(4, 5), bp.Tanh(), bp.Dense(5, n_out)], dtype="float64", seed=0)
    X = rng.normal(size=(7, 4))
    _, y = _case(cls(), 7, n_out, rng)
    report = bp.check_gradients(model, cls(), X, y, sample_weight=rng.uniform(0.5, 2, 7), l2=0.1)
    assert report.passed, str(report)


def test_squared_error_descends_the_sum_over_outputs(rng):
    """scikit-learn reports mean_k but descends sum_k: the gradient is k times the value's."""
    loss = L.HalfSquaredError()
    z, y = _case(loss, 5, 3, rng)
    loss.forward(z, y)
    g = loss.backward()
    eps = 1e-6
    numeric = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        numeric[idx] = (loss.forward(zp, y) - loss.forward(zm, y)) / (2 * eps)
    np.testing.assert_allclose(g, 3 * numeric, rtol=1e-6, atol=1e-9)


def test_probabilities_are_clipped_like_sklearn():
    """A confidently wrong prediction costs -log(eps), not infinity."""
    loss = L.LogLoss()
    value = loss.forward(np.array([[1000.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(-np.log(np.finfo(float).eps))
