"""Checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a model file (same safe archive as :mod:`backprop.io`, kind ``"checkpoint"``)
holding::

    arrays   model/<name>      parameters and buffers
             state/<path>      every array in the trainer's state_dict, named by its place in
                               it (optimizer moments, the validation split, the best weights
                               an EarlyStopping keeps, ...)
             pruning/mask      the pruning mask, bool (n_weights,), when there is one
    header   model architecture, the model's dropout generator state, and the trainer's
             state_dict with each array replaced by {"__array__": name}: epoch, step_count, the
             random streams, optimizer and schedule state (with their types' names: another
             optimizer or schedule, or none where the run had one, is refused on resume),
             every callback's state_dict (in order, whatever its type), and the history

Resuming = build the same model and trainer (same callbacks, in the same order) from the same
config, ``load_checkpoint`` (or ``Checkpoint.resume``), then ``fit`` the remaining
``total_epochs - trainer.epoch`` epochs. The callbacks get their state back right after their
``on_train_begin`` in that fit. On the same machine the final weights are bitwise equal to an
uninterrupted run, for every optimizer but L-BFGS: its curvature pairs live inside SciPy's run,
so a resumed run starts a new one (``load_checkpoint`` warns).

The :class:`Checkpoint` callback must come last in ``callbacks`` (after EarlyStopping and any
callback that adds to the logs), so that what it saves includes this epoch's complete state; the
Trainer refuses a callback with state after it (stateless ones, a ProgressBar, may follow).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, filecheck, schemas
from .callbacks import (
    Callback,
    History,
    check_monitor_has_validation,
    improved,
    monitored,
    resolve_mode,
)
from .io import (
    ModelFileError,
    expected_sequential_arrays,
    read_archive,
    sequential_config,
    write_archive,
)
from .pruning import set_mask

ARRAY = "__array__"


def _split_arrays(value: Any, arrays: dict[str, np.ndarray], path: str = "state") -> Any:
    """``value`` as JSON: every ndarray moved into ``arrays`` under its path in the state
    (``state/optimizer/state.m``, ``state/callbacks/1/EarlyStopping/best_params``) and replaced
    by ``{"__array__": name}``; NumPy scalars become Python numbers."""
    if isinstance(value, np.ndarray):
        name = path if path not in arrays else f"{path}#{len(arrays)}"
        arrays[name] = value
        return {ARRAY: name}
    if isinstance(value, dict):
        return {str(k): _split_arrays(v, arrays, f"{path}/{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_split_arrays(v, arrays, f"{path}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join_arrays(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """The inverse of :func:`_split_arrays`."""
    if isinstance(value, dict):
        if set(value) == {ARRAY}:
            name = value[ARRAY]
            if not isinstance(name, str) or not name.startswith("state/") or name not in arrays:
                raise ModelFileError(f"{where}: the header refers to a missing array {name!r}")
            return arrays[name].copy()
        return {k: _join_arrays(v, arrays, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_arrays(v, arrays, where) for v in value]
    return value


def _model_sized(
    header: dict[str, Any], model: Any, where: str, check_names: bool = False
) -> dict[str, tuple]:
    """``{array: (dtype, shape)}`` of the callbacks' saved weights, whose shapes the model fixes:
    EarlyStopping's best parameters and buffers, WeightSnapshot's snapshot (a forged (1,) array
    would otherwise be broadcast over every weight when they are put back), TrajectoryRecorder's
    snapshots (one row per recorded epoch, as many as the file declares)."""
    flat = (model.dtype.str, (model.n_parameters,))
    buffers = {k: (v.dtype.str, v.shape) for k, v in model.buffers().items()}
    out: dict[str, tuple] = {}
    for i, entry in enumerate((header.get("trainer") or {}).get("callbacks") or []):
        state, kind = entry["state"], entry["type"]
        ref = state.get({"EarlyStopping": "best_params", "WeightSnapshot": "params"}.get(kind, ""))
        if isinstance(ref, dict):
            out[ref[ARRAY]] = flat
        rows = state.get("snapshots") if kind == "TrajectoryRecorder" else None
        spec = (header.get("arrays") or {}).get(rows[ARRAY]) if isinstance(rows, dict) else None
        if isinstance(spec, dict) and spec.get("shape") and spec["shape"][0]:  # (0: none yet)
            out[rows[ARRAY]] = (flat[0], (spec["shape"][0], model.n_parameters))
        if kind == "EarlyStopping" and isinstance(ref, dict):
            saved = state.get("best_buffers", {})
            if set(saved) != set(buffers) and check_names:  # (after the model's own check)
                raise ModelFileError(
                    f"{where}: callback {i} (EarlyStopping) keeps best buffers {sorted(saved)}, "
                    f"the model's are {sorted(buffers)}"
                )
            out.update({saved[k][ARRAY]: buffers[k] for k in saved if k in buffers})
    return out


def _check_optimizer_sizes(saved: dict[str, Any], model: Any, where: str) -> None:
    """The optimizer's moments (``state.*``) must be arrays of the model's flat dtype and shape,
    and Adam's step counts must cover its parameters: the optimizer's own loader cannot know
    the model, so it would take them and fail at the next step, after the resume."""
    flat = (model.dtype, (model.n_parameters,))
    for key, value in saved.items():
        if not (key.startswith("state.") or isinstance(value, np.ndarray)):
            continue
        if not isinstance(value, np.ndarray):
            raise ModelFileError(f"{where}: optimizer state {key!r} is {value!r}, not an array")
        if (value.dtype, value.shape) != flat:
            raise ModelFileError(
                f"{where}: optimizer array {key!r} is {value.dtype} {value.shape}, the model's "
                f"parameters are {flat[0]} {flat[1]}"
            )
    counts = saved.get("step_counts")
    last = counts[-1] if isinstance(counts, list) and counts else None
    if isinstance(last, list) and len(last) == 3 and last[1] != model.n_parameters:
        raise ModelFileError(
            f"{where}: the optimizer's step_counts cover {last[1]!r} entries, the model has "
            f"{model.n_parameters} parameters"
        )


def _check_same_model(saved: Any, model: Any, where: str) -> None:
    """Refuse a checkpoint of another architecture, naming the first difference. The model's
    config is compared as the file holds it (JSON: a layer's tuple setting is a list there)."""
    live = json.loads(json.dumps(sequential_config(model)))
    if saved == live:
        return
    diff = "its architecture"
    if isinstance(saved, dict):
        for key in ("dtype", "input_shape"):
            if saved.get(key) != live.get(key):
                diff = f"{key} is {saved.get(key)!r} in the checkpoint, {live.get(key)!r} here"
        layers = saved.get("layers")
        if isinstance(layers, list) and len(layers) != len(live["layers"]):
            diff = f"{len(layers)} layers in the checkpoint, {len(live['layers'])} here"
        elif isinstance(layers, list):
            for i, (a, b) in enumerate(zip(layers, live["layers"], strict=True)):
                if a != b:
                    diff = f"layer {i} is {a} in the checkpoint, {b} in the configured model"
                    break
    raise ModelFileError(f"{where}: the checkpoint's model differs from the configured one: {diff}")


def save_checkpoint(
    path: str | Path,
    trainer: Any,
    logs: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the complete training state of ``trainer`` to ``path`` atomically.

    ``trainer`` is a Trainer or the TrainingView a callback gets. ``logs``: the epoch's logs
    when called from ``on_epoch_end`` (the History callback has not recorded them yet; they
    are added to the saved history).

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

    Raises
    ------
    ValueError
        When the trainer is inside an epoch (a fit stopped part-way by Ctrl-C or an error, or
        a save from a batch hook): only an epoch's end can be resumed as if nothing stopped.
    """
    owner = getattr(trainer, "_trainer", trainer)  # the Trainer behind a TrainingView
    unfinished = getattr(owner, "_unfinished", None)
    at_its_end = logs is not None and unfinished == owner.epoch - 1  # on_epoch_end, with logs
    if unfinished is not None and not at_its_end:
        raise ValueError(
            f"the trainer is inside epoch {unfinished + 1} or its end hooks (stopped by Ctrl-C "
            "or an error, or saving from a batch hook): its weights, optimizer state, random "
            "streams, callbacks and history are part-way through that epoch, so a resumed run "
            "would not continue it; checkpoint at an epoch's end (Checkpoint does, from "
            "on_epoch_end with its logs), or keep these weights with bp.save(model, path)"
        )
    model = trainer.model
    state = trainer.state_dict()
    if logs is not None:
        history = History()
        history.update(state["history"])
        history.on_epoch_end(None, trainer.epoch - 1, logs)
        state["history"] = dict(history)
    arrays: dict[str, np.ndarray] = {}
    header_state = _split_arrays(state, arrays)
    arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
    if model.weight_mask is not None:  # pruning hook (issue 15): the mask survives resume
        arrays["pruning/mask"] = model.weight_mask
    header = {
        "kind": "checkpoint",
        "model": sequential_config(model),
        "model_rng": model.rng.bit_generator.state,
        "trainer": header_state,
        "extra": _split_arrays(extra or {}, {}),
    }
    write_archive(path, header, arrays)


def load_checkpoint(path: str | Path, trainer: Any) -> dict[str, Any]:
    """Restore ``trainer`` (and its model) from a checkpoint; returns the header (its
    ``"trainer"`` entry with the arrays put back).

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
        for name, spec in header["arrays"].items():
            if name.startswith("state/"):  # sizes checked against the file; owners check use
                wanted[name] = (spec["dtype"], tuple(spec["shape"]))
            elif name == "pruning/mask":
                wanted[name] = ("|b1", (model.n_weights,))
        wanted.update(_model_sized(header, model, where))
        return wanted

    header, arrays = read_archive(path, expect)
    _check_same_model(header.get("model"), model, where)
    weight_like = [  # never NaN in a saved run (training stops first): the model's arrays,
        *(n for n in arrays if n.startswith(("model/", "state/optimizer/"))),  # the moments,
        *_model_sized(header, model, where, check_names=True),  # the best weights kept
    ]
    for name in weight_like:
        value = arrays.get(name)
        if value is not None and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{where}: array {name!r} contains NaN or infinity")
    state = _join_arrays(header.get("trainer"), arrays, where)
    if not isinstance(state, dict):
        raise ModelFileError(f"{where}: the checkpoint has no trainer state")
    had, has = state.get("schedule") is not None, trainer.state_dict()["schedule"] is not None
    if had != has:  # (the schedule's state would be dropped, or a new one start mid-run)
        raise ModelFileError(
            f"{where}: the run had {'a' if had else 'no'} schedule, this trainer has "
            f"{'one' if has else 'none'}: resume with the trainer the run had"
        )
    _check_optimizer_sizes(state.get("optimizer", {}), model, where)
    weights = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    with filecheck.owner_refusals(where):  # the owners' own checks, as file errors
        model._check_state_dict(weights)  # (a negative variance): before anything changes
        for entry in state.get("callbacks", []):  # best weights EarlyStopping would put back
            if entry["type"] == "EarlyStopping" and entry["state"].get("best_buffers"):
                try:
                    model._check_buffer_bounds(entry["state"]["best_buffers"])
                except ValueError as exc:
                    raise ValueError(f"EarlyStopping's best buffers: {exc}") from None
        trainer.load_state_dict(state)
        model.rng.bit_generator.state = header["model_rng"]
    model.load_state_dict(weights)
    set_mask(model, arrays.get("pruning/mask"))  # pruning hook: the run's mask, or none
    if not trainer.has_learning_rate and state["epoch"] > 0:
        warnings.warn(
            f"{where}: L-BFGS keeps its curvature pairs inside SciPy's run, which no checkpoint "
            "holds: the resumed run starts a new one from the saved weights, so it does not "
            "end bitwise equal to an uninterrupted run",
            UserWarning,
            stacklevel=2,
        )
    header["trainer"] = state
    return header


def restore_early_stopping(trainer: Any, header: dict[str, Any]) -> None:
    """Give the callbacks their checkpointed state now (for a finished run that will not be
    fitted again). Kept under its old name: it restores every callback, not only EarlyStopping."""
    trainer.restore_callbacks()


def stopped_early(header: dict[str, Any]) -> bool:
    """Whether an EarlyStopping callback had already ended the checkpointed run."""
    return any(
        entry["type"] == "EarlyStopping" and entry["state"].get("stopped_epoch") is not None
        for entry in header["trainer"].get("callbacks", [])
    )


class Checkpoint(Callback):
    """Save the full training state every ``every`` epochs (and at the last epoch) to ``path``;
    with ``best_path``, also whenever ``monitor`` improves. Writes are atomic.

    With ``best_path``, a ``val_*`` monitor without validation data, or a monitored key that
    never appears in the logs, is an error (as for EarlyStopping), not a best file never written.
    Put it last in ``callbacks``. ``resume(trainer)`` loads ``path`` into a freshly built
    trainer; every callback gets its state back when training begins.

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
        self.path = Path(path)
        self.every = checks.positive_int("every", every)
        self.best_path = None if best_path is None else Path(best_path)
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.best: float | None = None

    def resume(self, trainer: Any, path: str | Path | None = None) -> dict[str, Any]:
        """Load a checkpoint into ``trainer``; returns its header. The callbacks get their
        state back when the next ``fit`` begins."""
        return load_checkpoint(self.path if path is None else path, trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "monitor": self.monitor, "mode": self.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["best"] is not None:  # (without best_path it never keeps one)
            checks.same_monitor(self, state)
        self.best = None if state["best"] is None else float(state["best"])

    def on_train_begin(self, trainer):
        if self.best_path is not None:  # a monitor that never appears would never save one
            check_monitor_has_validation(self, trainer)

    def on_epoch_end(self, trainer, epoch, logs):
        value = monitored(self, logs) if self.best_path is not None else math.nan
        better = self.best_path is not None and improved(value, self.best, self.mode, 0.0)
        if better:
            self.best = float(value)
        done = epoch + 1
        if done % self.every == 0 or done == trainer.end_epoch or trainer.stop_training:
            save_checkpoint(self.path, trainer, logs)
        if better:
            save_checkpoint(self.best_path, trainer, logs)
