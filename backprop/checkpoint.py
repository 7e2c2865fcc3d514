"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a model file (same safe archive as :mod:`backprop.io`, kind ``"checkpoint"``)
holding::

    arrays   model/<name>            parameters and buffers
             optimizer/state.<k>     optimizer moments / velocity (flat, one per kind)
             early_stopping/<j>/...  the best weights an EarlyStopping callback keeps
    header   model architecture, the model's dropout generator state, the trainer's
             epoch, step_count, shuffle and split generator states, optimizer and schedule
             scalars, history, early-stopping counters, and the Checkpoint's own best score

Resuming = build the same model and trainer from the same config, ``load_checkpoint`` (or
``Checkpoint.resume``), then ``fit`` the remaining ``total_epochs - trainer.epoch`` epochs. On the
same machine the final weights are bitwise equal to an uninterrupted run.

The :class:`Checkpoint` callback must come last in ``callbacks`` (after EarlyStopping and any
callback that adds to the logs), so that what it saves includes this epoch's complete state.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import filecheck, schemas
from .callbacks import Callback, EarlyStopping, History
from .io import (
    ModelFileError,
    expected_sequential_arrays,
    read_archive,
    sequential_config,
    write_archive,
)
from .schedules import improved, resolve_mode


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_checkpoint(
    path: str | Path,
    trainer: Any,
    logs: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the complete training state of ``trainer`` to ``path`` atomically.

    ``logs``: the epoch's logs when called from ``on_epoch_end`` (the History callback has not
    recorded them yet; they are added to the saved history).

    Parameters
    ----------
    path : str | Path
        Where to write.
    trainer : Any
        The :class:`Trainer` whose state is saved.
    logs : dict[str, float] | None, default None
        The epoch's logs when called from ``on_epoch_end``.
    extra : dict[str, Any] | None, default None
        JSON values stored in the header.
    """
    model = trainer.model
    state = trainer.state_dict()
    if logs is not None:
        history = History()
        history.update(state["history"])
        history.on_epoch_end(trainer, trainer.epoch - 1, logs)
        state["history"] = {k: [_json_value(x) for x in v] for k, v in history.items()}
    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in model.state_dict().items()}
    optimizer = {}
    for key, value in state.pop("optimizer").items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer/{key}"] = value
        else:
            optimizer[key] = _json_value(value)
    stoppers = []
    for j, es in enumerate(cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)):
        stoppers.append({k: _json_value(v) for k, v in es.state_dict().items()})
        if es._best_params is not None:
            arrays[f"early_stopping/{j}/params"] = es._best_params
            for k, v in (es._best_buffers or {}).items():
                arrays[f"early_stopping/{j}/buffers/{k}"] = v
    header = {
        "kind": "checkpoint",
        "model": sequential_config(model),
        "model_rng": model.rng.bit_generator.state,
        "trainer": state,
        "optimizer": optimizer,
        "early_stopping": stoppers,
        "extra": extra or {},
    }
    write_archive(path, header, arrays)


def load_checkpoint(path: str | Path, trainer: Any) -> dict[str, Any]:
    """Restore ``trainer`` (and its model) from a checkpoint; returns the header, whose
    ``"early_stopping"`` entries are applied by :func:`restore_early_stopping`.

    Parameters
    ----------
    path : str | Path
        A file written by :func:`save_checkpoint` or :class:`Checkpoint`.
    trainer : Any
        The :class:`Trainer` to restore, in place (with its model, optimizer and random streams).

    Returns
    -------
    dict[str, Any]
        The checkpoint's header (epoch, logs, early-stopping state).
    """
    model = trainer.model
    where = str(path)

    def expect(header):
        if header.get("kind") != "checkpoint":
            raise ModelFileError(f"{where}: not a checkpoint (kind {header.get('kind')!r})")
        schemas.check(header, schemas.checkpoint_schema(trainer), where, "header")
        shape = (header.get("model") or {}).get("input_shape")
        if not model.built and isinstance(shape, list):
            try:  # a model that waits for its first data takes the checkpoint's input shape
                filecheck.check_fits(
                    expected_sequential_arrays({**sequential_config(model), "input_shape": shape}),
                    Path(path).stat().st_size,
                    where,
                )  # before build allocates what a forged input_shape implies
                model.build(shape)
            except ValueError as exc:
                if isinstance(exc, ModelFileError):
                    raise
                raise ModelFileError(f"{where}: {exc}") from None
        wanted = {f"model/{k}": (v.dtype.str, v.shape) for k, v in model.state_dict().items()}
        flat = (model.dtype.str, (model.n_parameters,))
        for name, spec in header["arrays"].items():
            if name.startswith("optimizer/") or (
                name.startswith("early_stopping/") and name.endswith("/params")
            ):
                wanted[name] = flat  # flat vectors the size of the model's parameters
            elif name.startswith("early_stopping/"):
                wanted[name] = (spec["dtype"], tuple(spec["shape"]))  # checked by load
        return wanted

    header, arrays = read_archive(path, expect)
    if header.get("model") != sequential_config(model):
        raise ModelFileError(f"{where}: the checkpoint's model differs from the configured one")
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    state = dict(header["trainer"])
    state["optimizer"] = {
        **header["optimizer"],
        **{k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")},
    }
    with filecheck.owner_refusals(where):  # the owners' own checks, as file errors
        model.rng.bit_generator.state = header["model_rng"]
        trainer.load_state_dict(state)
    header["_arrays"] = arrays
    return header


def restore_early_stopping(trainer: Any, header: dict[str, Any]) -> None:
    """Put the checkpoint's early-stopping counters and best weights back (after the
    callbacks' own ``on_train_begin`` reset them)."""
    arrays = header["_arrays"]
    stoppers = [cb for cb in trainer.callbacks if isinstance(cb, EarlyStopping)]
    if len(stoppers) != len(header["early_stopping"]):
        raise ModelFileError("the checkpoint's early-stopping callbacks differ from the configured")
    for j, (es, saved) in enumerate(zip(stoppers, header["early_stopping"], strict=True)):
        es.best, es.best_epoch = saved["best"], saved["best_epoch"]
        es.wait, es.stopped_epoch = saved["wait"], saved["stopped_epoch"]
        params = arrays.get(f"early_stopping/{j}/params")
        es._best_params = None if params is None else params.copy()
        prefix = f"early_stopping/{j}/buffers/"
        es._best_buffers = (
            None
            if params is None
            else {k[len(prefix) :]: v.copy() for k, v in arrays.items() if k.startswith(prefix)}
        )


def stopped_early(header: dict[str, Any]) -> bool:
    """Whether an EarlyStopping callback had already ended the checkpointed run."""
    return any(s.get("stopped_epoch") is not None for s in header["early_stopping"])


class Checkpoint(Callback):
    """Save the full training state every ``every`` epochs (and at the last epoch) to ``path``;
    with ``best_path``, also whenever ``monitor`` improves. Writes are atomic.

    Put it last in ``callbacks``. ``resume(trainer)`` loads ``path`` into a freshly built
    trainer and re-applies early-stopping state when training begins.

    Parameters
    ----------
    path : str | Path
        The checkpoint file (overwritten every ``every`` epochs).
    every : int, default 1
        Epochs between two saves.
    best_path : str | Path | None, default None
        Optional second file, written whenever ``monitor`` improves.
    monitor : str, default 'val_loss'
        The logged value that decides the best epoch.
    mode : str, default 'auto'
        "min", "max" or "auto".
    """

    def __init__(
        self,
        path: str | Path,
        every: int = 1,
        best_path: str | Path | None = None,
        monitor: str = "val_loss",
        mode: str = "auto",
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.every = every
        self.best_path = None if best_path is None else Path(best_path)
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.best: float | None = None
        self._pending: dict[str, Any] | None = None

    def resume(self, trainer: Any, path: str | Path | None = None) -> dict[str, Any]:
        """Load a checkpoint into ``trainer``; returns its header."""
        header = load_checkpoint(self.path if path is None else path, trainer)
        best = header.get("extra", {}).get("checkpoint_best")
        self.best = None if best is None else float(best)
        self._pending = header
        return header

    def on_train_begin(self, trainer):
        if trainer.callbacks and trainer.callbacks[-1] is not self:
            warnings.warn(
                "Checkpoint is not the last callback: it may save an incomplete epoch state",
                RuntimeWarning,
                stacklevel=2,
            )
        if self._pending is not None:
            restore_early_stopping(trainer, self._pending)
            self._pending = None

    def on_epoch_end(self, trainer, epoch, logs):
        value = logs.get(self.monitor, math.nan)
        better = self.best_path is not None and improved(value, self.best, self.mode, 0.0)
        if better:
            self.best = float(value)
        extra = {"checkpoint_best": self.best}
        done = epoch + 1
        if done % self.every == 0 or done == trainer.end_epoch or trainer.stop_training:
            save_checkpoint(self.path, trainer, logs, extra)
        if better:
            save_checkpoint(self.best_path, trainer, logs, extra)
