"""Callbacks that watch how training changes the network (for the run directory's figures).

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

from typing import Any

import numpy as np

from . import checks
from .callbacks import Callback
from .layers.activations import Activation, PReLU, Softmax
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


__all__ = ["ActivationRecorder", "UpdateRatioMonitor"]
