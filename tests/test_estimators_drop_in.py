"""The estimators as a scikit-learn user drives them: inputs scikit-learn accepts, parameters
changed between fits, bad parameter values, and no use of NumPy's global random state.

scikit-learn's own MLP is the oracle wherever it has the behaviour; nothing is hard-coded.
"""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sknn
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

import backprop as bp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _global_state():
    state = np.random.get_state()  # noqa: NPY002 - the global state we must not touch
    return state[1].copy(), state[2]


@pytest.mark.parametrize("kind", ["NeuralNetClassifier", "NeuralNetRegressor"])
def test_neuralnet_without_random_state_leaves_numpys_global_generator_alone(kind):
    """random_state=None drew the seed from NumPy's global RandomState: it advanced the
    caller's stream, and np.random.seed(...) made 'unseeded' fits repeat."""
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = np.arange(30) % 2
    before = _global_state()
    getattr(bp, kind)([bp.Dense(4)], epochs=1).fit(X, y)
    after = _global_state()
    assert np.array_equal(before[0], after[0]) and before[1] == after[1]
    weights = []
    for _ in range(2):
        np.random.seed(3)  # noqa: NPY002 - deliberately poking the global state
        weights.append(getattr(bp, kind)([bp.Dense(4)], epochs=1).fit(X, y).model_.flat_parameters)
    assert not np.array_equal(weights[0], weights[1])


@pytest.mark.parametrize("weight", [2.5, 1])
def test_a_number_as_sample_weight_is_taken_as_scikit_learn_takes_it(iris, weight):
    """scikit-learn broadcasts a scalar sample_weight to every sample; we raised
    'sample_weight.shape == (), expected (150,)!'."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=30, max_iter=4, random_state=0)
    theirs = sknn.MLPClassifier(**params).fit(X, y, sample_weight=weight)
    ours = bp.MLPClassifier(**params).fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10)
    kw = dict(epochs=2, batch_size=30, random_state=0)
    net = bp.NeuralNetClassifier([bp.Dense(4)], **kw).fit(X, y, sample_weight=weight)
    ones = bp.NeuralNetClassifier([bp.Dense(4)], **kw).fit(X, y, sample_weight=np.full(150, weight))
    np.testing.assert_array_equal(net.model_.flat_parameters, ones.model_.flat_parameters)


@pytest.mark.parametrize(
    "name,value",
    [
        ("alpha", np.inf),  # was refused by the Trainer as "l2 must be ...": not our name
        ("tol", np.inf),  # was accepted
        ("learning_rate_init", np.inf),
        ("power_t", np.inf),
        ("epsilon", np.inf),
        ("verbose", "loud"),  # was accepted
        ("verbose", -1),
        ("solver", "newton"),
        ("activation", "softmax"),
        ("hidden_layer_sizes", 0),
    ],
)
def test_bad_parameters_raise_what_scikit_learn_raises(iris, name, value):
    """The same values are refused, with scikit-learn's error class (a ValueError and a
    TypeError) and the parameter's own name; we raised a plain ValueError."""
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = iris
    with pytest.raises(InvalidParameterError):
        sknn.MLPClassifier(**{name: value}, max_iter=1).fit(X, y)
    with pytest.raises(InvalidParameterError, match=name):
        bp.MLPClassifier(**{name: value}, max_iter=1).fit(X, y)
    with pytest.raises(TypeError, match=name):  # scikit-learn's error is a TypeError as well
        bp.MLPRegressor(**{name: value}, max_iter=1).fit(X, X[:, 0])


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_partial_fit_uses_an_alpha_changed_between_calls(iris, kind):
    """scikit-learn reads alpha at every batch; our partial_fit kept the first call's penalty."""
    X, y = iris
    target = y if kind == "MLPClassifier" else X[:, 0]
    kw = {"classes": [0, 1, 2]} if kind == "MLPClassifier" else {}
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=50, random_state=0)
    theirs, ours = getattr(sknn, kind)(**params), getattr(bp, kind)(**params)
    for est in (theirs, ours):
        est.partial_fit(X, target, **kw)
        est.set_params(alpha=3.0)
        est.partial_fit(X, target)
        est.partial_fit(X, target)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(theirs.coefs_, ours.coefs_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_partial_fit_uses_a_shuffle_changed_between_calls(iris):
    """scikit-learn reads shuffle at every call; our partial_fit kept the first call's
    (the trainer it resumes was built with it), so set_params(shuffle=False) still shuffled."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=30, random_state=5)
    theirs, ours = sknn.MLPClassifier(**params), bp.MLPClassifier(**params)
    for est in (theirs, ours):
        est.partial_fit(X, y, classes=[0, 1, 2])
        est.set_params(shuffle=False)
        est.partial_fit(X, y)
        est.set_params(shuffle=True)
        est.partial_fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(theirs.coefs_, ours.coefs_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "first,then",
    [
        (dict(learning_rate="constant"), dict(learning_rate="invscaling")),
        (dict(learning_rate="invscaling"), dict(learning_rate="constant")),
        (dict(learning_rate="invscaling"), dict(power_t=0.9, learning_rate_init=0.05)),
        (dict(learning_rate="adaptive", tol=0.5), dict(learning_rate="constant")),
        (dict(learning_rate="invscaling"), dict(solver="adam")),
    ],
)
def test_partial_fit_keeps_the_rate_rule_of_its_optimizer(iris, first, then):
    """scikit-learn's partial_fit keeps the optimizer of its first call, with the rate rule
    (learning_rate, learning_rate_init, power_t) it was built with; ours read the rule from the
    current parameters at every epoch: set_params(learning_rate="constant") after
    'invscaling' froze the rate at its last decayed value, neither rule's."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=30, random_state=0)
    params.update(n_iter_no_change=1, **first)
    theirs, ours = sknn.MLPClassifier(**params), bp.MLPClassifier(**params)
    for est in (theirs, ours):
        est.partial_fit(X, y, classes=[0, 1, 2])
        est.set_params(**then)
        for _ in range(4):
            est.partial_fit(X, y)
    assert ours._trainer.optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(theirs.coefs_, ours.coefs_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)


def test_partial_fit_uses_an_l1_method_changed_between_calls(iris):
    """set_params(l1_method="proximal") between partial_fit calls was ignored: the resumed
    trainer kept the subgradient, so no weight became exactly zero. It now continues as an
    estimator switched to proximal L1 after its first call."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=30, random_state=5, l1=20.0)
    params.update(learning_rate_init=0.1)
    switched = bp.MLPClassifier(**params).partial_fit(X, y, classes=[0, 1, 2])
    switched.set_params(l1_method="proximal")
    kept = bp.MLPClassifier(**params).partial_fit(X, y, classes=[0, 1, 2])
    for _ in range(3):
        switched.partial_fit(X, y)
        kept.partial_fit(X, y)
    assert np.count_nonzero(switched.coefs_[0] == 0) > 0
    assert np.count_nonzero(kept.coefs_[0] == 0) == 0


@pytest.mark.parametrize(
    "change",
    [
        dict(activation="tanh"),
        dict(dropout=0.2),
        dict(normalization="layer"),
        dict(hidden_layer_sizes=(3,)),
        dict(dtype="float32"),
    ],
)
def test_a_changed_architecture_is_refused_not_ignored_when_training_continues(iris, change):
    """warm_start and partial_fit kept training the network built first: after
    set_params(activation="tanh") the fit ran ReLU, predict too, and get_params said tanh."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5, 4), solver="sgd", max_iter=3, random_state=0)
    warm = bp.MLPClassifier(warm_start=True, **params).fit(X, y)
    warm.set_params(**change)
    with pytest.raises(ValueError, match="warm_start and partial_fit continue"):
        warm.fit(X, y)
    incremental = bp.MLPRegressor(**params).partial_fit(X, X[:, 0])
    incremental.set_params(**change)
    with pytest.raises(ValueError, match="do not match the fitted network"):
        incremental.partial_fit(X, X[:, 0])
    incremental.set_params(**{k: params.get(k, bp.MLPRegressor().get_params()[k]) for k in change})
    incremental.partial_fit(X, X[:, 0])  # set back: training continues
    assert incremental.n_iter_ == 1 and len(incremental.loss_curve_) == 2


@pytest.mark.parametrize(
    "first, then", [("poisson", "squared_error"), ("squared_error", "poisson")]
)
def test_a_changed_regression_loss_is_refused_when_training_continues(iris, first, then):
    """loss="poisson" -> "squared_error" between warm fits kept training with the Poisson
    deviance through the exp link while get_params said squared_error (and the reverse trained
    squared error on an identity output)."""
    X, _ = iris
    y = np.abs(X[:, 0])
    params = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    warm = bp.MLPRegressor(loss=first, warm_start=True, **params).fit(X, y)
    with pytest.raises(ValueError, match=f"loss='{then}' does not match the fitted network"):
        warm.set_params(loss=then).fit(X, y)
    partial = bp.MLPRegressor(loss=first, **params).partial_fit(X, y).set_params(loss=then)
    with pytest.raises(ValueError, match="does not match the fitted network"):
        partial.partial_fit(X, y)
    assert partial.n_iter_ == 1 and len(partial.loss_curve_) == 1


@pytest.mark.parametrize("continue_with", ["warm_start", "partial_fit"])
def test_targets_of_another_width_are_refused_by_name_when_training_continues(iris, continue_with):
    """A regressor fitted on 2 targets and continued on 1 failed inside the loss with 'y_true
    has shape (150, 1), y_pred has shape (150, 2)', naming neither the estimator nor the fitted
    width (and a warm fit had reset n_iter_ to 0 first)."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    warm = continue_with == "warm_start"
    reg = bp.MLPRegressor(warm_start=warm, **params)
    reg.fit(X, X[:, :2]) if warm else reg.partial_fit(X, X[:, :2])
    before = [c.copy() for c in reg.coefs_], reg.n_iter_, list(reg.loss_curve_)
    with pytest.raises(ValueError, match=r"y has 1 output.*fitted on 2"):
        reg.fit(X, X[:, 0]) if warm else reg.partial_fit(X, X[:, 0])
    assert reg.n_iter_ == before[1] and reg.loss_curve_ == before[2]
    for a, b in zip(before[0], reg.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "first, then",
    [
        (dict(early_stopping=True), dict(early_stopping=False)),
        (dict(early_stopping=False), dict(early_stopping=True)),
        (dict(solver="lbfgs"), dict(solver="adam")),
        (dict(solver="lbfgs"), dict(solver="sgd", early_stopping=True)),
    ],
)
def test_warm_start_may_switch_early_stopping_or_solver(iris, first, then):
    """The bookkeeping of the first fit (best_loss_ None with early stopping or L-BFGS,
    best_validation_score_ None without) broke the next warm fit with "unsupported operand
    type(s) for -: 'NoneType' and 'float'" (scikit-learn crashes alike): the fit continues with
    the bookkeeping the new setting needs, from the weights the first fit ended with."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), max_iter=4, random_state=0, warm_start=True)
    est = bp.MLPClassifier(**params, **first).fit(X, y)
    est.set_params(**then)
    est.fit(X, y)
    assert est.n_iter_ == 4 and np.isfinite(est.loss_curve_).all()
    if est.early_stopping:
        assert len(est.validation_scores_) >= 4 and est.best_loss_ is None
        assert est.best_validation_score_ == max(est.validation_scores_[-4:])
    else:
        assert est.best_loss_ == min(est.loss_curve_[-4:])
    partial = bp.MLPRegressor(**params, **first).fit(X, X[:, 0]).set_params(**then)
    if not partial.early_stopping:
        start = partial.predict(X)
        partial.set_params(solver="sgd", batch_size=len(X)).partial_fit(X, X[:, 0])
        assert partial.best_loss_ == partial.loss_curve_[-1]
        # one full batch of sgd: the epoch's loss is the loss where the first fit ended (the
        # L-BFGS trainer of that fit was reused, and ran L-BFGS iterations)
        penalty = partial.alpha * sum((c**2).sum() for c in partial.coefs_) / (2 * len(X))
        expected = ((start - X[:, 0]) ** 2).mean() / 2
        assert partial.loss_curve_[-1] == pytest.approx(expected, rel=1e-2, abs=penalty * 2)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_no_convergence_warning_when_training_converges_in_the_last_allowed_epoch(
    iris, early_stopping
):
    """The tol/n_iter_no_change stop in epoch max_iter still warned 'Maximum iterations (3)
    reached and the optimization hasn't converged yet'; scikit-learn stops before it warns."""
    X, y = iris
    params = dict(hidden_layer_sizes=(5,), tol=10.0, n_iter_no_change=1, max_iter=3)
    for module in (sknn, bp):
        est = module.MLPClassifier(random_state=0, early_stopping=early_stopping, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            est.fit(X, y)
        assert est.n_iter_ == 3
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        bp.MLPClassifier(random_state=0, **dict(params, tol=0.0)).fit(X, y)


def test_early_stopping_switched_back_on_does_not_restore_weights_from_before_the_gap(iris):
    """warm fits with early stopping, then without, then with again: the third fit compared
    its scores with the best of the first and, if none beat it, ended with the first fit's
    weights, silently discarding the two fits since. A fit without early stopping ends its
    best_validation_score_ (None, as scikit-learn documents it then)."""
    X, y = iris
    shuffled = np.random.default_rng(0).permutation(y)
    est = bp.MLPClassifier((8,), max_iter=30, learning_rate_init=0.05, warm_start=True,
                           early_stopping=True, random_state=0)  # fmt: skip
    est.fit(X, y, validation_data=(X, y))
    est.set_params(early_stopping=False, max_iter=5).fit(X, y)
    assert est.best_validation_score_ is None
    est.set_params(early_stopping=True, max_iter=3).fit(X, y, validation_data=(X, shuffled))
    assert est.best_validation_score_ == max(est.validation_scores_[-3:])
    # a refused call changes nothing (it used to set up early stopping's bookkeeping first)
    partial = bp.MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        partial.set_params(early_stopping=True).partial_fit(X, y)
    assert partial.best_validation_score_ is None and partial.validation_scores_ is None


def test_weights_without_a_positive_value_are_refused_up_front(iris):
    """All-zero sample weights failed inside the training loop ('no real step in any training
    batch of epoch 1'), all-zero validation weights only after a first epoch, in the metric.
    scikit-learn refuses the former up front with the message matched here."""
    X, y = iris
    zeros = np.zeros(len(y))
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        sknn.MLPClassifier(max_iter=2).fit(X, y, sample_weight=zeros)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        bp.MLPClassifier(max_iter=2).fit(X, y, sample_weight=zeros)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        bp.MLPRegressor(early_stopping=True, max_iter=2).fit(X, y, validation_data=(X, y, zeros))


def test_per_layer_settings_may_come_as_arrays_like_hidden_layer_sizes(iris):
    """dropout=np.array([0.1, 0.2]) was refused as 'dropout rates must be in [0, 1), got
    array([0.1, 0.2])' (rates that are in [0, 1)), and an array of activation names likewise."""
    X, y = iris
    params = dict(hidden_layer_sizes=np.array([5, 4]), max_iter=3, random_state=0)
    as_list = bp.MLPClassifier(dropout=[0.1, 0.2], activation=["tanh", "relu"], **params)
    as_array = bp.MLPClassifier(
        dropout=np.array([0.1, 0.2]), activation=np.array(["tanh", "relu"]), **params
    )
    np.testing.assert_array_equal(
        as_array.fit(X, y).predict_proba(X), as_list.fit(X, y).predict_proba(X)
    )
    assert as_array.model_.summary() == as_list.model_.summary()


@pytest.mark.parametrize(
    "kind,stack,n_classes",
    [
        ("NeuralNetClassifier", [bp.Dense(5)], 3),  # predict_proba had 5 columns for 3 classes
        ("NeuralNetClassifier", [bp.Dense(3), bp.Softmax()], 3),  # softmax applied twice
        ("NeuralNetRegressor", [bp.Dense(3)], 1),
    ],
)
def test_neuralnet_refuses_a_network_whose_outputs_do_not_match_the_targets(kind, stack, n_classes):
    """With output_layer=False the user's last layer is the output: a width other than the
    number of classes trained without a word (predict then picked column indices past
    classes_), and a final Softmax gave probabilities of probabilities."""
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = np.arange(30) % n_classes if n_classes > 1 else X[:, 0]
    est = getattr(bp, kind)(stack, output_layer=False, epochs=1, random_state=0)
    with pytest.raises(ValueError, match=r"outputs per sample; the estimator needs"):
        est.fit(X, y)
    ok = getattr(bp, kind)(stack[:1], epochs=1, random_state=0).fit(X, y)  # output layer added
    if n_classes > 1:
        assert ok.predict_proba(X).shape == (30, n_classes)


@pytest.mark.parametrize("name", ["warm_start", "output_layer"])
def test_neuralnet_flags_must_be_bools(name):
    """warm_start="no" continued training the fitted network and output_layer="no" added the
    output Dense: any non-empty string is true."""
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    est = bp.NeuralNetClassifier([bp.Dense(2)], epochs=1, random_state=0).fit(X, y)
    est.set_params(**{name: "no"})
    with pytest.raises(ValueError, match=f"{name} must be True or False, got 'no'"):
        est.fit(X, y)
