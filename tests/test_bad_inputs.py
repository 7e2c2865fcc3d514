"""The bad-input catalogue: every entry raises the right exception type, with a message that
names the offending value, and leaves the caller's arrays exactly as they were."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import backprop as bp
from backprop.app.config import ConfigError, build_trainer, load_config
from backprop.io import ModelFileError

ROOT = Path(__file__).resolve().parent.parent
RNG = np.random.default_rng(0)
X4 = RNG.normal(size=(30, 4))
Y2 = np.arange(30) % 2
Y3 = np.arange(30) % 3


def with_nan():
    X = X4.copy()
    X[3, 2] = np.nan
    return X


def with_inf():
    X = X4.copy()
    X[0, 0] = np.inf
    return X


def clf(**kw):
    return bp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, **kw)


def fitted_clf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf().fit(X4, Y2)


def trainer(n_in=4, n_out=3, loss="cross_entropy", **kw):
    return bp.Trainer(bp.Sequential([bp.Dense(n_in, n_out)], seed=0), loss, "sgd", **kw)


def _fit_twice(t, X, y):
    t.fit(X, y, validation_split=0.2)
    t.fit(X[:-5], y[:-5], validation_split=0.2)  # other rows: the drawn split no longer fits


def saved_checkpoint(tmp_path):
    t = trainer(loss="mse", n_out=2, epochs=1)
    t.fit(X4, np.zeros((30, 2)))
    bp.save_checkpoint(tmp_path / "ckpt.npz", t)
    return tmp_path / "ckpt.npz"


def config_with(tmp_path, old, new):
    text = (ROOT / "configs" / "xor.toml").read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return path


# (id, callable(arrays, tmp_path), exception type, message pattern); `arrays` is a dict of the
# caller's arrays that the call receives and must leave unchanged.
CASES = [
    # -- estimators ---------------------------------------------------------------------------
    (
        "est-nan",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "NaN",
        {"X": with_nan(), "y": Y2},
    ),
    (
        "est-inf",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "infinity",
        {"X": with_inf(), "y": Y2},
    ),
    (
        "est-1d",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "Expected 2D array",
        {"X": X4[:, 0].copy(), "y": Y2},
    ),
    (
        "est-empty",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "0 sample",
        {"X": np.empty((0, 4)), "y": np.empty(0)},
    ),
    (
        "est-strings",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "could not convert",
        {"X": np.array([["a", "b"]] * 30), "y": Y2},
    ),
    (
        "est-complex",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        "Complex data",
        {"X": X4 + 1j, "y": Y2},
    ),
    (
        "est-y-length",
        lambda a, t: clf().fit(a["X"], a["y"]),
        ValueError,
        r"inconsistent numbers of samples: \[30, 29\]",
        {"X": X4, "y": Y2[:29]},
    ),
    (
        "est-neg-weight",
        lambda a, t: clf().fit(a["X"], a["y"], sample_weight=a["w"]),
        ValueError,
        "Negative values in data passed to sample_weight",
        {"X": X4, "y": Y2, "w": -np.ones(30)},
    ),
    (
        "est-weight-length",
        lambda a, t: clf().fit(a["X"], a["y"], sample_weight=a["w"]),
        ValueError,
        r"\(29,\)",
        {"X": X4, "y": Y2, "w": np.ones(29)},
    ),
    (
        "est-hidden",
        lambda a, t: bp.MLPClassifier((0,)).fit(a["X"], a["y"]),
        ValueError,
        r"hidden_layer_sizes must be > 0, got \(0,\)",
        {"X": X4, "y": Y2},
    ),
    (
        "est-lr",
        lambda a, t: clf(learning_rate_init=-1.0).fit(a["X"], a["y"]),
        ValueError,
        "learning_rate_init.*Got -1.0",
        {"X": X4, "y": Y2},
    ),
    (
        "est-solver",
        lambda a, t: clf(solver="foo").fit(a["X"], a["y"]),
        ValueError,
        "solver.*Got 'foo'",
        {"X": X4, "y": Y2},
    ),
    (
        "est-activation",
        lambda a, t: clf(activation="nope").fit(a["X"], a["y"]),
        ValueError,
        "activation.*Got 'nope'",
        {"X": X4, "y": Y2},
    ),
    (
        "est-alpha",
        lambda a, t: clf(alpha=-1.0).fit(a["X"], a["y"]),
        ValueError,
        "alpha.*Got -1.0",
        {"X": X4, "y": Y2},
    ),
    (
        "est-momentum",
        lambda a, t: clf(momentum=2.0).fit(a["X"], a["y"]),
        ValueError,
        "momentum.*Got 2.0",
        {"X": X4, "y": Y2},
    ),
    (
        "est-dropout",
        lambda a, t: clf(dropout=1.5).fit(a["X"], a["y"]),
        ValueError,
        "dropout.*1.5",
        {"X": X4, "y": Y2},
    ),
    (
        "est-predict-features",
        lambda a, t: fitted_clf().predict(a["X"]),
        ValueError,
        "X has 3 features, but MLPClassifier is expecting 4",
        {"X": X4[:, :3].copy()},
    ),
    ("est-unfitted", lambda a, t: clf().predict(a["X"]), NotFittedError, "not fitted", {"X": X4}),
    (
        "est-partial-classes",
        lambda a, t: clf().partial_fit(a["X"], a["y"]),
        ValueError,
        "classes must be passed",
        {"X": X4, "y": Y2},
    ),
    # -- trainer --------------------------------------------------------------------------------
    (
        "trainer-features",
        lambda a, t: trainer(3).fit(a["X"], a["y"]),
        ValueError,
        "X has 4 features, but the model expects 3",
        {"X": X4, "y": Y3},
    ),
    (
        "trainer-label-range",
        lambda a, t: trainer(4, 2).fit(a["X"], a["y"]),
        ValueError,
        "class label 2 out of range for 2",
        {"X": X4, "y": Y3},
    ),
    (
        "trainer-nan",
        lambda a, t: trainer().fit(a["X"], a["y"]),
        ValueError,
        "X contains NaN",
        {"X": with_nan(), "y": Y3},
    ),
    (
        "trainer-y-nan",
        lambda a, t: trainer(loss="mse", n_out=1).fit(a["X"], a["y"]),
        ValueError,
        "y contains NaN",
        {"X": X4, "y": np.where(Y2 > 0, np.nan, 0.0)},
    ),
    (
        "trainer-weights",
        lambda a, t: trainer().fit(a["X"], a["y"], sample_weight=a["w"]),
        ValueError,
        "non-negative",
        {"X": X4, "y": Y3, "w": -np.ones(30)},
    ),
    (
        "trainer-val-split",
        lambda a, t: trainer().fit(a["X"], a["y"], validation_split=1.5),
        ValueError,
        r"validation_split must be in \(0, 1\), got 1.5",
        {"X": X4, "y": Y3},
    ),
    ("trainer-mode", lambda a, t: trainer(mode="online"), ValueError, "got 'online'", {}),
    (
        "trainer-batch-size",
        lambda a, t: trainer(batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
        {},
    ),
    (
        "trainer-clip",
        lambda a, t: trainer(clip_norm=-1.0),
        ValueError,
        "clip_norm must be a positive number or None, got -1.0",
        {},
    ),
    ("trainer-loss", lambda a, t: trainer(loss="hinge"), ValueError, "unknown loss 'hinge'", {}),
    (
        "trainer-optimizer",
        lambda a, t: bp.Trainer(bp.Sequential([bp.Dense(2, 2)]), "mse", "adamx"),
        ValueError,
        "unknown optimizer 'adamx'",
        {},
    ),
    (
        "trainer-lr",
        lambda a, t: bp.Adam(lr=float("nan")),
        ValueError,
        "lr must be a finite number > 0, got nan",
        {},
    ),
    (
        "trainer-split-empty",  # 10 classes x 4 samples: a stratified 10% split has no rows
        lambda a, t: trainer(n_out=10).fit(a["X"], a["y"], validation_split=0.1),
        ValueError,
        r"validation_split=0.1 of 40 samples in 10 classes gives an empty validation set",
        {"X": RNG.normal(size=(40, 4)), "y": np.arange(40) % 10},
    ),
    (
        "trainer-split-moved",
        lambda a, t: _fit_twice(trainer(epochs=1), a["X"], a["y"]),
        ValueError,
        "drew its validation split for 30 samples",
        {"X": X4, "y": Y3},
    ),
    (
        "trainer-accuracy-regression",
        lambda a, t: trainer(loss="mse", metrics=["accuracy"]),
        ValueError,
        r"accuracy metric needs a classification loss \(one with a decision rule\); MeanSq",
        {},
    ),
    (
        "trainer-epochs-bool",
        lambda a, t: trainer(epochs=True),
        ValueError,
        "epochs must be a positive integer, got True",
        {},
    ),
    (
        "trainer-lbfgs-clip",
        lambda a, t: bp.Trainer(bp.Sequential([bp.Dense(4, 3)]), "mse", "lbfgs", clip_norm=1.0),
        ValueError,
        "clip_norm cannot apply to L-BFGS",
        {},
    ),
    (
        "trainer-lbfgs-dropout",
        lambda a, t: bp.Trainer(
            bp.Sequential([bp.Dense(4, 3), bp.Dropout(0.5)]), "mse", "lbfgs"
        ).fit(a["X"], a["y"]),
        ValueError,
        "L-BFGS cannot train a model with Dropout",
        {"X": X4, "y": RNG.normal(size=(30, 3))},
    ),
    (
        "trainer-plateau-beside-schedule",
        lambda a, t: trainer(schedule=bp.StepDecay(2), callbacks=[bp.ReduceLROnPlateau()]),
        ValueError,
        "ReduceLROnPlateau cannot share a run with schedule=",
        {},
    ),
    (
        "trainer-plateau-missing-key",
        lambda a, t: trainer(callbacks=[bp.ReduceLROnPlateau("val_acc")]).fit(
            a["X"], a["y"], validation_data=(a["X"], a["y"])
        ),
        KeyError,
        "ReduceLROnPlateau monitors 'val_acc', which is not in the epoch logs",
        {"X": X4, "y": Y3},
    ),
    (
        "est-plateau-without-validation",
        lambda a, t: clf(schedule=bp.ReduceLROnPlateau()).fit(a["X"], a["y"]),
        ValueError,
        "ReduceLROnPlateau monitors 'val_loss' but fit got no validation data",
        {"X": X4, "y": Y3},
    ),
    (
        "est-balanced-partial-fit",
        lambda a, t: clf(class_weight="balanced").partial_fit(a["X"], a["y"], classes=[0, 1, 2]),
        ValueError,
        "class_weight='balanced' is not supported by partial_fit",
        {"X": X4[Y3 != 2], "y": Y3[Y3 != 2]},
    ),
    # -- layers and models ----------------------------------------------------------------------
    (
        "dense-size",
        lambda a, t: bp.Dense(0, 3),
        ValueError,
        "in_features must be a positive integer, got 0",
        {},
    ),
    (
        "dense-features",
        lambda a, t: bp.Dense(4, 2).forward(a["X"]),
        ValueError,
        "expected 4 features, got 3",
        {"X": X4[:, :3].astype(np.float32)},
    ),
    (
        "dropout-rate",
        lambda a, t: bp.Dropout(1.0),
        ValueError,
        r"drop_rate must be in \[0, 1\), got 1.0",
        {},
    ),
    (
        "batchnorm-momentum",
        lambda a, t: bp.BatchNorm(3, momentum=1.5),
        ValueError,
        "momentum must be in",
        {},
    ),
    (
        "model-dtype",
        lambda a, t: bp.Sequential([bp.Dense(2, 2)], dtype="float16"),
        ValueError,
        "dtype must be 'float32' or 'float64', got 'float16'",
        {},
    ),
    (
        "model-mismatch",
        lambda a, t: bp.Sequential([bp.Dense(4, 6), bp.Dense(5, 2)]),
        ValueError,
        r"layer 1 \(Dense\) expects 5 features but layer 0 \(Dense\) outputs 6",
        {},
    ),
    (
        "model-object",
        lambda a, t: bp.Sequential([bp.Dense(2, 2)]).forward(a["X"]),
        ValueError,
        "real numbers, got dtype object",
        {"X": np.array([[None, None]], dtype=object)},
    ),
    (
        "model-state",
        lambda a, t: bp.Sequential([bp.Dense(2, 2)]).load_state_dict(
            {"0.W": a["W"], "0.b": np.zeros(2)}
        ),
        ValueError,
        r"0.W: expected shape \(2, 2\), got \(3, 2\)",
        {"W": np.zeros((3, 2))},
    ),
    (
        "loss-shape",
        lambda a, t: bp.MeanSquaredError().forward(a["p"], a["y"]),
        ValueError,
        r"y_true has shape \(4, 2\), y_pred has shape \(4, 3\)",
        {"p": np.zeros((4, 3)), "y": np.zeros((4, 2))},
    ),
    (
        "model-f32-range",
        lambda a, t: bp.Sequential([bp.Dense(4, 2)]).predict(a["X"]),
        ValueError,
        r"X holds a value of magnitude 1e\+39, beyond the range of the model's float32",
        {"X": np.where(X4 > 2, -1e39, X4)},
    ),
    (
        "trainer-f32-range",
        lambda a, t: trainer().fit(a["X"], a["y"]),
        ValueError,
        "beyond the range of the model's float32 .*use a float64 model",
        {"X": np.where(X4 > 2, 1e39, X4), "y": Y3},
    ),
    (
        "gradcheck-max-entries",
        lambda a, t: bp.check_gradients(
            trainer().model, bp.SoftmaxCrossEntropy(), a["X"], a["y"], max_entries=0
        ),
        ValueError,
        "max_entries must be a positive integer or None .*got 0",
        {"X": X4, "y": Y3},
    ),
    *[
        (
            f"gradcheck-{name}={value}",
            # eps=0 and rtol=0 raised ZeroDivisionError; a negative eps or penalty passed
            lambda a, t, kw=kw: bp.check_gradients(
                trainer().model, bp.SoftmaxCrossEntropy(), a["X"], a["y"], **kw
            ),
            ValueError,
            f"{name} must be a finite number .*got {value}",
            {"X": X4, "y": Y3},
        )
        for name, value, kw in [
            ("eps", 0, {"eps": 0}),
            ("eps", -1e-06, {"eps": -1e-6}),
            ("rtol", 0, {"rtol": 0}),
            ("atol", -1, {"atol": -1}),
            ("l2", -0.1, {"l2": -0.1}),
            ("l1", "nan", {"l1": float("nan")}),
        ]
    ],
    (
        "gradcheck-nan",
        # the report said SOME GRADIENTS DISAGREE, with NaN errors: a bug in backprop, it read
        lambda a, t: bp.check_gradients(trainer().model, bp.SoftmaxCrossEntropy(), a["X"], a["y"]),
        ValueError,
        r"the loss is nan on this batch .*nothing to compare",
        {"X": np.where(np.arange(4) == 2, np.nan, X4), "y": Y3},
    ),
    (
        "gradcheck-empty",
        lambda a, t: bp.check_gradients(trainer().model, bp.SoftmaxCrossEntropy(), a["X"], a["y"]),
        ValueError,
        r"X must hold at least one sample, got shape \(0, 4\)",
        {"X": X4[:0].copy(), "y": Y3[:0].copy()},
    ),
    # -- files ----------------------------------------------------------------------------------
    ("io-directory", lambda a, t: bp.load(t), ModelFileError, "is a directory, not a model", {}),
    (
        "io-checkpoint",
        lambda a, t: bp.load(saved_checkpoint(t)),
        ModelFileError,
        r"ckpt.npz: is a training checkpoint.*bp.load_checkpoint\(path, trainer\)",
        {},
    ),
    # -- configs and the command line -----------------------------------------------------------
    (
        "config-prefix-once",
        lambda a, t: build_trainer(
            load_config(ROOT / "configs/xor.toml", ["optimizer.lr=-1"]), trainer().model, []
        ),
        ConfigError,
        r"^[^:]*xor.toml \(--set optimizer.lr=-1\): \[optimizer\]: lr must be a finite number > 0, "
        r"got -1.0$",
        {},
    ),
    (
        "config-key",
        lambda a, t: load_config(config_with(t, "epochs = 300", "epochz = 3")),
        ConfigError,
        "unknown key trainer.epochz; allowed keys in \\[trainer\\]",
        {},
    ),
    (
        "config-layer",
        lambda a, t: load_config(config_with(t, '"Tanh"', '"Tanhh"')),
        ConfigError,
        "unknown layer type 'Tanhh'",
        {},
    ),
    (
        "config-set-type",
        lambda a, t: load_config(ROOT / "configs/xor.toml", ["trainer.epochs=abc"]),
        ConfigError,
        "trainer.epochs: expected an integer, got 'abc'",
        {},
    ),
    (
        "config-set-section",
        lambda a, t: load_config(ROOT / "configs/xor.toml", ["nope.x=1"]),
        ConfigError,
        "unknown section 'nope'",
        {},
    ),
    (
        "config-missing",
        lambda a, t: load_config(t / "missing.toml"),
        ConfigError,
        "config file not found: .*missing.toml",
        {},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error_and_changes_nothing(case, tmp_path):
    _, call, exc_type, pattern, arrays = case
    arrays = {k: v.copy() for k, v in arrays.items()}
    before = {k: v.copy() for k, v in arrays.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc_type, match=pattern):
            call(arrays, tmp_path)
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_the_catalogue_is_broad():
    assert len(CASES) >= 30
    groups = {c[0].split("-")[0] for c in CASES}
    assert {"est", "trainer", "dense", "model", "config"} <= groups


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "missing.toml"], "config file not found: missing.toml"),
        (["evaluate", "nomodel.npz", "--data", "digits"], "model file not found: nomodel.npz"),
        (["train"], "train needs a CONFIG (or --resume RUN_DIR)"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "--resume", "gone"], "--resume gone: run directory not found"),
        (["gradcheck", "x.toml", "--samples", "-3"], "must be a positive integer, got '-3'"),
        (["gradcheck", "x.toml", "--max-entries", "0"], "must be a positive integer, got '0'"),
    ],
)
def test_command_line_usage_errors_exit_2_with_a_message(
    argv, message, capsys, tmp_path, monkeypatch
):
    from backprop.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_sparse_values_beyond_float32_are_named_too():
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(np.where(X4 > 2, 1e39, 0.0))
    message = "X holds a value of magnitude 1e\\+39, beyond the range of the model's float32"
    with pytest.raises(ValueError, match=message):
        trainer(loss="mse", n_out=1).fit(X, np.zeros(30))
    with pytest.raises(ValueError, match=message):
        bp.Sequential([bp.Dense(4, 2)]).predict(X)


def test_a_gradient_check_of_nothing_is_not_a_pass():
    model = bp.Sequential([bp.Dense(4, 3)], seed=0)
    model.layers[0].trainable = False
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X4, Y3, check_input=False)
    assert not report.passed and "NOTHING WAS CHECKED" in str(report)
    report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X4, Y3)  # dL/dX is checked
    assert report.passed and report["input"].n_checked == X4.size


def test_one_class_targets_follow_scikit_learn():
    """Not an error, as in scikit-learn: a one-class classifier predicts that class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = clf().fit(X4, np.full(30, 7))
    assert set(model.predict(X4)) == {7}
