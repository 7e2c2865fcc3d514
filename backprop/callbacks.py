"""Callbacks: hooks the trainer calls around epochs and batches.

Protocol (every hook is a no-op by default; override the ones you need)::

    on_train_begin(trainer)                # ``trainer`` is a TrainingView (backprop.view):
                                           # model, loss, epoch, step, lr, stop_training, ...
    on_epoch_begin(trainer, epoch)
    on_batch_begin(trainer, batch)
    on_batch_end(trainer, batch, logs)     # after the update; model.gradients() still holds the
                                           # (clipped) gradients of that batch
    on_epoch_end(trainer, epoch, logs)     # logs: loss, metrics, val_*, lr, grad_norm, time, ...
    on_train_end(trainer)

A callback stops training by setting ``trainer.stop_training = True``; it never raises to stop.
The trainer itself never prints: printing is the ProgressBar's job.

State: a callback whose state matters for resuming returns it from ``state_dict()`` (plain
numbers, strings, lists, dicts and NumPy arrays) and takes it back in ``load_state_dict``.
Checkpoints save every callback's state without knowing its type; on resume the trainer
applies it right after ``on_train_begin`` (which may reset the callback for a fresh run).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from typing import Any

import numpy as np

from . import checks


class Callback:
    """Base class with no-op hooks and an empty state.

    ``provides_validation``: True for a callback that adds ``val_*`` keys to the epoch logs
    itself (the estimators' monitor), so that others may monitor them.
    """

    provides_validation: bool = False

    def state_dict(self) -> dict[str, Any]:
        """The callback's resumable state (empty for a stateless callback)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

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
        self.monitor = monitor
        self.patience = checks.non_negative_int("patience", patience)
        self.min_delta = checks.non_negative("min_delta", min_delta)
        self.mode = resolve_mode(monitor, mode)
        self.restore_best_weights = checks.boolean("restore_best_weights", restore_best_weights)
        self.reset()

    def reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_params: np.ndarray | None = None  # flat parameters of the best epoch
        self.best_buffers: dict[str, np.ndarray] | None = None  # and its buffers

    def on_train_begin(self, trainer):
        check_monitor_has_validation(self, trainer)
        self.reset()

    def on_epoch_end(self, trainer, epoch, logs):
        value = monitored(self, logs)
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_params = trainer.model.flat_parameters.copy()
                self.best_buffers = {k: v.copy() for k, v in trainer.model.buffers().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            note = (
                f"early stopping at epoch {epoch + 1}: {self.monitor} has not improved for "
                f"{self.patience} epochs"
            )
            if self.best_epoch is not None:
                note += f"; best {self.monitor} {self.best:.4g} at epoch {self.best_epoch + 1}"
                if self.restore_best_weights:
                    note += "; restored its weights"
            if hasattr(trainer, "note"):  # the training view (a bare object in some tests)
                trainer.note(note)

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_params is not None:
            trainer.model.flat_parameters[...] = self.best_params
            for k, v in trainer.model.buffers().items():
                v[...] = self.best_buffers[k]

    def state_dict(self) -> dict[str, Any]:
        keys = ("best", "best_epoch", "wait", "stopped_epoch", "monitor", "mode")
        state: dict[str, Any] = {k: getattr(self, k) for k in keys}
        if self.best_params is not None:
            state["best_params"] = self.best_params.copy()
            state["best_buffers"] = {k: v.copy() for k, v in (self.best_buffers or {}).items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        checks.same_monitor(self, state)  # a best of another quantity would mislead it
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.wait = int(state["wait"])
        stopped = state["stopped_epoch"]
        self.stopped_epoch = None if stopped is None else int(stopped)
        params = state.get("best_params")
        self.best_params = None if params is None else np.array(params)
        self.best_buffers = (
            None
            if params is None
            else {k: np.array(v) for k, v in state.get("best_buffers", {}).items()}
        )


class CSVLogger(Callback):
    """Write one row per epoch to ``path`` (the header is written with the first row).

    The file follows the trainer's epochs (the ``epoch`` column). A fit that starts at epoch 0
    overwrites it. A fit that continues a run (a resumed checkpoint, a second ``fit`` on the same
    trainer, the estimators' ``partial_fit``) keeps the rows of the epochs already done and
    appends under the file's own header; rows of epochs past the trainer's (written after the
    last checkpoint of a run that then crashed) are dropped, so every epoch appears once.
    With ``append=True`` nothing is ever removed: rows are added to whatever the file holds.
    A value without a column in the file's header (appended to an older file, or first logged
    after the header was written) is left out, with one warning naming it.

    Parameters
    ----------
    path : str
        The CSV file.
    append : bool, default False
        Always add to an existing file, never overwrite or trim it.
    """

    def __init__(self, path: str, append: bool = False) -> None:
        self.path = path
        self.append = append

    def on_train_begin(self, trainer):
        done = int(getattr(trainer, "epoch", 0))
        fields = None
        if self.append or done > 0:
            fields = _keep_csv_rows(self.path, None if self.append else done)
        self._file = open(self.path, "w" if fields is None else "a", newline="")  # noqa: SIM115
        self._fields, self._dropped = fields, set()
        self._writer: csv.DictWriter | None = None

    def on_epoch_end(self, trainer, epoch, logs):
        if self._writer is None:
            self._fields = self._fields or list(logs)  # appended: the file's own columns
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
            if self._file.tell() == 0:
                self._writer.writeheader()
        if dropped := [k for k in logs if k not in self._fields and k not in self._dropped]:
            self._dropped.update(dropped)  # named once (see the class docstring)
            msg = f"{self.path}: {', '.join(dropped)} not in its header; not written"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self._writer.writerow(logs)
        self._file.flush()

    def on_train_end(self, trainer):
        self._file.close()


def _keep_csv_rows(path: str, done: int | None) -> list[str] | None:
    """The header of the CSV file at ``path`` (None when it is missing or empty), after
    dropping its rows whose ``epoch`` exceeds ``done`` (None: keep every row)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        return None
    if not rows or not rows[0]:
        return None
    header = rows[0]
    if done is not None and "epoch" in header:
        col = header.index("epoch")
        kept = [r for r in rows[1:] if not (len(r) > col and _number(r[col]) > done)]
        if len(kept) < len(rows) - 1:
            tmp = f"{path}.tmp"
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([header, *kept])
            os.replace(tmp, path)
    return header


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def resolve_mode(monitor: str, mode: str) -> str:
    """'min' or 'max' for a monitored quantity; 'auto' maximizes accuracy/r2/score names."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(s in monitor for s in ("acc", "r2", "score")) else "min"


def improved(value: float | None, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta``; NaN never improves."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def monitored(cb: Any, logs: dict[str, float]) -> float:
    """``logs[cb.monitor]``, or a clear error when the key never appears (a monitor that
    watched a missing key would silently do nothing)."""
    if cb.monitor not in logs:
        raise KeyError(
            f"{type(cb).__name__} monitors {cb.monitor!r}, which is not in the epoch logs "
            f"{sorted(logs)}; monitor one of those, or put it after the callback that adds it"
        )
    return logs[cb.monitor]


def check_monitor_has_validation(cb: Any, trainer: Any) -> None:
    """A ``val_*`` monitor needs validation data: say so before the first epoch."""
    if cb.monitor.startswith("val_") and not trainer.has_validation:
        raise ValueError(
            f"{type(cb).__name__} monitors {cb.monitor!r} but fit got no validation data; "
            "pass validation_data= or validation_split=, or monitor='loss'"
        )
