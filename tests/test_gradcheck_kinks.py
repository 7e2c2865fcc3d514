"""check_gradients at kinks: a ReLU at exactly 0 or tied maxima in max pooling have no
derivative, and real images put the check there (a zero bias on a black patch). Such entries
are left out and counted; a wrong gradient anywhere the loss is smooth must still fail."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp


class Hinge(bp.Layer):
    """y = max(x, 0), a ReLU of its own; ``slope`` scales the backward pass (1 is right,
    anything else a planted bug)."""

    def __init__(self, slope: float = 1.0) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x, training=False):
        if training:
            self._x = x
        return np.maximum(x, 0.0)

    def backward(self, grad_out):
        return self.slope * (self._x > 0) * grad_out


def images(rng: np.random.Generator) -> np.ndarray:
    """Four 8x8 images, black but for a 3x3 bright patch: exact zeros, as in MNIST."""
    X = np.zeros((4, 8, 8, 1))
    X[:, 5:, 5:, 0] = rng.uniform(0.2, 1.0, size=(4, 3, 3))
    return X


def cnn() -> bp.Sequential:
    layers = [bp.Conv2D(3, 3), bp.ReLU(), bp.MaxPool2D(2), bp.Flatten(), bp.Dense(3)]
    return bp.Sequential(layers, input_shape=(8, 8, 1), dtype="float64", seed=0)


def test_a_cnn_on_images_with_black_regions_passes_with_its_kinks_left_out():
    X, y = images(np.random.default_rng(0)), np.array([0, 1, 2, 0])
    report = bp.check_gradients(cnn(), bp.SoftmaxCrossEntropy(), X, y)
    assert report.passed, str(report)
    assert report["0.b"].n_kinks > 0 and report["input"].n_kinks > 0  # zero bias, black patches
    assert report["0.W"].n_checked > report["0.W"].n_kinks  # the bright patch is smooth
    assert "at a kink" in str(report)


def test_a_smooth_check_reports_no_kinks():
    X = np.random.default_rng(1).normal(size=(4, 8, 8, 1))  # no exact zeros, no ties
    report = bp.check_gradients(cnn(), bp.SoftmaxCrossEntropy(), X, np.array([0, 1, 2, 0]))
    assert report.passed and sum(c.n_kinks for c in report.checks) == 0
    assert "kink" not in str(report)


@pytest.mark.parametrize("slope", [1.5, -1.0])
def test_a_wrong_gradient_where_the_loss_is_smooth_still_fails_next_to_kinks(slope):
    X = np.random.default_rng(2).normal(size=(5, 4))
    X[:, 0] = 0.0  # a column of kinks
    model = bp.Sequential([Hinge(slope), bp.Dense(2)], input_shape=(4,), dtype="float64", seed=0)
    report = bp.check_gradients(model, bp.MeanSquaredError(), X, np.ones((5, 2)))
    assert not report.passed and not report["input"].passed
    assert report["input"].n_kinks == 5  # the zero column: left out, the rest judged
    right = bp.Sequential([Hinge(1.0), bp.Dense(2)], input_shape=(4,), dtype="float64", seed=0)
    assert bp.check_gradients(right, bp.MeanSquaredError(), X, np.ones((5, 2))).passed


def test_a_check_whose_every_entry_is_a_kink_is_not_a_pass():
    model = bp.Sequential([Hinge(), bp.Dense(2)], input_shape=(3,), dtype="float64", seed=0)
    model.layers[1].trainable = False
    report = bp.check_gradients(model, bp.MeanSquaredError(), np.zeros((2, 3)), np.ones((2, 2)))
    assert report["input"].n_kinks == 6 and not report.passed, str(report)
    assert "NOTHING COULD BE JUDGED" in str(report)
