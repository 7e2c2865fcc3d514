"""The plotting API (lazy: importing backprop loads no matplotlib) and the monitors' figures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.app.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_importing_backprop_loads_no_matplotlib_until_a_plot():
    code = (
        "import sys, backprop as bp\n"
        "assert 'matplotlib' not in sys.modules, 'imported too early'\n"
        "fig = bp.plot_history({'loss': [1.0, 0.5], 'val_loss': [1.1, 0.7]})\n"
        "assert 'matplotlib' in sys.modules and len(fig.axes) == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_update_ratio_is_the_step_over_the_weights():
    X = np.random.default_rng(0).normal(size=(4, 3))
    model = bp.Sequential([bp.Dense(3, 2)], dtype="float64", seed=0)
    before = model.parameters()["0.W"].copy()
    monitor = bp.UpdateRatioMonitor()
    trainer = bp.Trainer(
        model, "mse", bp.SGD(lr=0.1), mode="batch", epochs=1, callbacks=[monitor], shuffle=False
    )
    history = trainer.fit(X, np.zeros((4, 2)))
    after = model.parameters()["0.W"]
    expected = np.linalg.norm(after - before) / np.linalg.norm(after)
    assert history["update_ratio/0.W"][0] == pytest.approx(expected, rel=1e-12)
    assert "update_ratio/0.b" not in history  # weights only


def test_monitors_report_no_gradient_or_update_for_a_frozen_layer(recwarn):
    # The trainer zeroes a frozen layer's gradient: a logged norm of 0 (and a "vanishing
    # gradients" warning about it) or an update ratio of 0 on the log-scale figure would report
    # what was not measured. Its columns are absent while frozen, NaN once it is unfrozen.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 5)), rng.integers(0, 3, 64)
    model = bp.Sequential([bp.Dense(5, 8), bp.ReLU(), bp.Dense(8, 3)], dtype="float64", seed=0)
    model.layers[0].trainable = False
    monitors = [bp.GradientMonitor(), bp.UpdateRatioMonitor()]
    trainer = bp.Trainer(model, "cross_entropy", "adam", epochs=2, seed=0, callbacks=monitors)
    history = trainer.fit(X, y)
    assert not [w for w in recwarn if "vanishing" in str(w.message)]
    for key in ("grad_norm/0.W", "grad_norm/0.b", "update_ratio/0.W"):
        assert key not in history
    assert history["grad_norm/2.W"][0] > 0 and history["update_ratio/2.W"][0] > 0
    model.layers[0].trainable = True
    history = trainer.fit(X, y, epochs=1)
    assert np.isnan(history["grad_norm/0.W"][:2]).all() and history["grad_norm/0.W"][2] > 0
    assert np.isnan(history["update_ratio/0.W"][:2]).all() and history["update_ratio/0.W"][2] > 0


def test_plot_api_draws_from_a_trained_model(rng):
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    model = bp.Sequential([bp.Dense(2, 8), bp.ReLU(), bp.Dense(8, 2)], dtype="float64", seed=0)
    rec = bp.ActivationRecorder(X[:40])
    trainer = bp.Trainer(
        model,
        "cross_entropy",
        "adam",
        epochs=3,
        seed=0,
        callbacks=[bp.GradientMonitor(), bp.UpdateRatioMonitor(), rec],
    )
    history = trainer.fit(X, y)
    figs = [
        bp.plot_history(history),
        bp.plot_gradient_norms(history),
        bp.plot_dead_relu(history),
        bp.plot_update_ratio(history),
        bp.plot_weights(model),
        bp.plot_activations(rec.start, rec.end),
        bp.plot_decision_boundary(model, X, y, points="training points"),
    ]
    assert all(f.axes for f in figs)
    assert set(rec.start) == {"1 ReLU"} and rec.end["1 ReLU"].size == 40 * 8
    boundary = figs[-1].axes[0]
    assert boundary.get_title().endswith("and the training points")
    with pytest.raises(ValueError, match="UpdateRatioMonitor"):
        bp.plot_update_ratio({"loss": [1.0]})


@pytest.mark.parametrize("loc", ["upper left"])
def test_no_point_hides_under_the_legend(loc):
    # XOR's four corners; 8 pixels of margin: a marker's radius
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    model = bp.Sequential([bp.Dense(2, 2)], dtype="float64", seed=0)
    fig = bp.plot_decision_boundary(model, X, y)
    ax = fig.axes[0]
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    shown = ax.transData.transform(X)
    inside = (shown[:, 0] >= box.x0 - 8) & (shown[:, 0] <= box.x1 + 8)
    inside &= (shown[:, 1] >= box.y0 - 8) & (shown[:, 1] <= box.y1 + 8)
    assert not inside.any(), f"legend {box} covers {X[inside]}"
    # the same check catches a legend inside the axes over the point (0, 1): it can fail
    ax.legend(title="class", loc=loc)
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    inside = (shown[:, 0] >= box.x0 - 8) & (shown[:, 0] <= box.x1 + 8)
    inside &= (shown[:, 1] >= box.y0 - 8) & (shown[:, 1] <= box.y1 + 8)
    assert inside.any()


@pytest.mark.slow
def test_run_directory_has_the_monitor_figures_and_honest_titles(tmp_path):
    xor = (ROOT / "configs" / "xor.toml").read_text()
    (tmp_path / "xor.toml").write_text(xor)
    assert (
        main(
            [
                "train",
                str(tmp_path / "xor.toml"),
                "--out",
                str(tmp_path / "x"),
                "--quiet",
                "--set",
                "trainer.epochs=20",
            ]
        )
        == 0
    )
    figures = {p.name for p in (tmp_path / "x" / "figures").iterdir()}
    assert {"update_ratio.png", "activations.png", "decision_boundary.png"} <= figures
    assert json.loads((tmp_path / "x" / "metrics.json").read_text())["test_is_training_data"]
    from backprop.app.plotting import _points_label

    assert _points_label(tmp_path / "x") == "training points"
    # the confusion matrix is of those training points too, and its title says so
    from backprop.app import plotting

    titles = []

    def confusion(*args, **kwargs):
        fig = fig_confusion(*args, **kwargs)
        titles.append(fig.axes[0].get_title())
        return fig

    fig_confusion = plotting.fig_confusion
    plotting.fig_confusion = confusion
    try:
        plotting.draw_run(tmp_path / "x")
    finally:
        plotting.fig_confusion = fig_confusion
    assert len(titles) == 1 and "training set" in titles[0] and "test" not in titles[0]


def test_plot_of_a_run_that_failed_in_its_first_epoch_draws_no_empty_figure(tmp_path, capsys):
    # training failed before an epoch ended: history.csv holds no row, and `backprop plot`
    # used to write an empty loss.png (no curve, an empty legend) and report it as drawn
    config = str(ROOT / "configs" / "digits.toml")
    sets = ["--set", "optimizer.name=sgd", "--set", "optimizer.lr=1e6"]
    # the overflow that makes the loss NaN warns no more: the run's one-line error says it
    assert main(["train", config, "--out", str(tmp_path / "r"), "--quiet", *sets]) == 1
    assert (tmp_path / "r" / "history.csv").is_file()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "r")]) == 2
    assert "nothing to plot" in capsys.readouterr().err
    assert not list((tmp_path / "r" / "figures").glob("*.png"))


def test_feature_maps_take_the_test_image_as_the_saved_model_does(tmp_path):
    # predictions.npz kept the *standardized* test image while model.npz standardizes its input
    # itself: the feature-map figure standardized it twice and drew maps the model never made
    from backprop.app import experiment
    from backprop.app.config import load_config
    from backprop.io import load_file

    (tmp_path / "cnn.toml").write_text(
        '[data]\nsource = "digits"\n'  # standardize = true, the default
        '[[model.layers]]\ntype = "Reshape"\nshape = [8, 8, 1]\n'
        '[[model.layers]]\ntype = "Conv2D"\nfilters = 2\nkernel_size = 3\n'
        '[[model.layers]]\ntype = "Flatten"\n[[model.layers]]\ntype = "Dense"\n'
        '[loss]\nname = "cross_entropy"\n[trainer]\nepochs = 1\n[output]\nplots = false\n'
    )
    run = tmp_path / "r"
    assert main(["train", str(tmp_path / "cnn.toml"), "--out", str(run), "--quiet"]) == 0
    saved = load_file(run / "model.npz")
    with np.load(run / "predictions.npz") as f:
        image = f["image"]
    ds = experiment.load_data(load_config(run / "config.toml", []))
    network = experiment.without_preprocessing(saved.obj, saved.metadata)
    np.testing.assert_allclose(
        saved.obj.predict(image), network.predict(ds.X_test[:1]), rtol=1e-5, atol=1e-5
    )
    # the network without its Standardize layer (what the run tools load) keeps its trained
    # weights: with a Reshape first it used to be unbuilt, and the tools refused the run
    assert main(["landscape", str(run), "--points", "3", "--samples", "50"]) == 0


def test_a_regression_model_with_a_reshape_first_is_saved(tmp_path):
    # no Standardize in front (standardize = false), a target one behind: the model.npz copy
    # was an unbuilt Sequential, and the run ended in "cannot save a model that is not built"
    (tmp_path / "r.toml").write_text(
        '[data]\nsource = "diabetes"\nstandardize = false\n'
        '[[model.layers]]\ntype = "Reshape"\nshape = [10, 1]\n'
        '[[model.layers]]\ntype = "Flatten"\n[[model.layers]]\ntype = "Dense"\n'
        '[loss]\nname = "mse"\n[trainer]\nepochs = 1\n[output]\nplots = false\n'
    )
    run = tmp_path / "r"
    assert main(["train", str(tmp_path / "r.toml"), "--out", str(run), "--quiet"]) == 0
    from backprop.app import experiment
    from backprop.app.config import load_config

    ds = experiment.load_data(load_config(run / "config.toml", []))
    with np.load(run / "predictions.npz") as f:
        expected = f["y_pred"]
    np.testing.assert_allclose(bp.load(run / "model.npz").predict(ds.X_test), expected, rtol=1e-5)


def test_a_resumed_run_keeps_the_activations_of_its_start(tmp_path):
    # activations.npz "start" is the start of training; a resumed run recorded it again from
    # the weights it resumed from, so the figure's "start vs end" compared epochs 3 and 5
    config = str(ROOT / "configs" / "digits.toml")
    sets = ["--set", "output.checkpoint_every=1", "--set", "output.plots=false", "--quiet"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", config, "--out", a, "--set", "trainer.epochs=3", *sets]) == 0
    assert main(["train", config, "--resume", a, "--set", "trainer.epochs=5", *sets]) == 0
    assert main(["train", config, "--out", b, "--set", "trainer.epochs=5", *sets]) == 0
    with np.load(tmp_path / "a" / "activations.npz") as fa, np.load(b + "/activations.npz") as fb:
        assert fa.files == fb.files and any(k.startswith("start/") for k in fa.files)
        for key in fa.files:
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def test_activation_recorder_takes_sparse_input():
    from scipy import sparse

    X = sparse.random(30, 6, density=0.3, format="csr", random_state=0, dtype=np.float32)
    model = bp.Sequential([bp.Dense(6, 4), bp.ReLU(), bp.Dense(4, 2)], seed=0)
    rec = bp.ActivationRecorder(X)
    assert rec.record(model)["1 ReLU"].shape == (30 * 4,)


def test_activation_recorder_sees_what_the_model_computes_on_padded_sequences():
    # It ran the layers one by one: the padding mask never reached the attention layer, so the
    # recorded activations were not the model's.
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, size=(6, 5))
    ids[:, 3:] = 0
    layers = [bp.Embedding(9, 4, mask_zero=True), bp.MultiHeadSelfAttention(1, 4), bp.Tanh()]
    model = bp.Sequential(layers, input_shape=(5,), dtype="float64", seed=0)
    got = bp.ActivationRecorder(ids).record(model)["2 Tanh"]
    np.testing.assert_allclose(got, model.forward(ids).ravel(), rtol=1e-12, atol=1e-15)


def test_activation_recorder_keeps_at_most_max_values():
    # The stride was size // max_values: 30 x 7 = 210 values with max_values=100 gave stride 2
    # and 105 values kept, 199 values gave stride 1 and all 199; max_values=0 divided by zero.
    model = bp.Sequential([bp.Dense(6, 7), bp.ReLU()], seed=0, dtype="float64")
    X = np.random.default_rng(0).normal(size=(30, 6))
    for max_values in (100, 199, 209, 210, 1):
        kept = bp.ActivationRecorder(X, max_values=max_values).record(model)["1 ReLU"]
        assert 0 < kept.size <= max_values, (max_values, kept.size)
    full = bp.ActivationRecorder(X, max_values=210).record(model)["1 ReLU"]
    np.testing.assert_array_equal(full, model.forward(X).ravel())
    with pytest.raises(ValueError, match="max_values"):
        bp.ActivationRecorder(X, max_values=0)


def test_activation_recorder_records_the_activation_layers_and_nothing_else():
    # It kept every layer without parameters or buffers: MaxPool2D, Flatten and Masking outputs
    # were plotted as "activations" (a Flatten after a ReLU doubled its histogram), while a
    # PReLU, an activation with a learned slope, was left out.
    X = np.random.default_rng(0).normal(size=(3, 6, 6, 1))
    layers = [bp.Conv2D(2, 3), bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(), bp.Dense(8, 4)]
    layers += [bp.PReLU(), bp.Dense(4, 3), bp.Softmax()]
    model = bp.Sequential(layers, input_shape=(6, 6, 1), seed=0, dtype="float64")
    found = bp.ActivationRecorder(X).record(model)
    assert list(found) == ["1 ReLU", "5 PReLU", "7 Softmax"]
    np.testing.assert_array_equal(found["7 Softmax"], model.forward(X).ravel())


def test_activation_recorder_records_a_users_own_activation():
    # narrowed to the library's activation classes, it dropped an activation written as a plain
    # bp.Layer (the documented way), which it had recorded before; a user's reshaping layer is
    # still left out

    class Cube(bp.Layer):
        def forward(self, x, training=False):
            return x**3

    class Halve(bp.Layer):
        def build(self, in_shape):
            self.in_shape, self.out_shape = in_shape, (in_shape[0] // 2,)
            return self.out_shape

        def forward(self, x, training=False):
            return x[:, ::2]

    X = np.random.default_rng(0).normal(size=(3, 4))
    model = bp.Sequential([bp.Dense(6), Cube(), Halve(), bp.Dense(2)], input_shape=(4,), seed=0)
    assert list(bp.ActivationRecorder(X).record(model)) == ["1 Cube"]
