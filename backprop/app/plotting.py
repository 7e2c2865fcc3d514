"""Figures of a training run (matplotlib, Agg backend: files only, no window).

Each ``fig_*`` function returns a Figure; :func:`draw_run` writes every figure that applies to a
run directory into ``RUN_DIR/figures/`` from the files the run left behind. The figures live by
family (training curves in :mod:`.curves`, pictures of the model in :mod:`.model_figures`,
predictions in :mod:`.prediction_figures`); every name is importable from this module::

    history.csv      -> loss.png, metrics.png, lr.png, grad_norms.png, and with the monitors
                        on: dead_relu.png, update_ratio.png
    activations.npz  -> activations.png (histograms per activation layer, start and end)
    model.npz        -> weights.png, first_layer.png (square inputs: 8x8 digits, 28x28 MNIST),
                        conv_filters.png (a model with a Conv2D layer)
    predictions.npz  -> confusion.png (classification), pred_vs_true.png (regression),
                        decision_boundary.png (2-D inputs), feature_maps.png (a convolutional
                        model: the first test image as the model
                        takes it, stored as ``image``, layer by layer)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..filecheck import check_array_file
from .curves import (  # noqa: F401  (re-exported: the figures were this module's first)
    _epochs,
    fig_grad_norms,
    fig_loss,
    fig_lr,
    fig_metrics,
    read_history,
    write_history,
)
from .model_figures import (  # noqa: F401
    fig_conv_filters,
    fig_feature_maps,
    fig_first_layer,
    fig_sparsity,
    fig_weights,
)
from .modelfile import checked_model_file
from .mpl import plt
from .prediction_figures import fig_confusion, fig_decision_boundary, fig_pred_vs_true


def draw_run(run_dir: str | Path) -> list[Path]:
    """(Re-)draw every figure that applies to ``run_dir``; returns the files written."""
    from .sources import transform_X

    run_dir = Path(run_dir)
    out_dir = run_dir / "figures"
    out_dir.mkdir(exist_ok=True)
    figures: dict[str, Any] = {}
    history = None
    if (run_dir / "history.csv").is_file():
        history = read_history(run_dir / "history.csv")
    if history and history.get("loss"):  # a run that failed in its first epoch has none
        figures["loss"] = fig_loss(history)
        figures["metrics"] = fig_metrics(history)
        figures["lr"] = fig_lr(history)
        figures["grad_norms"] = fig_grad_norms(history)
        figures.update(_monitor_figures(run_dir, history))
    model_file = front = None
    if (run_dir / "model.npz").is_file():
        from .experiment import without_preprocessing

        model_file = checked_model_file(run_dir / "model.npz")
        # the trained network, named as history.csv, gradcheck and the curves name it ("0.W"),
        # not with the indices of the file's Standardize layers in front ("1.W")
        net = without_preprocessing(model_file.obj, model_file.metadata)
        front = model_file.metadata.get("preprocessing_layers", [0, 0])[0]
        figures["weights"] = fig_weights(net)
        if net.weight_mask is not None:  # a pruned model (issue 15)
            figures["sparsity"] = fig_sparsity(net, history)
        shape = model_file.metadata.get("image_shape")
        if shape:
            figures["first_layer"] = fig_first_layer(net, tuple(shape))
        figures["conv_filters"] = fig_conv_filters(net)
    if (run_dir / "predictions.npz").is_file() and model_file is not None:
        meta = model_file.metadata
        points = _points_label(run_dir)  # the test set, or the training set standing in for it
        part = points.replace("points", "set")
        check_array_file(run_dir / "predictions.npz")  # sizes against the file, before np.load
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as f:
            pred = {k: f[k] for k in f.files}
        if "image" in pred:
            figures["feature_maps"] = fig_feature_maps(model_file.obj, pred["image"][0], skip=front)
        if meta.get("task") == "classification":
            figures["confusion"] = fig_confusion(
                pred["y_true"], pred["y_pred"], meta["classes"], part
            )
            if "X" in pred and pred["X"].shape[1] == 2:
                prep = Preprocessing(model_file.extras)

                def outputs(P):
                    return model_file.obj.predict(transform_X(prep, P))

                def proba(P):
                    from ..inference import proba_from_outputs

                    return proba_from_outputs(outputs(P), meta.get("loss", "cross_entropy"))

                figures["decision_boundary"] = fig_decision_boundary(
                    lambda P: class_codes(outputs(P)),
                    pred["X"],
                    pred["y_true"],
                    meta["classes"],
                    proba=proba,
                    points=points,
                )
        else:
            figures["pred_vs_true"] = fig_pred_vs_true(pred["y_true"], pred["y_pred"], part)
    written = []
    for name, fig in figures.items():
        if fig is None:
            continue
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _monitor_figures(run_dir: Path, history: dict[str, list[float]]) -> dict[str, Any]:
    """Figures of the monitors' columns and of activations.npz, where the run has them."""
    from . import plots

    figures: dict[str, Any] = {}
    if any(k.startswith("dead_relu/") for k in history):
        figures["dead_relu"] = plots.plot_dead_relu(history)
    if any(k.startswith("update_ratio/") for k in history):
        figures["update_ratio"] = plots.plot_update_ratio(history)
    if (run_dir / "activations.npz").is_file():
        with np.load(run_dir / "activations.npz", allow_pickle=False) as f:
            start = {k[6:]: f[k] for k in f.files if k.startswith("start/")}
            end = {k[4:]: f[k] for k in f.files if k.startswith("end/")}
        if start or end:
            figures["activations"] = plots.plot_activations(start, end)
    return figures


def _points_label(run_dir: Path) -> str:
    """ "training points" when the run's test set is its training set (XOR), else "test points"."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return "test points"
    return "training points" if metrics.get("test_is_training_data") else "test points"


class Preprocessing:
    """Preprocessing read back from a model file's extras (for :func:`transform_X`)."""

    def __init__(self, extras: dict[str, np.ndarray]) -> None:
        self.x_mean = extras.get("x_mean")
        self.x_scale = extras.get("x_scale")
        self.y_mean = extras.get("y_mean")
        self.y_scale = extras.get("y_scale")


def class_codes(out: np.ndarray) -> np.ndarray:
    """Class codes from logits: argmax, or ``logit > 0`` for a single output."""
    return (out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)
