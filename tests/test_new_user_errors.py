"""What a new user hits first: a mistyped config key or a misused layer must give an error that
names the bad value and the place, never a traceback or a silent no-op."""

from __future__ import annotations

import re

import numpy as np
import pytest

import backprop as bp
from backprop.app.cli import main

CONFIG = """\
[data]
source = "classification"
n_samples = 120
validation_size = 0.2

[[model.layers]]
type = "Dense"
out_features = 4
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[trainer]
epochs = 2

[output]
plots = false
gradient_monitor = false
"""


def run_cli(tmp_path, capsys, *overrides: str) -> tuple[int, str]:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    args = ["train", str(config), "--out", str(tmp_path / "run"), "--quiet", "--force"]
    for item in overrides:
        args += ["--set", item]
    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("monitor", ["val_los", "val_acc", "accuracy_val"])
def test_a_misspelled_early_stopping_monitor_is_a_config_error(tmp_path, capsys, monitor):
    code, err = run_cli(tmp_path, capsys, f"early_stopping.monitor={monitor}")
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert f"early_stopping.monitor = {monitor!r}" in err and "val_accuracy" in err, err
    assert not (tmp_path / "run").exists()  # refused before anything trained


def test_every_logged_monitor_is_still_accepted(tmp_path, capsys):
    for monitor in ("loss", "val_loss", "accuracy", "val_accuracy"):
        code, err = run_cli(tmp_path, capsys, f"early_stopping.monitor={monitor}")
        assert code == 0, err


@pytest.mark.parametrize("sparsity", ["1.5", "-0.5"])
def test_a_bad_pruning_sparsity_names_the_config_key(tmp_path, capsys, sparsity):
    code, err = run_cli(tmp_path, capsys, f"pruning.sparsity={sparsity}")
    assert code == 2 and "Traceback" not in err, err
    assert f"pruning.sparsity must be in [0, 1), got {sparsity}" in err, err


def test_pruning_an_unbuilt_model_is_refused_not_silently_skipped():
    model = bp.Sequential([bp.Dense(3), bp.ReLU(), bp.Dense(2)], seed=0)
    with pytest.raises(ValueError, match="not built"):
        bp.pruning.prune(model, 0.5)
    with pytest.raises(ValueError, match="not built"):
        bp.pruning.compute_mask(model, 0.5)
    model.build((4,))
    assert bp.pruning.prune(model, 0.5).mean() == pytest.approx(0.5, abs=0.05)


X3 = np.zeros((2, 5, 3), np.float32)
X4 = np.zeros((2, 6, 6, 1), np.float32)


@pytest.mark.parametrize(
    "layer, x",
    [
        (bp.Conv2D(2, 3), X4),
        (bp.Conv1D(2, 3), X3),
        (bp.RNN(2), X3),
        (bp.LSTM(2), X3),
        (bp.GRU(2), X3),
        (bp.MultiHeadSelfAttention(2, 2), X3),
        (bp.LearnedPositionalEncoding(), X3),
        (bp.Embedding(4, 2), np.zeros((2, 5), np.int64)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, np.ndarray) else "",
)
def test_a_layer_used_before_it_has_parameters_says_how_to_give_it_some(layer, x):
    name = type(layer).__name__
    with pytest.raises(RuntimeError, match=f"{name} has no parameters yet"):
        layer.forward(x)
    layer.initialize(x.shape[1:], dtype="float32")  # what the message says to do
    assert layer.forward(x).shape[0] == 2


@pytest.mark.parametrize(
    "layers, input_shape, bad",
    [
        ([bp.Conv2D(2, 3)], (8, 8, 3), (2, 12, 12, 3)),
        ([bp.LSTM(2)], (10, 3), (2, 12, 3)),
    ],
)
def test_data_of_the_right_rank_but_wrong_size_is_not_called_the_wrong_rank(
    layers, input_shape, bad
):
    model = bp.Sequential(layers, input_shape=input_shape, seed=0)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros(bad, np.float32))
    message = str(info.value)
    assert f"must be {len(bad)}-D" not in message, message  # it is that many dimensions
    assert str(bad) in message and str(input_shape)[1:-1] in message, message


@pytest.mark.parametrize(
    "source, key, value",
    [
        ("mnist", "n_train", -5),
        ("adding", "n_samples", -3),
        ("adding", "n_samples", 0),
        ("xor", "n_samples", -4),  # said "classification needs 2 classes or more in y, got only []"
        ("xor", "noise", -0.5),  # trained: a negative standard deviation, silently
    ],
)
def test_a_negative_data_size_is_refused_and_named(
    tmp_path, capsys, monkeypatch, source, key, value
):
    from backprop.app import datasets

    def fake_mnist(path=None):  # the real loader needs data/mnist.npz; the sizes are what count
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, size=(40, 784)).astype(np.uint8)
        return X, np.arange(40) % 10, X[:20], np.arange(20) % 10

    monkeypatch.setattr(datasets, "load_mnist", fake_mnist)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nsource = "{source}"\n{key} = {value}\n[[model.layers]]\ntype = "Dense"\n'
    )
    loss = "mse" if source == "adding" else "cross_entropy"
    code = main(["train", str(config), "--set", f"loss.name={loss}", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"{key} must be" in err and f"got {value}" in err, err


def test_every_option_of_every_command_has_a_help_line():
    import argparse

    from backprop.app.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.dest}"
        for name, command in sub.choices.items()
        for action in command._actions
        if action.help is None
    ]
    assert len(sub.choices) >= 10 and missing == []


def test_a_model_that_cannot_take_the_data_is_not_blamed_on_the_loss(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nsource = "digits"\n[loss]\nname = "cross_entropy"\n'
        '[[model.layers]]\ntype = "Embedding"\nvocab_size = 17\ndim = 4\n'
        '[[model.layers]]\ntype = "SequencePool"\n[[model.layers]]\ntype = "Dense"\n'
    )
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "[model] cannot take the data: Embedding expects integer ids" in err, err
    assert "loss.name" not in err, err


@pytest.mark.parametrize("layers", ["Dense", {"type": "Dense"}])
def test_residual_given_one_layer_instead_of_a_list_names_it(layers):
    with pytest.raises(TypeError, match="Residual takes a list of layers, got"):
        bp.Residual(layers)


SEQUENCE = """\
[data]
source = "file"
path = "{path}"
validation_size = 0.0
standardize = false

[[model.layers]]
type = "GRU"
units = 4
[[model.layers]]
type = "Dense"

[loss]
name = "cross_entropy"

[trainer]
epochs = 1

[early_stopping]
enabled = false

[output]
plots = false
gradient_monitor = false
"""


def test_predict_takes_sequences_as_npy_or_as_flat_csv_rows(tmp_path, capsys):
    """A sequence model trained by the command had no file `backprop predict` would take:
    .npy had to be 2-D and flat rows were refused for the (t, features) model."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5, 3)).astype(np.float32), np.arange(40) % 2
    np.savez(tmp_path / "train.npz", X=X, y=y)
    (tmp_path / "c.toml").write_text(SEQUENCE.format(path=tmp_path / "train.npz"))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "c.toml"), "--out", str(run), "--quiet"]) == 0
    expected = bp.load(run / "model.npz").predict(X[:6]).argmax(axis=1)
    np.save(tmp_path / "seq.npy", X[:6])
    flat = tmp_path / "flat.csv"
    flat.write_text("\n".join(",".join(map(repr, row)) for row in X[:6].reshape(6, -1).tolist()))
    for name in ("seq.npy", "flat.csv"):
        out = tmp_path / f"{name}.pred.npy"
        code = main(["predict", str(run / "model.npz"), str(tmp_path / name), "--output", str(out)])
        assert code == 0, capsys.readouterr().err
        assert np.array_equal(np.load(out), expected)
    np.save(tmp_path / "wrong.npy", X[:6].transpose(0, 2, 1))  # (n, 3, 5): never reshaped
    code = main(
        ["predict", str(run / "model.npz"), str(tmp_path / "wrong.npy"), "--output", str(out)]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and "the model expects samples of shape (5, 3), the input has shape (6, 3, 5)" in err
    )


def test_estimator_shape_errors_name_shapes_not_an_images_height_as_features():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4, 4, 1)), np.arange(20) % 2
    clf = bp.NeuralNetClassifier([bp.Conv2D(2, 3), bp.Flatten()], epochs=1, random_state=0)
    clf.fit(X, y)
    for bad in (rng.normal(size=(3, 5, 5, 1)), rng.normal(size=(3, 16))):
        with pytest.raises(ValueError) as info:
            clf.predict(bad)
        message = str(info.value)
        assert "features" not in message, message  # scikit-learn's: "X has 5 features, ... 4"
        assert f"samples of shape {bad.shape[1:]}" in message and "(4, 4, 1)" in message


def test_sequences_of_another_length_are_named_as_shapes_in_warm_fits_and_lists():
    """A warm_start fit, and X given as nested lists, went through scikit-learn's check, which
    spoke of "2 features" for sequences of length 2 (the length counted as features)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3, 4)), np.arange(20) % 2
    clf = bp.NeuralNetClassifier([bp.RNN(5)], epochs=1, random_state=0).fit(X, y)
    short = X[:, :2]
    calls = [
        lambda: clf.predict(short.tolist()),
        lambda: clf.set_params(warm_start=True).fit(short, y),
        lambda: clf.set_params(warm_start=True).fit(short.tolist(), y),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "features" not in message, message
        assert (
            "samples of shape (2, 4), but NeuralNetClassifier was fitted on samples of "
            in (message)
            and "(3, 4)" in message
        )
    assert clf.set_params(warm_start=True).fit(X.tolist(), y).n_iter_ == 2  # the right shape


@pytest.mark.parametrize("layers", [bp.Dense(3), "Dense"])
def test_an_estimator_given_one_layer_instead_of_a_list_says_so(layers):
    clf = bp.NeuralNetClassifier(layers, epochs=1)
    with pytest.raises(TypeError, match="NeuralNetClassifier: layers must be a list of layers"):
        clf.fit(np.zeros((4, 2)), [0, 1, 0, 1])


@pytest.mark.parametrize(
    "change", ["data.seed=7", "data.test_size=0.5", "model.dtype=float64", "trainer.seed=3"]
)
def test_a_resume_cannot_change_the_runs_data_or_model(tmp_path, capsys, change):
    """A resumed run with another data.seed trained its last epochs on a new split (test rows
    moved into training) and recorded the new seed as the whole run's: refused now."""
    code, err = run_cli(tmp_path, capsys)
    assert code == 0, err
    run = tmp_path / "run"
    before = (run / "config.toml").read_text(), (run / "model.npz").read_bytes()
    args = ["train", "--resume", str(run), "--quiet", "--set", "trainer.epochs=3"]
    code = main([*args, "--set", change])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert (
        f"the run's data, model, optimizer and seed cannot change ({change.split('=')[0]}: " in err
    )
    assert ((run / "config.toml").read_text(), (run / "model.npz").read_bytes()) == before
    assert main([*args, "--set", "optimizer.lr=0.0005"]) == 0  # training settings may change


_multi_hot = (np.random.default_rng(0).random((50, 3)) > 0.5).astype(np.int64)
_one_label = "one label per row, not y of shape (50, 3) (multi-label rows: bp.MLPClassifier"
_both_tasks = ("classification", "auto")


@pytest.mark.parametrize(
    "arrays, task, message",
    [
        (
            {"X": np.ones((50, 3)), "y": np.arange(40) % 2},
            "auto",
            "X has 50 rows but the target 40",
        ),
        ({"X": np.full((50, 3), np.nan), "y": np.arange(50) % 2}, "auto", "X holds nan at row 1"),
        ({"X": np.ones((50, 3)), "y": np.zeros(50)}, "auto", "needs 2 classes or more in y"),
        ({"X": np.ones((50, 3)), "y": np.arange(50) % 2}, "classify", "data.task must be auto"),
        # several 0/1 columns (multi-label rows) died with an IndexError in the test split:
        # np.unique made a "label" of every cell, 3 per row
        *[({"X": np.ones((50, 4)), "y": _multi_hot}, t, _one_label) for t in _both_tasks],
    ],
    ids=["short-y", "nan", "one-class", "task", "multi-label-classification", "multi-label-auto"],
)
def test_a_data_file_the_run_cannot_use_is_refused_before_training(
    tmp_path, capsys, arrays, task, message
):
    """A y shorter than X raised IndexError (a traceback, exit 1); one class trained and then
    failed writing the model; an unknown task was taken as a task named 'classify'."""
    np.savez(tmp_path / "d.npz", **arrays)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nsource = "file"\npath = "{tmp_path / "d.npz"}"\ntask = "{task}"\n'
        '[loss]\nname = "cross_entropy"\n[[model.layers]]\ntype = "Dense"\n'
    )
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and message in err, err
    assert not (tmp_path / "r").exists()


def test_landscape_of_a_run_without_a_trajectory_draws_what_it_can(tmp_path, capsys):
    """The default run (output.trajectory = false) made `backprop landscape` crash with
    UnboundLocalError instead of drawing the 1-D and 2-D figures and saying how to get the path."""
    code, err = run_cli(tmp_path, capsys)
    assert code == 0, err
    run = tmp_path / "run"
    assert not (run / "trajectory.npy").exists()
    assert main(["landscape", str(run), "--points", "3", "--samples", "50"]) == 0
    out = capsys.readouterr().out
    assert "no trajectory.npy in the run" in out
    assert (run / "figures" / "landscape_1d.png").is_file()
    assert (run / "figures" / "landscape_2d.png").is_file()


def test_a_channel_mismatch_shows_both_sample_shapes():
    model = bp.Sequential([bp.Conv2D(4, 3)], input_shape=(8, 8, 3), seed=0)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros((2, 8, 8, 2), np.float32))
    assert "expected 3 features, got 2 (samples of shape (8, 8, 3), got (8, 8, 2))" in str(
        info.value
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: bp.GRU(4, return_sequences="no"), "return_sequences must be True or False"),
        (lambda: bp.MultiHeadSelfAttention(2, 4, causal="no"), "causal must be True or False"),
        (lambda: bp.Embedding(9, 4, mask_zero="no"), "mask_zero must be True or False"),
        (lambda: bp.SequenceCrossEntropy(ignore_index=0.5), "ignore_index must be an integer"),
        (lambda: bp.Standardize(3, inverse="no"), "inverse must be True or False"),
        (lambda: bp.LSTM(4, forget_bias="one"), "forget_bias must be a finite number"),
        (lambda: bp.Masking("x"), "mask_value must be a non-NaN number, got 'x'"),
    ],
)
def test_sequence_layer_flags_are_not_coerced(make, message):
    """bool('no') is True and int(0.5) is 0: return_sequences="no" returned sequences and
    ignore_index=0.5 silently ignored every label 0."""
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_a_network_that_ends_with_image_axes_is_told_to_flatten():
    X, y = np.random.default_rng(0).normal(size=(30, 4, 4, 1)), np.arange(30) % 3
    model = bp.Sequential([bp.Conv2D(3, 3)], input_shape=(4, 4, 1), seed=0)  # no Flatten
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(), epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"got shape \(\d+, 2, 2, 3\); .* end it with Flatten"):
        trainer.fit(X, y)


@pytest.mark.parametrize(
    "inner, message",
    [
        ({"type": "Dense", "units": 8}, "Residual layer 0: unknown key(s) ['units'] for Dense"),
        ({"type": "Dense", "trainable": "no"}, "trainable must be true or false, got 'no'"),
        ({"type": "Dens"}, "Residual layer 0: unknown layer type 'Dens'"),
    ],
)
def test_a_nested_layer_table_names_its_bad_key(inner, message):
    """Inside a Residual the top level's checks did not reach: 'Dense.__init__() got an
    unexpected keyword argument' and trainable = "no" read as True."""
    with pytest.raises(ValueError, match=re.escape(message)):
        bp.Residual([inner])


def test_a_layer_class_or_a_sequential_in_a_list_of_layers_says_what_to_give():
    """`Sequential([bp.Dense, ...])` and a Sequential nested in a Sequential or a Residual were
    refused as "not a backprop Layer" or "malformed entry ... (a table with a type is
    needed)", which does not say to call the class or to give the model's layers."""
    inner = bp.Sequential([bp.Dense(3)])
    with pytest.raises(TypeError, match=r"the class itself: make a layer, Dense\(\.\.\.\)"):
        bp.Sequential([bp.Dense, bp.ReLU()])
    with pytest.raises(ValueError, match=r"Residual layer 0: .*make a layer, ReLU\(\.\.\.\)"):
        bp.Residual([bp.ReLU])
    for build in (lambda: bp.Sequential([inner, bp.Dense(2)]), lambda: bp.Residual([inner])):
        with pytest.raises((TypeError, ValueError), match=r"give its layers, model\.layers"):
            build()


def test_a_missing_data_file_names_the_config_line_and_where_it_was_looked_for(
    tmp_path, capsys, monkeypatch
):
    """A data file next to its config, `path = "d.npz"`, run from another folder said only
    "data file not found: d.npz": not which config or line, nor that a relative path is read
    from the working directory (not the config's folder)."""
    (tmp_path / "cfg").mkdir()
    np.savez(tmp_path / "cfg" / "d.npz", X=np.ones((40, 3)), y=np.arange(40) % 2)
    config = tmp_path / "cfg" / "c.toml"
    config.write_text(
        '[data]\nsource = "file"\npath = "d.npz"\n[loss]\nname = "cross_entropy"\n'
        '[[model.layers]]\ntype = "Dense"\n'
    )
    monkeypatch.chdir(tmp_path)
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert f"{config}, line 3: data file not found: d.npz" in err, err
    assert f"working directory {tmp_path}" in err, err
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--set", "data.path=e.csv"])
    err = capsys.readouterr().err
    assert code == 2 and "--set data.path=e.csv: data file not found: e.csv" in err, err
    monkeypatch.chdir(tmp_path / "cfg")  # from the config's folder the same config trains
    assert main(["train", "c.toml", "--out", str(tmp_path / "r"), "--quiet"]) == 0


@pytest.mark.parametrize(
    "width, loss, needs",
    [
        (5, "cross_entropy", "needs 10 (10 classes;"),  # trained, then failed: exit 1
        (12, "cross_entropy", "needs 10 (10 classes;"),  # trained, then refused at the save
        (
            2,
            "binary_cross_entropy",
            "needs 1 (2 classes; binary cross-entropy takes one logit",
        ),  # 2 classes: one logit
    ],
)
def test_a_last_layer_of_the_wrong_width_is_refused_before_training(
    tmp_path, capsys, width, loss, needs
):
    """`out_features = 5` on the 10 digit classes passed the loss check (its two sample labels
    were below 5) and failed mid-training, "class label 6 out of range" (exit 1); 12 trained to
    the end and then failed writing model.npz. Neither named the layer or its line."""
    source = "digits" if loss == "cross_entropy" else "xor"
    text = (
        f'[data]\nsource = "{source}"\n[loss]\nname = "{loss}"\n[[model.layers]]\n'
        f'type = "Dense"\nout_features = 8\n[[model.layers]]\ntype = "ReLU"\n'
        f'[[model.layers]]\ntype = "Dense"\nout_features = {width}\n'
    )
    if source == "xor":
        text = text.replace('"xor"\n', '"xor"\nn_samples = 40\n')
    config = tmp_path / "c.toml"
    config.write_text(text)
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    line = text.splitlines().index(f"out_features = {width}") + 1
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert f"{config}, line {line}: layer 2 (Dense) out_features = {width}" in err, err
    assert needs in err, err
    assert not (tmp_path / "r").exists()


def test_a_clip_factor_without_adaptive_clipping_is_refused_not_ignored(tmp_path, capsys):
    """`trainer.clip_factor = 0.1` without `clip_mode = "agc"` trained unclipped: the factor
    only bounds adaptive gradient clipping, and nothing said it was unused."""
    code, err = run_cli(tmp_path, capsys, "trainer.clip_factor=0.1")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "--set trainer.clip_factor=0.1: trainer.clip_factor = 0.1 does nothing" in err, err
    assert 'clip_mode = "agc"' in err, err
    assert not (tmp_path / "run").exists()
    code, err = run_cli(tmp_path, capsys, "trainer.clip_factor=0.1", "trainer.clip_mode=agc")
    assert code == 0, err


@pytest.mark.parametrize(
    "old, new, table, message",
    [
        (
            "out_features = 4\n",
            'out_features = 4\n[[model.layers]]\ntype = "Dropout"\ndrop_rate = 1.5\n',
            '[[model.layers]]\ntype = "Dropout"',
            "layer 1 (Dropout): drop_rate must be in [0, 1), got 1.5",
        ),
        (
            "[trainer]\n",
            "[optimizer]\nlr = -0.5\n[trainer]\n",
            "[optimizer]",
            "[optimizer]: lr must be a finite number > 0, got -0.5",
        ),
        (
            "[trainer]\n",
            "[early_stopping]\npatience = -1\n[trainer]\n",
            "[early_stopping]",
            "[early_stopping]: patience must be a non-negative integer, got -1",
        ),
    ],
)
def test_a_value_its_class_refuses_names_the_line_of_its_table(
    tmp_path, capsys, old, new, table, message
):
    """A value the layer, optimizer or callback refused (drop_rate = 1.5, lr = -0.5) was
    reported with the file's name only, where a wrong key or type names its line."""
    text = CONFIG.replace(old, new, 1)
    config = tmp_path / "c.toml"
    config.write_text(text)
    code = main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    line = text.index(table)
    line = text[:line].count("\n") + 1
    assert code == 2 and err.count("\n") == 1, err
    assert f"{config}, line {line}: {message}" in err, err


def test_a_pruning_schedule_that_ends_after_the_run_is_refused(tmp_path, capsys):
    """`pruning.sparsity = 0.9` with the default end_step = 1000 on a run of 6 updates ended
    at a fraction of the sparsity asked for, and neither the output nor metrics.json said so."""
    code, err = run_cli(tmp_path, capsys, "pruning.sparsity=0.9")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "pruning.end_step = 1000 is past the run's last update (6: 2 epochs of 3)" in err, err
    assert not (tmp_path / "run").exists()
    code, err = run_cli(tmp_path, capsys, "pruning.sparsity=0.9", "pruning.end_step=6")
    assert code == 0, err
    model = bp.load(tmp_path / "run" / "model.npz")
    assert model.sparsity()["total"] == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("width", ["", "out_features = 1\n"])
def test_a_guessed_task_that_does_not_fit_the_loss_points_to_data_task(tmp_path, capsys, width):
    """A file of ages (39 distinct whole numbers) under mse was refused as "a classification
    task; use cross_entropy", never saying the task was a guess that data.task overrides. With
    the regression's one output written out, the last layer's width was blamed instead ("the
    data needs 39 (39 classes)"): the task is checked first."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    np.savez(tmp_path / "ages.npz", X=X, y=np.round(40 + 10 * X[:, 0]))
    config = tmp_path / "c.toml"
    config.write_text(
        f'[data]\nsource = "file"\npath = "{tmp_path / "ages.npz"}"\n[[model.layers]]\n'
        f'type = "Dense"\n{width}[loss]\nname = "mse"\n'
    )
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and 'data.task = "regression"' in err, err
    args = ["--set", "data.task=regression", "--set", "trainer.epochs=1"]
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet", *args]) == 0


@pytest.mark.parametrize("mode", ["batch", "stochastic"])
def test_a_batch_size_its_mode_does_not_use_is_refused_not_ignored(tmp_path, capsys, mode):
    """`mode = "batch"` (every update takes all rows) or "stochastic" (one row) with
    `batch_size = 16` trained without a word that the batch size was not used."""
    code, err = run_cli(tmp_path, capsys, f"trainer.mode={mode}", "trainer.batch_size=16")
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert f"trainer.batch_size = 16 is not used with mode = '{mode}'" in err, err
    assert "--set trainer.batch_size=16" in err, err
    code, err = run_cli(tmp_path, capsys, f"trainer.mode={mode}")  # the default 32: a run's
    assert code == 0, err  # config.toml spells it out


def test_a_mode_given_by_set_overrides_the_files_batch_size(tmp_path):
    """`--set trainer.mode=batch` on a config written for minibatches (batch_size = 64) was
    refused for the file's batch_size, which only `--set trainer.batch_size=32` (the default,
    as no --set can leave a key out) got past; the file's size goes with the file's mode."""
    config = tmp_path / "c.toml"
    text = '[[model.layers]]\ntype = "Dense"\n[loss]\nname = "cross_entropy"\n'
    config.write_text(text + "[trainer]\nbatch_size = 64\nepochs = 1\n")
    run = tmp_path / "r"
    args = ["--set", "trainer.mode=batch", "--quiet"]
    assert main(["train", str(config), "--out", str(run), *args]) == 0
    assert 'mode = "batch"\nbatch_size = 32\n' in (run / "config.toml").read_text()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # its config.toml is taken


@pytest.mark.parametrize("name", ["cosine", "plateau"])
def test_a_schedule_floor_above_the_learning_rate_is_refused(tmp_path, capsys, name):
    """`min_lr = 0.1` under `lr = 0.001`: the cosine "decay" raised the rate a hundredfold over
    the run, and the plateau schedule set it to the floor at once, without a word."""
    sets = [f"schedule.name={name}", "schedule.min_lr=0.1", "optimizer.lr=0.001"]
    sets += ["schedule.total=2"] if name == "cosine" else []
    code, err = run_cli(tmp_path, capsys, *sets)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "--set schedule.min_lr=0.1: schedule.min_lr = 0.1 is above optimizer.lr = 0.001" in err
    code, err = run_cli(tmp_path, capsys, *[s.replace("0.1", "0.0001") for s in sets])
    assert code == 0, err  # a floor below the rate is what min_lr is for


@pytest.mark.parametrize(
    "source, loss, last",
    [("classification", "cross_entropy", "Softmax"), ("xor", "binary_cross_entropy", "Sigmoid")],
)
def test_a_network_that_squashes_its_logits_is_refused(tmp_path, capsys, source, loss, last):
    """A final Softmax under cross_entropy (or Sigmoid under binary_cross_entropy) trained
    silently on probabilities of probabilities: xor stayed at accuracy 0.5 (every output > 0 is
    class 1), digits reached loss 1.6 where 0.3 was usual. The estimators refuse it already."""
    text = (
        f'[data]\nsource = "{source}"\nn_samples = 120\n[loss]\nname = "{loss}"\n'
        '[[model.layers]]\ntype = "Dense"\nout_features = 4\n[[model.layers]]\ntype = "Dense"\n'
        f'[[model.layers]]\ntype = "{last}"\n'
    )
    config = tmp_path / "c.toml"
    config.write_text(text)
    code = main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    line = text.splitlines().index(f'type = "{last}"')  # its [[model.layers]] line
    assert code == 2 and err.count("\n") == 1, err
    assert f"{config}, line {line}: layer 2 ({last}) " in err and "logits" in err, err
    assert not (tmp_path / "r").exists()
