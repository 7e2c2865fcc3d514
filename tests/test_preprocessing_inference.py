"""Models that carry their preprocessing, and predictions that know the loss."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

import backprop as bp
from backprop.app.cli import main

DIGITS = """\
[data]
source = "digits"
validation_size = 0.1

[model]
seed = 0

[[model.layers]]
type = "Dense"
out_features = 32
[[model.layers]]
type = "ReLU"
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[trainer]
epochs = 5
batch_size = 64

[output]
plots = false
gradient_monitor = false
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prep")
    (tmp / "digits.toml").write_text(DIGITS)
    assert main(["train", str(tmp / "digits.toml"), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def _raw_test_split(run_dir):
    from backprop.app.cli import _raw_data

    return _raw_data(str(run_dir / "config.toml"), None)


def test_standardize_forward_backward_and_gradient(rng):
    X = rng.normal(3.0, 2.0, size=(20, 4))
    layer = bp.Standardize(4).adapt(X)
    model = bp.Sequential([layer, bp.Dense(4, 3)], dtype="float64", seed=0)
    Z = model.layers[0].forward(X)
    assert np.allclose(Z.mean(axis=0), 0, atol=1e-12) and np.allclose(Z.std(axis=0), 1)
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X[:6], np.array([0, 1, 2] * 2))
    assert report.passed
    # the input gradient through the layer is g / scale (checked against finite differences)
    inv = bp.Standardize(4, mean=[1, 2, 3, 4], scale=[2, 2, 2, 2], inverse=True, dtype="float64")
    y = inv.forward(np.ones((2, 4)), training=True)
    assert np.array_equal(y, np.ones((2, 4)) * 2 + [1, 2, 3, 4])
    assert np.array_equal(inv.backward(np.ones((2, 4))), np.full((2, 4), 2.0))
    with pytest.raises(ValueError, match="scale must be non-negative"):
        bp.Standardize(2, scale=[-1, 1])
    with pytest.raises(ValueError, match=r"expects \(n_samples, 4\)"):
        bp.Standardize(4).adapt(np.ones((3, 5)))


def test_standardize_statistics_survive_sequential_and_files(tmp_path, rng):
    X = rng.normal(5.0, 3.0, size=(30, 4))
    model = bp.Sequential([bp.Standardize(4).adapt(X), bp.Dense(4, 2)], seed=0)
    # the Sequential re-initializes its layers: the statistics given are what it resets to
    assert np.allclose(model.layers[0].buffers["mean"], X.mean(axis=0))
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.layers[0].buffers["scale"], model.layers[0].buffers["scale"])
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert "mean" not in "".join(model.parameters())  # buffers, not trained parameters


def test_reinitializing_a_loaded_model_keeps_its_standardization(tmp_path, rng):
    """A loaded Standardize is built with the identity and then loads its statistics; resetting
    its buffers put the identity back, so reset_parameters or pruning.reinitialize (the lottery
    ticket's control) on a loaded model silently dropped the input standardization."""
    X = rng.normal(5.0, 3.0, size=(30, 4))
    model = bp.Sequential([bp.Standardize(4).adapt(X), bp.Dense(4, 2)], seed=0)
    bp.save(model, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    for m in (model, loaded):
        bp.pruning.reinitialize(m, np.random.default_rng(3))
    assert np.allclose(loaded.buffers()["0.mean"], X.mean(axis=0))
    assert np.array_equal(loaded.buffers()["0.scale"], model.buffers()["0.scale"])
    assert np.array_equal(loaded.predict(X), model.predict(X))
    again = bp.Standardize(4).adapt(X)  # adapt, then a model: the statistics it allocates
    assert np.array_equal(
        bp.Sequential([again], seed=0).buffers()["0.mean"], model.buffers()["0.mean"]
    )


def test_run_model_predicts_from_raw_features_as_the_run_scored(run_dir):
    model = bp.load(run_dir / "model.npz")
    assert isinstance(model.layers[0], bp.Standardize)
    X_raw, y = _raw_test_split(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    acc = bp.inference.score(model, X_raw, y, "cross_entropy")
    # Standardize computes in float32 inside the model, the run in float64 before the cast:
    # the same predictions, so the same accuracy (0.779 here before models carried it)
    assert acc == pytest.approx(metrics["test"]["accuracy"], abs=1e-12)
    assert acc > 0.85


def test_python_and_the_command_line_predict_identically(run_dir, tmp_path):
    X = load_digits().data[:200]  # raw pixels 0..16, as a user has them
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "p.npz"
    assert (
        main(["predict", str(run_dir / "model.npz"), str(tmp_path / "X.npy"), "--output", str(out)])
        == 0
    )
    model = bp.load(run_dir / "model.npz")
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["outputs"], model.predict(X))
        assert np.array_equal(f["y_pred"], bp.inference.predict_classes(model, X, "cross_entropy"))
    proba = tmp_path / "proba.csv"
    argv = ["predict", str(run_dir / "model.npz"), str(tmp_path / "X.npy"), "--proba"]
    assert main([*argv, "--output", str(proba)]) == 0
    lines = proba.read_text().splitlines()
    assert lines[0] == ",".join(f"proba_{c}" for c in range(10))
    P = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    expected = bp.inference.predict_proba(model, X, "cross_entropy")
    assert np.allclose(P, expected, rtol=1e-6) and np.allclose(P.sum(axis=1), 1, atol=1e-5)


def test_regression_model_returns_targets_in_their_own_units(tmp_path):
    from pathlib import Path

    text = (Path(__file__).parent.parent / "configs" / "diabetes.toml").read_text()
    (tmp_path / "d.toml").write_text(text)
    args = ["--quiet", "--set", "trainer.epochs=3", "--set", "output.plots=false"]
    assert main(["train", str(tmp_path / "d.toml"), "--out", str(tmp_path / "d"), *args]) == 0
    model = bp.load(tmp_path / "d" / "model.npz")
    assert model.layers[-1].inverse
    with np.load(tmp_path / "d" / "predictions.npz", allow_pickle=False) as f:
        y_pred = f["y_pred"]
    from backprop.app.cli import _raw_data

    X_raw, _ = _raw_data(str(tmp_path / "d" / "config.toml"), None)
    assert np.allclose(model.predict(X_raw).ravel(), y_pred.ravel(), rtol=1e-4)
    np.save(tmp_path / "X.npy", X_raw[:5])
    argv = ["predict", str(tmp_path / "d" / "model.npz"), str(tmp_path / "X.npy"), "--proba"]
    assert main([*argv, "--output", str(tmp_path / "p.npy")]) == 2


def test_trainer_inference_conveniences(rng):
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(lr=0.1), epochs=30, seed=0)
    trainer.fit(X, y)
    P = trainer.predict_proba(X)
    assert P.shape == (60, 2) and np.allclose(P.sum(axis=1), 1)
    logits = model.predict(X)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(P, expected)
    assert np.array_equal(trainer.predict_classes(X), logits.argmax(axis=1))
    assert trainer.score(X, y) == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert trainer.score(X, y) == pytest.approx(trainer.evaluate(X, y)["accuracy"])
    # binary cross-entropy with one output: two columns, as scikit-learn's predict_proba
    bce = bp.Trainer(
        bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0), "binary_cross_entropy", "adam"
    )
    z = bce.predict(X)[:, 0]
    P = bce.predict_proba(X)
    assert np.allclose(P[:, 1], 1 / (1 + np.exp(-z))) and np.allclose(P.sum(axis=1), 1)
    assert np.array_equal(bce.predict_classes(X), (z > 0).astype(int))
    reg = bp.Trainer(bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0), "mse", "adam")
    with pytest.raises(ValueError, match="classification loss"):
        reg.predict_proba(X)
    t = X @ np.array([1.0, 2.0, 3.0])
    assert reg.score(X, t) == pytest.approx(reg.evaluate(X, t)["r2"])


def test_binary_score_is_the_accuracy_evaluate_reports(rng):
    # score counted each label of a multi-label row on its own (0.54 where evaluate and
    # scikit-learn's subset accuracy said 0.175) and compared soft targets (0.9) to 0/1 codes
    X = rng.normal(size=(40, 4))
    Y = (rng.random((40, 3)) > 0.5).astype(float)
    multi = bp.Trainer(bp.Sequential([bp.Dense(4, 3)], seed=0), "binary_cross_entropy", "sgd")
    codes = multi.predict_classes(X)
    subset = np.mean(np.all(codes == Y, axis=1))
    assert np.mean(codes == Y) != pytest.approx(subset)  # the two rules differ on these data
    assert multi.score(X, Y) == pytest.approx(subset)
    assert multi.score(X, Y) == pytest.approx(multi.evaluate(X, Y)["accuracy"])
    soft = np.where(Y[:, 0] > 0.5, 0.9, 0.1)
    one = bp.Trainer(bp.Sequential([bp.Dense(4, 1)], seed=0), "binary_cross_entropy", "sgd")
    hits = np.mean(one.predict_classes(X) == (soft > 0.5))
    assert hits > 0 and one.score(X, soft) == pytest.approx(hits)
    assert one.score(X, soft) == pytest.approx(one.evaluate(X, soft)["accuracy"])


def test_score_of_a_poisson_model_is_r2_of_the_rates_and_a_sequence_loss_is_refused(rng):
    # score took R^2 of the log-rates against the counts (-0.25 where the rates' R^2 is 0.73)
    # and a sequence model's score crashed in a reshape
    from sklearn.metrics import r2_score

    X = rng.normal(size=(80, 3))
    y = rng.poisson(np.exp(X @ np.array([0.5, -0.3, 0.2]) + 1)).astype(float)[:, None]
    model = bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0)
    trainer = bp.Trainer(model, bp.Poisson(), bp.Adam(lr=0.05), epochs=60, seed=0)
    trainer.fit(X, y)
    rates = np.exp(trainer.predict(X))
    assert trainer.score(X, y) == pytest.approx(r2_score(y, rates))
    assert trainer.score(X, y) > 0.3
    seq = bp.Sequential([bp.Embedding(20, 4), bp.Dense(3)], seed=0)
    ids = rng.integers(0, 20, size=(6, 5))
    with pytest.raises(ValueError, match="SequenceCrossEntropy"):
        bp.inference.score(seq, ids, ids % 3, bp.SequenceCrossEntropy())


def test_score_checks_the_targets_against_the_outputs(rng):
    # one-hot rows of 4 classes against 3 outputs scored an accuracy (argmax of each), and a
    # label per row against 3 binary outputs or 2 regression outputs crashed in a reshape
    X = rng.normal(size=(20, 3))
    ce = bp.Trainer(bp.Sequential([bp.Dense(3, 3)], seed=0), "cross_entropy", "sgd")
    with pytest.raises(ValueError, match=r"y has shape \(20, 4\) for outputs of shape \(20, 3\)"):
        ce.score(X, np.eye(4)[rng.integers(0, 4, 20)])
    assert 0 <= ce.score(X, rng.integers(0, 3, 20)) <= 1  # labels (n,) stay fine
    bce = bp.Trainer(bp.Sequential([bp.Dense(3, 3)], seed=0), "binary_cross_entropy", "sgd")
    with pytest.raises(ValueError, match="one target per output"):
        bce.score(X, rng.integers(0, 3, 20))
    mse = bp.Trainer(bp.Sequential([bp.Dense(3, 2)], seed=0), "mse", "sgd")
    with pytest.raises(ValueError, match="one target per output"):
        mse.score(X, rng.normal(size=20))
    with pytest.raises(ValueError, match="X has 20 samples but y has 19"):
        mse.score(X, rng.normal(size=(19, 2)))


BUILT_IN = sorted(
    name for name, cls in bp.layers.REGISTRY.items() if cls.__module__.startswith("backprop.")
)


def test_r2_does_not_cancel_on_a_constant_output_or_large_targets():
    # R2 kept sum y and sum y^2 and took sum y^2 - (sum y)^2 / n: a constant output of 0.1
    # left ~1e-17 instead of 0, so score() was -2.5e13 instead of the other output's 0.999975;
    # targets near 1e8 lost the digits of their spread (0.9453 for sklearn's 0.9375).
    from sklearn.metrics import r2_score

    T = np.c_[np.arange(7.0), np.full(7, 0.1)]
    P = T + 0.01
    got = bp.inference.score_outputs(P, T, "mse")  # the constant output counts out
    assert got == pytest.approx(r2_score(T[:, 0], P[:, 0]), rel=1e-12)
    T = np.arange(7.0) + 1e8
    w = np.linspace(0.5, 2.0, 7)
    metric = bp.data.R2()
    metric.reset()
    for k in range(0, 7, 2):  # chunks, as evaluate feeds it
        metric.update(T[k : k + 2, None] + 0.5, T[k : k + 2], w[k : k + 2])
    assert metric.result() == pytest.approx(r2_score(T, T + 0.5, sample_weight=w), rel=1e-9)


@pytest.mark.parametrize("weighted", [False, True])
def test_r2_in_training_batches_counts_a_constant_output_out_and_equals_sklearn(weighted):
    # R2.update runs at every training batch: it keeps no per-output min/max (4 reductions
    # more a batch), yet an output constant at 0.1 over every batch keeps an sst of exactly 0
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    T = np.c_[rng.normal(3.0, 2.0, 50), np.full(50, 0.1)]
    P = T + rng.normal(0, 0.5, T.shape)
    w = rng.random(50) if weighted else None
    metric = bp.data.R2()
    for k in range(0, 50, 7):
        metric.update(P[k : k + 7], T[k : k + 7], None if w is None else w[k : k + 7])
    assert metric.sst[1] == 0.0
    expected = r2_score(T[:, 0], P[:, 0], sample_weight=w)
    assert metric.result() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_layer_backward_docstring_gives_its_formula_with_shapes(name):
    doc = bp.layers.REGISTRY[name].backward.__doc__ or ""
    assert "dx" in doc and "(n, " in doc, f"{name}.backward: {doc!r}"


def test_summary_shows_short_names_and_trainability_only_with_parameters():
    model = bp.Sequential([bp.Dense(4, 3), bp.ReLU(), bp.Dense(3, 2)], seed=0)
    model.layers[0].trainable = False
    rows = [line.split() for line in model.summary().splitlines()[2:5]]
    assert rows[0][:5] == ["0", "Dense", "(None,", "3)", "15"] and rows[0][5:7] == [
        "no",
        "(frozen)",
    ]
    assert rows[1] == ["1", "ReLU", "(None,", "3)", "0"]  # no trainable column for ReLU
    assert rows[2][5] == "yes"


@pytest.mark.parametrize("name", sorted(set(bp.losses.REGISTRY.values()), key=lambda c: c.__name__))
def test_every_loss_backward_docstring_gives_its_gradient(name):
    doc = name.backward.__doc__ or ""
    assert name.gradient in doc and "(n, k)" in doc and name.gradient != bp.Loss.gradient


@pytest.mark.parametrize("mean", [[1.0, 2.0], "x", [[1.0, 2.0, 3.0]]])
def test_standardize_names_statistics_of_the_wrong_size(mean):
    """Its config now carries the statistics, so a file can hold a wrong-sized list: the error
    names the argument and the width instead of NumPy's broadcasting message."""
    with pytest.raises(ValueError, match=r"Standardize mean must be a number or 3 numbers"):
        bp.Standardize(3, mean=mean)


def test_a_constant_feature_standardizes_to_zero_whatever_its_rounding():
    """np.std of ten copies of 0.1 is 1.4e-17, not 0 (the mean rounds): adapt kept that as the
    scale, so the constant feature came out as 1.0 instead of 0, and a value 0.1 away from
    1e6 + 0.1 came out as 8.6e8. A feature whose values are all equal now gets scale 1 and its
    own value as mean, exactly as a zero standard deviation does."""
    X = np.column_stack([np.full(10, 0.1), np.full(10, 1e6 + 0.1), np.arange(10.0)])
    layer = bp.Standardize(3, dtype="float64").adapt(X)
    assert np.array_equal(layer.buffers["scale"][:2], [1.0, 1.0])
    assert np.array_equal(layer.forward(X)[:, :2], np.zeros((10, 2)))
    assert np.allclose(layer.forward(np.array([[0.2, 1e6 + 0.2, 4.5]])), [[0.1, 0.1, 0.0]])
    assert layer.config()["scale"] == [1.0, 1.0, X[:, 2].std()]


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), r"X must be finite, column 1 is not"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), r"X must be finite, column 1 is not"),
        (np.zeros((0, 2)), r"needs at least one sample"),
        (np.array([[1e200, 0.0], [-1e200, 1.0]]), r"X must be finite, column 0 is not"),
    ],
)
def test_standardize_adapt_refuses_bad_data_and_keeps_its_statistics(X, match):
    """adapt on data with a NaN set the mean to NaN, then failed on the *scale* ('scale must be
    finite'): the layer kept the NaN mean, and a model built from it predicted NaN everywhere."""
    layer = bp.Standardize(2, mean=[1.0, 2.0], scale=[3.0, 4.0])
    with pytest.raises(ValueError, match=match):
        layer.adapt(X)
    assert layer.config() == {
        "n_features": 2,
        "inverse": False,
        "mean": [1.0, 2.0],
        "scale": [3.0, 4.0],
    }
    model = bp.Sequential([layer, bp.Dense(1)], dtype="float64", seed=0)
    assert np.array_equal(model.buffers()["0.mean"], [1.0, 2.0])


def test_statistics_loaded_into_a_standardize_are_its_statistics(rng):
    """load_state_dict wrote the statistics into the buffers, but the layer's config kept the
    constructor's (the identity), and a new Sequential around the same layers (a new head on a
    loaded trunk) put the identity back: its predictions silently lost the standardization."""
    X = rng.normal(5.0, 3.0, size=(30, 4))
    fitted = bp.Sequential([bp.Standardize(4).adapt(X), bp.Dense(2)], seed=0)
    model = bp.Sequential([bp.Standardize(4), bp.Dense(2)], seed=1)
    model.load_state_dict(fitted.state_dict())
    stats = fitted.layers[0].buffers
    assert model.layers[0].config()["mean"] == stats["mean"].astype(np.float64).tolist()
    trunk = bp.Sequential([model.layers[0], bp.Dense(2)], seed=0)
    assert np.array_equal(trunk.buffers()["0.mean"], stats["mean"])
    assert np.array_equal(trunk.buffers()["0.scale"], stats["scale"])


@pytest.mark.parametrize("dtype", ["int32", "float16", "banana"])
def test_standardize_takes_the_float_dtypes_every_layer_takes(dtype):
    """dtype='int32' truncated mean 0.5 to 0 and scale 2.5 to 2 (ones came out as 0.5, not
    0.2); 'float16' was kept; 'banana' gave NumPy's TypeError. LayerNorm and BatchNorm refuse
    all three with the model's message."""
    with pytest.raises(ValueError, match=f"dtype must be 'float32' or 'float64', got '{dtype}'"):
        bp.Standardize(2, mean=[0.5, 0.5], scale=[2.5, 2.5], dtype=dtype)


def test_standardize_adapt_makes_no_float64_copy_of_float32_data(tmp_path):
    # adapt converted X to float64 before mean_and_scale (which reduces without that copy): a
    # float32 memmap of MNIST's size peaked at 4x its bytes (the copy, then std's temporary)
    import tracemalloc

    X = np.random.default_rng(0).normal(3.0, 2.0, size=(20_000, 25)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    Xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    exact = bp.Standardize(25, dtype="float64").adapt(X.astype(np.float64))
    tracemalloc.start()
    layer = bp.Standardize(25, dtype="float64").adapt(Xm)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2.5 * X.nbytes, f"peak {peak / X.nbytes:.1f}x the data"
    for key in ("mean", "scale"):  # the same float64 statistics as from a float64 copy
        np.testing.assert_array_equal(layer.buffers[key], exact.buffers[key], err_msg=key)


def test_standardize_statistics_a_float32_model_cannot_hold_are_refused():
    # scale=1e300 became inf in a float32 model (x / inf = 0 for every input) and 1e-50 became
    # 0, with only NumPy's overflow warning, where load_state_dict refuses the same values
    for scale in (1e300, 1e-50):
        with pytest.raises(ValueError, match=r"Standardize scale .* out of float32's range"):
            bp.Sequential([bp.Standardize(2, scale=scale), bp.Dense(1)], input_shape=(2,))
    wide = bp.Sequential(
        [bp.Standardize(2, scale=1e300), bp.Dense(1)], input_shape=(2,), dtype="float64"
    )
    assert wide.layers[0].buffers["scale"].tolist() == [1e300, 1e300]  # float64 holds it
    model = bp.Sequential([bp.Standardize(2), bp.Dense(1)], input_shape=(2,))
    with pytest.raises(ValueError, match=r"Standardize mean .* out of float32's range"):
        model.layers[0].adapt(np.array([[0.0, 0.0], [1e39, 1.0]]))
    assert model.layers[0].buffers["scale"].tolist() == [1.0, 1.0]  # unchanged
