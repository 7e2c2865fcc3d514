"""Callbacks: hooks the trainer calls around epochs and batches.

Protocol (every hook is a no-op by default; override the ones you need)::

    on_train_begin(trainer)
    on_epoch_begin(trainer, epoch)
    on_batch_begin(trainer, batch)
    on_batch_end(trainer, batch, logs)     # after the update; model.gradients() still holds the
                                           # (clipped) gradients of that batch
    on_epoch_end(trainer, epoch, logs)     # logs: loss, metrics, val_*, lr, grad_norm, time, ...
    on_train_end(trainer)

A callback stops training by setting ``trainer.stop_training = True``; it never raises to stop.
The trainer itself never prints: printing is the ProgressBar's job.
"""

from __future__ import annotations

import csv
import math
import warnings
from typing import Any

import numpy as np


class Callback:
    """Base class with no-op hooks."""

    def on_train_begin(self, trainer: Any) -> None:
        pass

    def on_epoch_begin(self, trainer: Any, epoch: int) -> None:
        pass

    def on_batch_begin(self, trainer: Any, batch: int) -> None:
        pass

    def on_batch_end(self, trainer: Any, batch: int, logs: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, trainer: Any) -> None:
        pass


class History(Callback, dict):
    """A dict of per-epoch lists (``history["loss"]``, ``history["val_loss"]``, ...).

    The trainer keeps one across calls to ``fit`` so a continued run extends its history.
    """

    def on_epoch_end(self, trainer, epoch, logs):
        n_before = len(self.get("epoch", []))
        for key, value in logs.items():
            # a key that appears late (a callback added mid-run) is padded with NaN
            self.setdefault(key, [math.nan] * n_before).append(value)
        for values in self.values():
            if len(values) < n_before + 1:
                values.append(math.nan)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs, and (by default) put back the weights of the best epoch when training ends.

    A NaN score never counts as an improvement. State resets at every ``on_train_begin``.

    Parameters
    ----------
    monitor : str, default 'val_loss'
        The logged value to watch ("val_loss", "val_accuracy", "loss", ...).
    patience : int, default 10
        Epochs without improvement before training stops.
    min_delta : float, default 0.0
        Smallest change that counts as an improvement.
    mode : str, default 'auto'
        "min", "max" or "auto" (max for names containing accuracy/r2/score).
    restore_best_weights : bool, default True
        Put back the best epoch's weights when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ) -> None:
        from .schedules import resolve_mode

        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = resolve_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_params: np.ndarray | None = None
        self._best_buffers: dict[str, np.ndarray] | None = None

    def on_train_begin(self, trainer):
        if self.monitor.startswith("val_") and not trainer.has_validation:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r} but fit got no validation data; "
                "pass validation_data= or validation_split=, or monitor='loss'"
            )
        self.reset()

    def on_epoch_end(self, trainer, epoch, logs):
        from .schedules import improved

        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: {self.monitor!r} not in the logs {sorted(logs)}")
        value = logs[self.monitor]
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self._best_params = trainer.model.flat_parameters.copy()
                self._best_buffers = {k: v.copy() for k, v in trainer.model.buffers().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best_weights and self._best_params is not None:
            trainer.model.flat_parameters[...] = self._best_params
            for k, v in trainer.model.buffers().items():
                v[...] = self._best_buffers[k]

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }


class CSVLogger(Callback):
    """Append one row per epoch to ``path`` (the header is written with the first row).

    Parameters
    ----------
    path : str
        The CSV file.
    append : bool, default False
        Add to an existing file instead of overwriting it.
    """

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self.append = append

    def on_train_begin(self, trainer):
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer: csv.DictWriter | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(logs), extrasaction="ignore")
            if not self.append or self._file.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(logs)
        self._file.flush()

    def on_train_end(self, trainer):
        self._file.close()


class GradientMonitor(Callback):
    """Per-parameter gradient and weight norms, and the fraction of dead ReLU units, per epoch.

    Every ``every`` batches it measures ``||grad||`` of each named parameter (after clipping,
    as applied); at the epoch's end it logs their mean as ``grad_norm/<name>``, the weight norm
    as ``weight_norm/<name>``, and for each ReLU layer ``dead_relu/<index>``: the fraction of its
    units that output 0 for every sample of the last measured batch. It warns once per parameter
    when a gradient norm falls below ``vanish_ratio`` times the largest one (vanishing) or
    exceeds ``explode`` (exploding).

    Parameters
    ----------
    every : int, default 1
        Measure on every ``every``-th batch.
    vanish_ratio : float, default 0.0001
        Warn when a parameter's gradient norm falls below this fraction of the largest one.
    explode : float, default 10000.0
        Warn when a gradient norm exceeds this value.
    """

    def __init__(self, every: int = 1, vanish_ratio: float = 1e-4, explode: float = 1e4) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.every = every
        self.vanish_ratio = vanish_ratio
        self.explode = explode

    def on_train_begin(self, trainer):
        self._warned: set[str] = set()

    def on_epoch_begin(self, trainer, epoch):
        self._sums: dict[str, float] = {}
        self._count = 0
        self._dead: dict[int, float] = {}

    def on_batch_end(self, trainer, batch, logs):
        if batch % self.every:
            return
        for name, g in trainer.model.gradients().items():
            self._sums[name] = self._sums.get(name, 0.0) + float(np.sqrt(np.vdot(g, g)))
        self._count += 1
        from .layers import ReLU

        for i, layer in enumerate(trainer.model.layers):
            if isinstance(layer, ReLU) and layer._y is not None:
                self._dead[i] = float(np.mean(~np.any(layer._y > 0, axis=0)))

    def on_epoch_end(self, trainer, epoch, logs):
        if not self._count:
            return
        norms = {name: s / self._count for name, s in self._sums.items()}
        largest = max(norms.values(), default=0.0)
        for name, value in norms.items():
            logs[f"grad_norm/{name}"] = value
            if name in self._warned:
                continue
            if largest > 0 and value < self.vanish_ratio * largest:
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


# The progress display lives in its own module (it decides between a live bar and lines).
from .progress import ProgressBar  # noqa: E402, F401  (re-exported)
