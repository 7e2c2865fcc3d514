"""Mirrors of the few private scikit-learn MLP internals that its own test suite reads.

scikit-learn's ``test_mlp.py`` reaches into two private members; mirroring them costs a few
lines and lets that suite run against backprop unchanged:

* ``_optimizer.learning_rate``: the step size the last fit ended with (scikit-learn's
  ``SGDOptimizer``/``AdamOptimizer`` attribute), read from the Trainer's optimizer ``lr``;
* ``_loss_grad_lbfgs(packed, X, Y, sample_weight, *buffers) -> (loss, grad)``: the penalized
  loss and its gradient at the packed parameter vector
  ``theta = [W_0.ravel(), ..., W_L.ravel(), b_0, ..., b_L]`` (scikit-learn's ``_pack``
  order), computed by the Trainer's own ``loss_and_gradients``; the trailing work buffers
  that scikit-learn passes are accepted and ignored.

Neither is public API: they exist for compatibility only. Nor is the third mirror,
``InvalidParameterError``: scikit-learn's parameter-error class (a ``ValueError`` and a
``TypeError``), raised by the estimators' parameter checks so that code catching scikit-learn's
error catches ours. It lives in a private scikit-learn module; should a later release move it,
an equivalent class of our own takes its place instead of the import failing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError:  # pragma: no cover - a scikit-learn that moved its private module

    class InvalidParameterError(ValueError, TypeError):  # type: ignore[no-redef]
        """A bad estimator parameter (scikit-learn's class of the same name, mirrored)."""


class OptimizerView:
    """``learning_rate`` of the optimizer of the last fit, under scikit-learn's name."""

    def __init__(self, optimizer: Any) -> None:
        self._opt = optimizer

    @property
    def learning_rate(self) -> float:
        return float(self._opt.lr)


class SklearnPrivateMixin:
    """Adds ``_optimizer`` and ``_loss_grad_lbfgs`` to an estimator with ``model_`` (Dense
    layers exposed as ``coefs_``/``intercepts_`` views) and ``_trainer``."""

    @property
    def _optimizer(self) -> OptimizerView:
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            raise AttributeError(f"{type(self).__name__} has no _optimizer before fit")
        return OptimizerView(trainer.optimizer)

    def _loss_grad_lbfgs(
        self, packed: np.ndarray, X: Any, Y: np.ndarray, sample_weight: Any, *buffers: Any
    ) -> tuple[float, np.ndarray]:
        """Loss (with the ``alpha`` penalty) and gradient at ``packed`` on ``(X, Y)``; ``Y`` is
        the encoded target ``(n_samples, n_outputs)``. Writes ``packed`` into the model, as
        scikit-learn's method writes it into ``coefs_``/``intercepts_``."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None:
            raise AttributeError(f"{type(self).__name__} has no _loss_grad_lbfgs before fit")
        views = [*self.coefs_, *self.intercepts_]
        packed = np.asarray(packed)
        size = sum(v.size for v in views)
        if packed.shape != (size,):
            raise ValueError(f"packed parameters must have shape ({size},), got {packed.shape}")
        start = 0
        for v in views:
            v[...] = packed[start : start + v.size].reshape(v.shape)
            start += v.size
        model = self.model_
        X = X if hasattr(X, "shape") else np.asarray(X)
        Y = np.asarray(Y, dtype=model.dtype)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        loss, _ = trainer.loss_and_gradients(X, Y, w)
        dense = self._dense_layers()
        grads = [layer.grads["W"] for layer in dense] + [layer.grads["b"] for layer in dense]
        return float(loss), np.concatenate([g.ravel() for g in grads]).astype(np.float64)


class WeightViews(list):
    """A fitted estimator's ``coefs_`` or ``intercepts_``: views of the model's arrays, where
    ``est.coefs_[i] = value`` writes ``value`` into layer ``i`` in place (scikit-learn's lists
    hold the arrays themselves, so assigning an item changes the network there too)."""

    def __setitem__(self, i: Any, value: Any) -> None:
        if not isinstance(i, int | np.integer):
            raise TypeError(f"assign one layer's array at a time (an int index), got {i!r}")
        target = list.__getitem__(self, i)
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(f"layer {i}: expected shape {target.shape}, got {value.shape}")
        target[...] = value


def load_hand_set(est: Any, use: bool) -> None:
    """Write ``coefs_``/``intercepts_`` that were assigned before the model existed into the
    freshly built model when ``use`` (``partial_fit`` or ``warm_start``, as scikit-learn
    continues from them); drop them otherwise. Shapes must match the architecture."""
    hand = [vars(est).pop(f"_hand_set_{key}", None) for key in ("W", "b")]
    if not use or any(h is None for h in hand):
        return
    for key, values in zip(("W", "b"), hand, strict=True):
        write_weights(est._dense_layers(), key, values)


def write_weights(layers: list[Any], key: str, values: Any) -> None:
    """Write ``values[i]`` into ``layers[i].params[key]`` (``"W"`` or ``"b"``), every array of
    exactly its layer's shape: all are checked before any is written, so a bad list changes
    nothing (never broadcast, never reshaped: a transposed ``W`` would train scrambled)."""
    name = "coefs_" if key == "W" else "intercepts_"
    values = [np.asarray(v) for v in values]
    if len(values) != len(layers):
        raise ValueError(f"{name} has {len(values)} arrays but the network has {len(layers)}")
    for i, (layer, value) in enumerate(zip(layers, values, strict=True)):
        if value.shape != layer.params[key].shape:
            raise ValueError(
                f"{name}[{i}]: expected shape {layer.params[key].shape}, got {value.shape}"
            )
    for layer, value in zip(layers, values, strict=True):
        layer.params[key][...] = value
