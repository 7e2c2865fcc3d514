"""Callbacks that watch how training changes the network (for the run directory's figures).

``GradientMonitor`` logs gradient and weight norms and the share of dead ReLU units, and warns
of vanishing or exploding gradients.

``UpdateRatioMonitor`` logs, per epoch and per weight matrix, the mean over the epoch's updates of

    ||W_after - W_before|| / ||W_after||            (history key "update_ratio/<i>.W")

A healthy ratio is often quoted near 1e-3: far below, the layer barely learns; far above, the
step is too large for it. ``ActivationRecorder`` keeps the output of every activation layer on a
fixed sample of inputs at the start and at the end of training (``start``, ``end``: dicts
``"<i> <Layer>" -> values``), for histograms of saturated or dead units. The activation layers
are the top-level ReLU, Tanh, ..., Softmax and PReLU layers and a user's own shape-keeping layers
without parameters (not Flatten, pooling or Masking; not the layers inside a Residual block).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import checks
from .callbacks import Callback
from .layers import containers
from .layers.activations import Activation, PReLU, ReLU, Softmax
from .layers.base import Layer


class UpdateRatioMonitor(Callback):
    """Per-epoch mean of ``||dW|| / ||W||`` for every parameter of kind "weight" of a
    trainable layer (a frozen one has no column, or NaN for the epochs it was frozen)."""

    def __init__(self) -> None:
        self._before: np.ndarray | None = None
        self._sums: dict[str, float] = {}
        self._count = 0

    def on_train_begin(self, trainer):
        self._before = np.empty(trainer.model.n_weights, dtype=trainer.model.dtype)

    def on_epoch_begin(self, trainer, epoch):
        self._sums, self._count = {}, 0

    def on_batch_begin(self, trainer, batch):
        self._before[...] = trainer.model.flat_parameters[: trainer.model.n_weights]

    def on_batch_end(self, trainer, batch, logs):
        model = trainer.model
        trainable = set(model.trainable_parameter_names())
        for name, sl in model.param_slices().items():
            if sl.stop > model.n_weights or name not in trainable:
                continue  # not a weight (biases and gains live after n_weights), or frozen
            after = model.flat_parameters[sl]
            step = np.linalg.norm(after - self._before[sl])
            size = np.linalg.norm(after)
            ratio = float(step / size) if size > 0 else float("nan")
            self._sums[name] = self._sums.get(name, 0.0) + ratio
        self._count += 1

    def on_epoch_end(self, trainer, epoch, logs):
        for name, total in self._sums.items():
            logs[f"update_ratio/{name}"] = total / max(self._count, 1)


def _is_activation(layer: Layer) -> bool:
    """An activation layer (ReLU, Tanh, ..., Softmax, PReLU with its learned slope); not a
    layer that only moves values around (Flatten, pooling, Masking), whose output would be
    plotted as a histogram of activations. A user's own layer (defined outside backprop, as
    custom activations are written) counts when it keeps its input's shape and holds no
    parameters or buffers."""
    if isinstance(layer, Activation | PReLU | Softmax):
        return True
    own = not type(layer).__module__.startswith("backprop.")
    plain = not layer.params and not layer.buffers
    return own and plain and layer.in_shape is not None and layer.in_shape == layer.out_shape


class ActivationRecorder(Callback):
    """Outputs of the activation layers on ``X`` (inference mode) when training starts and ends.

    Parameters
    ----------
    X : Any
        a fixed sample of (preprocessed) training inputs ``(m, n_features)``.
    max_values : int, default 20000
        at most this many values are kept per layer (an even subsample).

    """

    def __init__(self, X: Any, max_values: int = 20_000) -> None:
        self.X = X
        self.max_values = checks.positive_int("max_values", max_values)
        self.start: dict[str, np.ndarray] = {}
        self.end: dict[str, np.ndarray] = {}

    def record(self, model: Any) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i, layer, out in model.layer_outputs(self.X):  # masks and token ids as in forward
            if _is_activation(layer):
                values = out.ravel()
                step = max(1, -(-values.size // self.max_values))  # ceil: at most max_values
                found[f"{i} {type(layer).__name__}"] = values[::step].astype(np.float64)
        return found

    def on_train_begin(self, trainer):
        self.start = self.record(trainer.model)

    def state_dict(self) -> dict[str, Any]:
        """The start of training's activations: a resumed run keeps them (its own
        ``on_train_begin`` sees the weights it resumes from)."""
        return {"start": dict(self.start)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        start = {str(k): np.asarray(v, np.float64) for k, v in state.get("start", {}).items()}
        if start:  # none: saved before the first fit; keep the start this fit recorded
            self.start = start

    def on_train_end(self, trainer):
        self.end = self.record(trainer.model)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"start/<i> <Layer>": values, "end/...": values}`` for ``np.savez``."""
        arrays = {f"start/{k}": v for k, v in self.start.items()}
        arrays.update({f"end/{k}": v for k, v in self.end.items()})
        return arrays


class GradientMonitor(Callback):
    """Per-parameter gradient and weight norms, and the fraction of dead ReLU units, per epoch.

    Every ``every`` batches it measures ``||grad||`` of each named parameter of a trainable
    layer (after clipping, as applied; a frozen layer's gradient is not computed); at the
    epoch's end it logs their mean as ``grad_norm/<name>``, the weight norm as
    ``weight_norm/<name>``, and for each ReLU layer ``dead_relu/<index>`` ("3.1" in a block)
    the fraction of its units (indices of the last axis: a conv filter at all positions, a
    recurrent unit at all steps) at 0 for every sample of the last measured batch. It warns
    once per parameter when a weight's gradient norm falls below ``vanish_ratio`` times the
    largest weight's (vanishing; not biases) or its gradient norm exceeds ``explode``
    (exploding).

    Parameters
    ----------
    every : int, default 1
        Measure on every ``every``-th batch.
    vanish_ratio : float, default 0.0001
        Warn when a weight's gradient norm falls below this fraction of the largest one.
    explode : float, default 10000.0
        Warn when a gradient norm exceeds this value (``inf``: never).
    """

    def __init__(self, every: int = 1, vanish_ratio: float = 1e-4, explode: float = 1e4) -> None:
        self.every = checks.positive_int("every", every)
        self.vanish_ratio = checks.real("vanish_ratio", vanish_ratio, 0, None, "left")
        self.explode = checks.real("explode", explode, 0, None, "neither", allow_inf=True)
        self._warned: set[str] = set()
        self._sums: dict[str, float] = {}
        self._count = 0
        self._dead: dict[str, float] = {}
        self._relus: list[tuple[str, ReLU]] = []
        self._kept: list[bool] = []

    def on_train_begin(self, trainer):
        self._warned = set()
        named = containers.named_layers(trainer.model.layers)  # in Residual blocks too: "3.1"
        self._relus = [(i, la) for i, la, _ in named if isinstance(la, ReLU)]
        self._kept = [la.keep_output for _, la in self._relus]  # (a user's setting, restored)
        for _, layer in self._relus:  # read after backward, their outputs outlive it meanwhile
            layer.keep_output = True

    def on_train_end(self, trainer):
        for (_, layer), kept in zip(self._relus, self._kept, strict=True):
            layer.keep_output = kept  # released unless kept (a trained layer keeps no batch)
            layer._y = layer._y if kept else None

    def state_dict(self) -> dict[str, Any]:
        """The parameters already warned about (a resumed run does not warn again)."""
        return {"warned": sorted(self._warned)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._warned = {str(name) for name in state["warned"]}

    def on_epoch_begin(self, trainer, epoch):
        self._sums: dict[str, float] = {}
        self._count = 0
        self._dead: dict[str, float] = {}

    def on_batch_end(self, trainer, batch, logs):
        if batch % self.every:
            return
        # a frozen layer's gradient is not computed (the trainer zeroes it): no norm, no warning
        trainable = set(trainer.model.trainable_parameter_names())
        for name, g in trainer.model.gradients().items():
            if name not in trainable:
                continue
            self._sums[name] = self._sums.get(name, 0.0) + float(np.sqrt(np.vdot(g, g)))
        self._count += 1
        for i, layer in self._relus:
            y = layer.last_output
            if y is not None:  # a unit: one index of the last axis, over every other one
                self._dead[i] = float(np.mean(~np.any(y > 0, axis=tuple(range(y.ndim - 1)))))

    def on_epoch_end(self, trainer, epoch, logs):
        if not self._count:
            return
        norms = {name: s / self._count for name, s in self._sums.items()}
        m = trainer.model  # vanishing: weights only (a bias feeding a BatchNorm gets 0)
        weights = {n for n, sl in m.param_slices().items() if sl.stop <= m.n_weights}
        largest = max((v for n, v in norms.items() if n in weights), default=0.0)
        for name, value in norms.items():
            logs[f"grad_norm/{name}"] = value
            if name in self._warned:
                continue
            if name in weights and largest > 0 and value < self.vanish_ratio * largest:
                self._warned.add(name)
                warnings.warn(
                    f"epoch {epoch + 1}: gradient of {name} has norm {value:.3g}, below "
                    f"{self.vanish_ratio:g} x the largest ({largest:.3g}): vanishing gradients",
                    RuntimeWarning,
                    stacklevel=2,
                )
            elif value > self.explode:
                self._warned.add(name)
                warnings.warn(
                    f"epoch {epoch + 1}: gradient of {name} has norm {value:.3g} > "
                    f"{self.explode:g}: exploding gradients",
                    RuntimeWarning,
                    stacklevel=2,
                )
        for name, p in trainer.model.parameters().items():
            logs[f"weight_norm/{name}"] = float(np.sqrt(np.vdot(p, p)))
        for i, frac in self._dead.items():
            logs[f"dead_relu/{i}"] = frac


__all__ = ["ActivationRecorder", "GradientMonitor", "UpdateRatioMonitor"]
