"""Figures: every one has a title, labelled axes and (for several series) a legend."""

import math

import numpy as np
import pytest

import backprop as bp
from backprop.app import plotting


def _history():
    n = 5
    return {
        "epoch": list(range(1, n + 1)),
        "loss": [1.0 / (e + 1) for e in range(n)],
        "val_loss": [1.2 / (e + 1) for e in range(n)],
        "accuracy": [0.5 + 0.1 * e for e in range(n)],
        "val_accuracy": [0.45 + 0.1 * e for e in range(n)],
        "lr": [0.01 * 0.5**e for e in range(n)],
        "grad_norm/0.W": [1.0, 0.5, 0.4, 0.3, 0.2],
        "grad_norm/0.b": [0.1, 0.05, 0.04, 0.03, math.nan],
    }


def _labelled(fig, legend=True):
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title(), "missing title"
        assert ax.get_xlabel() and ax.get_ylabel(), "missing axis label"
        if legend:
            assert ax.get_legend() is not None, "missing legend"
    plotting.plt.close(fig)


def test_lr_figure_says_which_rate_of_the_epoch_it_draws():
    # An "update" schedule changes the rate at every step; the history logs the last one of
    # each epoch, not the one the epoch started with (as the title used to say).
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    schedule = bp.ExponentialDecay(0.5, interval="update")
    model = bp.Sequential([bp.Dense(3, 1)], dtype="float64", seed=0)
    trainer = bp.Trainer(
        model, "mse", bp.SGD(lr=0.1), batch_size=10, epochs=2, seed=0, schedule=schedule
    )
    history = trainer.fit(X, y)
    lr0 = history["lr"][0]
    assert lr0 == pytest.approx(0.1 * 0.5**3) and history["lr"][1] == pytest.approx(0.1 * 0.5**7)
    title = plotting.fig_lr(history).axes[0].get_title()
    assert "last update" in title and "start" not in title
    plotting.plt.close("all")


def test_loss_figure_is_linear_when_a_validation_loss_is_not_positive():
    # the training loss (penalty included) stays positive while a float32 cross-entropy on a
    # separable validation set can reach exactly 0, which a log axis would not draw
    h = {"epoch": [1, 2, 3], "loss": [0.5, 0.2, 0.1], "val_loss": [0.3, 0.01, 0.0]}
    assert plotting.fig_loss(h).axes[0].get_yscale() == "linear"
    h["val_loss"][2] = 0.001
    assert plotting.fig_loss(h).axes[0].get_yscale() == "log"
    plotting.plt.close("all")


def test_dead_relu_figure_says_what_it_counts_on():
    # GradientMonitor's dead_relu/<i> is the share of units at 0 for every sample of the
    # epoch's last measured batch; the axis used to say "never active", which reads as all data
    ax = bp.plot_dead_relu({"loss": [1.0, 0.5], "dead_relu/1": [0.0, 0.25]}).axes[0]
    assert "never" not in ax.get_ylabel() and "batch" in ax.get_ylabel()
    assert "last measured batch" in ax.get_title()
    plotting.plt.close("all")


def test_pred_vs_true_title_has_the_r2_metrics_json_reports():
    # Two outputs on very different scales: the title once pooled them (one R² over the
    # raveled values, near 0 here) where metrics.json's r2 averages per output
    from backprop.data import R2

    rng = np.random.default_rng(0)
    T = np.column_stack([rng.normal(size=40) * 100, rng.normal(size=40) * 0.01])
    P = np.column_stack([T[:, 0] + rng.normal(size=40) * 50, rng.normal(size=40) * 0.01])
    metric = R2()
    metric.reset()
    metric.update(P, T)
    fig = plotting.fig_pred_vs_true(T, P)
    assert f"R² {metric.result():.3f})" in fig.axes[0].get_title()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "test samples, output 0" in labels and "test samples, output 1" in labels
    plotting.plt.close("all")


def test_pred_vs_true_title_counts_a_constant_output_out_as_metrics_json_does():
    # The title computed T - T.mean() itself: the mean of seven 0.1 is not exactly 0.1, so the
    # constant output's SS_tot was ~1e-32, not 0, and the title read R² -2.6e29
    T = np.column_stack([np.arange(7.0), np.full(7, 0.1)])
    fig = plotting.fig_pred_vs_true(T, T + 0.01)
    assert "R² 1.000)" in fig.axes[0].get_title()
    plotting.plt.close("all")


def test_history_figures_are_labelled():
    h = _history()
    _labelled(plotting.fig_loss(h))
    _labelled(plotting.fig_metrics(h))
    _labelled(plotting.fig_lr(h))
    fig = plotting.fig_grad_norms(h)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["0.W", "0.b"]
    assert fig.axes[0].get_yscale() == "log"
    _labelled(fig)
    assert plotting.fig_metrics({"loss": [1.0]}) is None
    assert plotting.fig_grad_norms({"loss": [1.0]}) is None


def test_weight_histograms_cover_every_weight_matrix_and_say_so():
    # The figure took the "*.W" parameters only (an LSTM's recurrent U was left out) and was
    # titled "per Dense layer" over convolution and LSTM kernels too
    model = bp.Sequential(
        [bp.Conv1D(3, 2), bp.LSTM(4), bp.Dense(2)], input_shape=(6, 3), dtype="float64", seed=0
    )
    fig = plotting.fig_weights(model)
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split()[0] for t in titles] == ["0.W", "1.W", "1.U", "2.W"]
    assert "Dense" not in fig._suptitle.get_text()
    plotting.plt.close("all")


def test_model_and_prediction_figures_are_labelled():
    model = bp.Sequential([bp.Dense(4, 6), bp.ReLU(), bp.Dense(6, 3)], seed=0)
    _labelled(plotting.fig_weights(model), legend=False)
    fig = plotting.fig_first_layer(model, (2, 2))
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (2, 6 * 3 - 1)  # six 2x2 units in one row, 1-pixel gaps
    W = model.parameters()["0.W"]
    assert np.allclose(mosaic[:, 3:5], W[:, 1].reshape(2, 2) / np.abs(W[:, 1]).max())
    _labelled(fig, legend=False)
    assert plotting.fig_first_layer(model, (3, 3)) is None
    y = np.array([0, 1, 2, 2, 1])
    fig = plotting.fig_confusion(y, np.array([0, 1, 2, 1, 1]), ["a", "b", "c"])
    assert "accuracy 0.800" in fig.axes[0].get_title()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "0", "0", "0", "2", "0", "0", "1", "1"]  # row c: one as b, one as c
    _labelled(fig, legend=False)
    _labelled(plotting.fig_pred_vs_true(np.arange(5.0), np.arange(5.0) + 0.1))
    X = np.random.default_rng(0).normal(size=(20, 2))
    labels = (X[:, 0] > 0).astype(int)
    fig = plotting.fig_decision_boundary(lambda P: (P[:, 0] > 0).astype(int), X, labels, [0, 1])
    _labelled(fig)


def test_history_csv_round_trip(tmp_path):
    h = _history()
    plotting.write_history(h, tmp_path / "h.csv")
    back = plotting.read_history(tmp_path / "h.csv")
    assert list(back) == list(h)
    for key in h:
        assert back[key] == pytest.approx(h[key], nan_ok=True)


def test_landscape_figures_draw_a_loss_below_zero_on_a_linear_scale(tmp_path):
    # A Poisson loss drops log t! and can be negative: the 1-D profile's log axis dropped
    # those points and the 2-D contours clipped them to log10(1e-12) = -12, one flat color
    from matplotlib.image import imread

    from backprop.app import tool_plots

    alphas = np.linspace(-1.0, 1.0, 5)
    line = np.array([2.0, -0.5, -1.0, -0.5, 2.0])
    captured = []
    real_save = tool_plots._save
    tool_plots._save = lambda fig, path: (captured.append(fig), real_save(fig, path))[1]
    try:
        tool_plots.plot_landscape_1d({"p": (alphas, line)}, tmp_path / "a.png", "alpha")
        Z = line[None, :] + line[:, None]
        tool_plots.plot_landscape_2d({"p": (alphas, alphas, Z, None)}, tmp_path / "b.png")
    finally:
        tool_plots._save = real_save
    one, two = captured
    assert one.axes[0].get_yscale() == "linear"
    assert "log" not in one.axes[0].get_ylabel()
    assert "log10" not in two.axes[-1].get_ylabel()  # the colorbar
    assert imread(tmp_path / "b.png").shape[0] > 100


def test_landscape_contours_survive_a_grid_point_whose_loss_overflowed(tmp_path):
    # float32 logits far from the minimum can overflow to an infinite loss: the color levels
    # were linspace(min, max) over every point, inf included, and contourf raised
    from backprop.app import tool_plots

    a = np.linspace(-1.0, 1.0, 5)
    Z = 1.0 + a[None, :] ** 2 + a[:, None] ** 2
    Z[0, 0], Z[4, 4] = np.inf, np.nan
    path = tool_plots.plot_landscape_2d({"p": (a, a, Z, None)}, tmp_path / "z.png")
    assert path.stat().st_size > 5_000
