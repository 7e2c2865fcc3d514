"""What the estimators add to scikit-learn's: extra keyword parameters (defaults keep the
scikit-learn behaviour) and an explicit validation set in fit."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

import backprop as bp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def clf(**kw):
    params = dict(hidden_layer_sizes=(16, 8), learning_rate_init=0.01, max_iter=80, random_state=0)
    return bp.MLPClassifier(**{**params, **kw})


def _types(est):
    return [type(layer).__name__ for layer in est.model_.layers]


def test_architecture_extras_build_the_right_layers(iris):
    est = clf(activation=["gelu", "leaky_relu"], dropout=[0.2, 0.0], normalization="layer").fit(
        *iris
    )
    assert _types(est) == [
        "Dense",
        "LayerNorm",
        "GELU",
        "Dropout",
        "Dense",
        "LayerNorm",
        "LeakyReLU",
        "Dense",
    ]
    assert est.model_.layers[3].drop_rate == 0.2
    assert est.score(*iris) > 0.9
    est = clf(normalization="batch", dropout=0.1, activation="silu").fit(*iris)
    assert _types(est).count("BatchNorm") == 2 and _types(est).count("Dropout") == 2
    assert est.score(*iris) > 0.9
    assert _types(clf().fit(*iris)) == ["Dense", "ReLU", "Dense", "ReLU", "Dense"]


def test_dropout_leaves_initial_weights_and_batches_alone(iris):
    """Dropout draws from its own stream: one sgd step with and without dropout starts from
    the same weights (so the first-epoch losses differ only by the masks)."""
    a = clf(solver="sgd", max_iter=1, learning_rate_init=1e-12).fit(*iris)
    b = clf(solver="sgd", max_iter=1, learning_rate_init=1e-12, dropout=0.5).fit(*iris)
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-9)


@pytest.mark.parametrize("solver", ["rmsprop", "adagrad", "adamw"])
def test_extra_solvers_learn(iris, solver):
    est = clf(solver=solver, learning_rate_init=0.1 if solver == "adagrad" else 0.01).fit(*iris)
    assert type(est._trainer.optimizer).__name__.lower() == solver
    assert est.score(*iris) > 0.9
    assert est.loss_curve_[-1] < est.loss_curve_[0]


def test_l1_shrinks_weights(iris):
    # l1 is scaled per sample like alpha: the penalty is l1 * sum|W| / batch size
    plain = clf(solver="sgd", alpha=0.0, batch_size=16).fit(*iris)
    sparse = clf(solver="sgd", alpha=0.0, batch_size=16, l1=5.0).fit(*iris)
    assert sum(np.abs(w).sum() for w in sparse.coefs_) < 0.5 * sum(
        np.abs(w).sum() for w in plain.coefs_
    )


class GradNorms(bp.Callback):
    def __init__(self):
        self.norms = []

    def on_batch_end(self, trainer, batch, logs):
        self.norms.append(
            np.sqrt(np.dot(trainer.model.flat_gradients, trainer.model.flat_gradients))
        )


def test_clip_norm_and_callbacks(iris):
    spy = GradNorms()
    est = clf(
        solver="sgd", learning_rate_init=0.5, clip_norm=0.05, batch_size=16, callbacks=[spy]
    ).fit(*iris)
    assert len(spy.norms) == est.n_iter_ * 10  # 150 samples in batches of 16
    assert max(spy.norms) <= 0.05 * (1 + 1e-6)
    unclipped = GradNorms()
    clf(solver="sgd", learning_rate_init=0.5, batch_size=16, callbacks=[unclipped]).fit(*iris)
    assert max(unclipped.norms) > 0.05


def test_schedule(iris):
    est = clf(solver="sgd", schedule=bp.CosineDecay(total=20, min_lr=1e-4), max_iter=20).fit(*iris)
    lrs = est._trainer.history["lr"]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < 0.001
    assert np.all(np.diff(lrs) <= 0)


def test_class_weight_is_a_sample_weight(iris):
    X, y = iris
    weights = {0: 3.0, 1: 1.0, 2: 0.5}
    a = clf(solver="sgd", max_iter=5, class_weight=weights).fit(X, y)
    b = clf(solver="sgd", max_iter=5).fit(X, y, sample_weight=np.array([weights[c] for c in y]))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)
    keep = np.r_[0:50, 50:70, 100:150]  # imbalanced: 50 / 20 / 50
    balanced = compute_class_weight("balanced", classes=np.arange(3), y=y[keep])
    c = clf(solver="sgd", max_iter=5, class_weight="balanced").fit(X[keep], y[keep])
    d = clf(solver="sgd", max_iter=5).fit(X[keep], y[keep], sample_weight=balanced[y[keep]])
    np.testing.assert_allclose(c.coefs_[0], d.coefs_[0], rtol=1e-12)
    with pytest.raises(ValueError, match="multi-label"):
        clf(class_weight="balanced").fit(X, np.c_[y == 0, y == 1])


def test_validation_data_keeps_all_training_data(iris):
    X, y = iris
    rng = np.random.default_rng(0)
    Xv, yv = X + 0.1 * rng.normal(size=X.shape), y
    est = clf(solver="sgd", early_stopping=True, n_iter_no_change=3).fit(
        X, y, validation_data=(Xv, yv)
    )
    assert est.t_ == est.n_iter_ * 150  # every training row in every epoch: no split
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.score(Xv, yv) == pytest.approx(est.best_validation_score_)  # best weights restored
    # without early stopping the curves are still recorded
    est = clf(solver="adam", max_iter=7).fit(X, y, validation_data=(Xv, yv))
    assert len(est.validation_loss_curve_) == 7 and np.all(np.isfinite(est.validation_loss_curve_))
    with pytest.raises(ValueError, match="not among the classes"):
        clf().fit(X, y, validation_data=(Xv, yv + 5))


def test_user_early_stopping_callback_sees_the_validation_loss(iris):
    X, y = iris
    stop = bp.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    est = clf(solver="adam", max_iter=50, callbacks=[stop]).fit(X, y, validation_data=(X, y))
    assert est.n_iter_ == 2  # the first epoch sets the best, the second cannot beat it by 10


def test_validation_weights_are_checked(iris):
    X, y = iris
    with pytest.raises(ValueError, match="sample_weight.shape"):
        clf(max_iter=2).fit(X, y, validation_data=(X, y, np.ones(3)))
    est = clf(max_iter=2).fit(X, y, validation_data=(X, y, (y == 0).astype(float)))
    assert est.validation_scores_[-1] == pytest.approx(est.score(X[y == 0], y[y == 0]))


def test_a_validation_set_that_cannot_be_scored_is_refused_before_training(iris):
    """validation_data with one sample gave NaN r2 scores: early stopping never found a best
    epoch and handed back the *initial* weights without a word. Targets of another width
    failed only after the first epoch, inside r2_score, without naming validation_data."""
    X, y = iris
    reg = bp.MLPRegressor(hidden_layer_sizes=(5,), early_stopping=True, max_iter=3)
    with pytest.raises(ValueError, match="validation set is too small"):
        reg.fit(X, X[:, 0], validation_data=(X[:1], X[:1, 0]))
    with pytest.raises(ValueError, match="validation_data has 1 output.*training targets 2"):
        reg.fit(X, X[:, :2], validation_data=(X[:10], X[:10, 0]))
    assert not hasattr(reg, "model_") or reg.n_iter_ == 0
