"""Schemas for the JSON inside model and checkpoint files: every field checked before use.

Schemas (:func:`check`): small validators, each a function ``(value, path) -> None`` that raises
:class:`Invalid`::

    integer(low, high)   an int (not a bool) in [low, high]
    number(low, finite)  an int or float, finite unless finite=False
    text(choices)        a str, one of ``choices`` when given
    optional(spec)       None or spec
    list_of(spec, n)     a list of spec items (exactly n when given)
    mapping(spec)        a dict of str keys to spec values
    table(fields, optional=(), extra=False)
                         a dict with exactly these keys (some optional; extra=True lets other
                         keys through unchecked)
    like(template)       the shape of a live object's state: the same keys, ints where it has
                         ints, numbers where it has floats, the same strings; None in the
                         template lets any JSON value through to the owner's own loader
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Spec = Callable[[Any, str], None]


class Invalid(Exception):
    """A value that does not fit its schema: ``path`` says where, ``message`` what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(low: int | None = 0, high: int | None = None) -> Spec:
    def spec(v: Any, path: str) -> None:
        if not _is_int(v) or (low is not None and v < low) or (high is not None and v > high):
            span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
            raise Invalid(path, f"expected an integer in {span}, got {v!r}")

    return spec


def number(low: float | None = None, finite: bool = True) -> Spec:
    def spec(v: Any, path: str) -> None:
        ok = _is_int(v) or isinstance(v, float)
        if ok and isinstance(v, float) and v != v:  # NaN
            ok = not finite
        elif ok and finite and abs(v) == float("inf"):
            ok = False
        elif ok and low is not None and v < low:
            ok = False
        if not ok:
            kind = "a finite number" if finite else "a number"
            raise Invalid(path, f"expected {kind}{'' if low is None else f' >= {low}'}, got {v!r}")

    return spec


def text(choices: Iterable[str] | None = None) -> Spec:
    allowed = None if choices is None else sorted(choices)

    def spec(v: Any, path: str) -> None:
        if not isinstance(v, str) or (allowed is not None and v not in allowed):
            raise Invalid(path, f"expected {'text' if allowed is None else allowed}, got {v!r}")

    return spec


def boolean(v: Any, path: str) -> None:
    if not isinstance(v, bool):
        raise Invalid(path, f"expected true or false, got {v!r}")


def anything(v: Any, path: str) -> None:
    return None


def optional(inner: Spec) -> Spec:
    def spec(v: Any, path: str) -> None:
        if v is not None:
            inner(v, path)

    return spec


def list_of(inner: Spec, length: int | None = None, min_length: int = 0) -> Spec:
    def spec(v: Any, path: str) -> None:
        if not isinstance(v, list):
            raise Invalid(path, f"expected a list, got {type(v).__name__}")
        if (length is not None and len(v) != length) or len(v) < min_length:
            want = f"{length}" if length is not None else f"at least {min_length}"
            raise Invalid(path, f"expected {want} items, got {len(v)}")
        for i, item in enumerate(v):
            inner(item, f"{path}[{i}]")

    return spec


def mapping(inner: Spec) -> Spec:
    def spec(v: Any, path: str) -> None:
        if not isinstance(v, dict):
            raise Invalid(path, f"expected a table, got {type(v).__name__}")
        for key, item in v.items():
            inner(item, f"{path}.{key}")

    return spec


def table(fields: dict[str, Spec], optional: Iterable[str] = (), extra: bool = False) -> Spec:
    may_lack = set(optional)

    def spec(v: Any, path: str) -> None:
        if not isinstance(v, dict):
            raise Invalid(path, f"expected a table, got {type(v).__name__}")
        missing = sorted(set(fields) - may_lack - set(v))
        unknown = [] if extra else sorted(set(v) - set(fields))
        if missing or unknown:
            raise Invalid(
                path,
                f"{'missing ' + str(missing) if missing else ''}"
                f"{'; ' if missing and unknown else ''}"
                f"{'unknown ' + str(unknown) if unknown else ''} (allowed: {sorted(fields)})",
            )
        for key, inner in fields.items():
            if key in v:
                inner(v[key], f"{path}.{key}")

    return spec


def like(template: Any, overrides: dict[str, Spec] | None = None) -> Spec:
    """The shape of ``template`` (a live object's state); ``overrides`` replace the specs of
    top-level keys the template has."""
    if isinstance(template, dict):
        fields = {k: like(v) for k, v in template.items()}
        fields.update({k: s for k, s in (overrides or {}).items() if k in template})
        return table(fields)
    if isinstance(template, list | tuple):
        return list_of(like(template[0])) if template else list_of(anything)
    if isinstance(template, bool):
        return boolean
    if _is_int(template):
        return integer(0 if template >= 0 else None)
    if isinstance(template, float):
        return number(finite=template == template and abs(template) != float("inf"))
    if isinstance(template, str):
        return text([template])
    return anything  # None or an array: the owner's loader checks the value


def check(value: Any, spec: Spec, where: str, what: str) -> Any:
    """``value`` when it fits ``spec``, else a ModelFileError naming the file and the field."""
    try:
        spec(value, what)
    except Invalid as exc:
        from .io import ModelFileError  # io imports this module's users

        raise ModelFileError(f"{where}: {exc.path}: {exc.message}") from None
    return value


# -- the checkpoint header ---------------------------------------------------------------------
EARLY_STOPPING_STATE = table(
    {
        "best": optional(number(finite=False)),
        "best_epoch": optional(integer(0)),
        "wait": integer(0),
        "stopped_epoch": optional(integer(0)),
    }
)
HISTORY = mapping(list_of(optional(number(finite=False))))


ARRAY_REF = table({"__array__": text()})  # an array stored beside the header, by name
MONITOR = {"monitor": text(), "mode": text(["min", "max"])}  # what a best value is of
CALLBACK_STATES = {
    "EarlyStopping": table(
        {
            "best": optional(number(finite=False)),
            "best_epoch": optional(integer(0)),
            "wait": integer(0),
            "stopped_epoch": optional(integer(0)),
            "best_params": ARRAY_REF,
            "best_buffers": mapping(ARRAY_REF),
            **MONITOR,
        },
        optional=["best_params", "best_buffers", *MONITOR],  # (monitor: absent from older files)
    ),
    "Checkpoint": table({"best": optional(number(finite=False)), **MONITOR}, optional=MONITOR),
    "WeightSnapshot": table({"params": optional(ARRAY_REF)}),
    "ReduceLROnPlateau": table(
        {
            "base_lr": optional(number(0)),
            "scale": lambda v, path: _plateau_scale(v, path),
            "best": optional(number(finite=False)),
            "wait": integer(0),
            **MONITOR,
        },
        optional=MONITOR,
    ),
}
CALLBACK_STATES["GradientMonitor"] = table({"warned": list_of(text())})
CALLBACK_STATES["ActivationRecorder"] = table({"start": mapping(ARRAY_REF)})
CALLBACK_STATES["TrajectoryRecorder"] = table(
    {"snapshots": ARRAY_REF, "epochs": list_of(integer(0))}
)


def _plateau_scale(v: Any, path: str) -> None:
    """A plateau's scale: a product of factors in (0, 1), so in [0, 1] (0 after underflow)."""
    number(0)(v, path)
    if v > 1:
        raise Invalid(path, f"expected a number in [0, 1] (a product of factors < 1), got {v!r}")


EXTRA = table({"checkpoint_best": optional(number(finite=False))}, ["checkpoint_best"], True)


def _callback_entry(v: Any, path: str) -> None:
    table({"type": text(), "state": mapping(anything)})(v, path)
    CALLBACK_STATES.get(v["type"], anything)(v["state"], f"{path}.state")


def _scalars_like(live: dict[str, Any]) -> Spec:
    """An optimizer's state: its live scalars' keys and kinds (iterations a count, lr >= 0),
    and any further keys (arrays, by reference) left to the optimizer's own loader."""
    specs = {k: like(v) for k, v in live.items() if not hasattr(v, "shape")}
    specs.update({k: s for k, s in (("iterations", integer(0)), ("lr", number(0))) if k in specs})
    # type: this optimizer's name only; step_counts: Adam's, absent from older checkpoints
    return table(specs, optional=["type", "step_counts"], extra=True)


def _schedule_like(live: dict[str, Any] | None) -> Spec:
    """A stepped schedule's state: this trainer's schedule's keys (and its type's name only);
    whether the run had a schedule at all is :func:`~backprop.checkpoint.load_checkpoint`'s
    check, after the model's."""
    if live is None:
        return optional(mapping(anything))
    fields = {k: optional(number(finite=False)) for k in live if k != "type"}
    fields["type"] = text([live["type"]]) if "type" in live else anything
    return optional(table(fields, optional=["type"]))


def checkpoint_schema(trainer: Any) -> Spec:
    """The schema of a checkpoint header that ``trainer`` (freshly built) can take: the
    trainer's, optimizer's, schedule's and generators' state have the keys and kinds of the
    live objects' own ``state_dict()``, counts are non-negative integers."""
    state = trainer.state_dict()
    if "callbacks" in state:  # every callback's state inside the trainer's, arrays by name
        return _checkpoint_schema_nested(trainer, state)
    scalars = {k: v for k, v in state.pop("optimizer").items() if not hasattr(v, "shape")}
    counts = {k: integer(0) for k in ("epoch", "step_count") if k in state}
    return table(
        {
            "format": anything,  # format, version and arrays: checked by io.read_archive
            "version": anything,
            "arrays": anything,
            "kind": text(["checkpoint"]),
            "model": mapping(anything),  # compared with the configured model's own
            "model_rng": like(trainer.model.rng.bit_generator.state),
            "trainer": like(state, {**counts, "history": HISTORY}),
            "optimizer": like(scalars, {"iterations": integer(0), "lr": number(0)}),
            "early_stopping": list_of(EARLY_STOPPING_STATE),
            "extra": EXTRA,
        }
    )


def _checkpoint_schema_nested(trainer: Any, state: dict[str, Any]) -> Spec:
    schedule = state.get("schedule")
    overrides = {
        "epoch": integer(0),
        "step_count": integer(0),
        "optimizer": _scalars_like(state["optimizer"]),
        "schedule": _schedule_like(schedule if isinstance(schedule, dict) else None),
        "validation_split": optional(
            table({"n": integer(1), "fraction": number(0), "val_idx": ARRAY_REF}, extra=True)
        ),
        "callbacks": list_of(_callback_entry),
        "history": HISTORY,
    }
    return table(
        {
            "format": anything,  # format, version and arrays: checked by io.read_archive
            "version": anything,
            "arrays": anything,
            "kind": text(["checkpoint"]),
            "model": mapping(anything),  # compared with the configured model's own
            "model_rng": like(trainer.model.rng.bit_generator.state),
            "trainer": like(state, overrides),
            "extra": EXTRA,
        }
    )


# -- the estimator table -----------------------------------------------------------------------
def _generator_state(v: Any, path: str) -> None:
    """The state of the network's random stream (dropout, random shifts): a PCG64 state."""
    import numpy as np

    like(np.random.default_rng(0).bit_generator.state)(v, path)


def label(v: Any, path: str) -> None:
    if not isinstance(v, int | float | str):  # bool is an int
        raise Invalid(path, f"expected a class label (number, bool or text), got {v!r}")


def _label_dtype(v: Any, path: str) -> None:
    import numpy as np

    try:
        ok = v == "object" or np.dtype(v).kind in "biufU"
    except TypeError:
        ok = False
    if not isinstance(v, str) or not ok:
        raise Invalid(path, f"expected 'object' or a bool, int, float or str dtype, got {v!r}")


def estimator_schema(param_names: Iterable[str], classifier: bool) -> Spec:
    """The ``config`` table of a saved MLPClassifier/MLPRegressor: exactly its constructor
    parameters (values checked by the estimator's own ``_check_params``), the network, and the
    fitted attributes below and no others (a file never sets an arbitrary attribute)."""
    names = list(param_names)  # a parameter the file leaves out takes its default
    curve = list_of(number(finite=False))
    score = optional(number(finite=False))
    fitted = {
        "n_features_in_": integer(1),
        "n_outputs_": integer(1),
        "out_activation_": text(["logistic", "softmax"] if classifier else ["identity", "exp"]),
        "n_layers_": integer(2),
        "n_iter_": integer(0),
        "t_": integer(0),
        "loss_": score,
        "best_loss_": score,
        "best_validation_score_": score,
        "loss_curve_": curve,
        "validation_loss_curve_": optional(curve),
        "validation_scores_": optional(curve),
        "feature_names_in_": list_of(text()),
        "_no_improvement_count": integer(0),  # the tol stop of a warm fit goes on counting
        "_updates": integer(0),  # the update count the next partial_fit goes on from
    }
    required = ["n_features_in_", "n_outputs_", "out_activation_", "n_layers_", "n_iter_"]
    if classifier:
        fitted["classes_"] = list_of(label, min_length=1)
        fitted["classes_dtype"] = _label_dtype
        fitted["y_type_"] = text(["binary", "multiclass", "multilabel-indicator"])
        required += ["classes_", "classes_dtype", "y_type_"]
    return table(
        {
            "params": table(dict.fromkeys(names, anything), optional=names),
            "model": mapping(anything),
            "fitted": table(fitted, optional=set(fitted) - set(required)),
            "model_rng": _generator_state,
        },
        optional=["model_rng"],  # (files written before it was kept)
    )


def _history_pair(v: Any, path: str) -> None:
    list_of(anything, 2)(v, path)
    text()(v[0], f"{path}[0]")
    list_of(optional(number(finite=False)))(v[1], f"{path}[1]")


def neuralnet_schema(param_names: Iterable[str], classifier: bool) -> Spec:
    """The ``config`` table of a saved NeuralNetClassifier/NeuralNetRegressor: its constructor
    parameters (checked when it is fitted again), the network, and the fitted attributes
    ``predict``, ``score`` and ``warm_start`` read, with their kinds."""
    names = list(param_names)
    fitted = {
        "n_features_in_": integer(1),
        "n_outputs_": integer(1),
        "n_iter_": integer(0),
        "loss_curve_": list_of(number(finite=False)),
        "history_": table({"__pairs__": list_of(_history_pair)}),
        "_seed": integer(0),
        "feature_names_in_": list_of(text()),
    }
    if classifier:
        fitted.update(classes_=list_of(label, min_length=2), classes_dtype=_label_dtype)
    else:
        fitted.update(_y_1d=boolean, _exp_link=boolean)
    return table(
        {
            "params": table(dict.fromkeys(names, anything), optional=names),
            "model": mapping(anything),
            "fitted": table(fitted, optional=["feature_names_in_", "_exp_link"]),  # (older files)
            "model_rng": _generator_state,
        },
        optional=["model_rng"],  # (files written before it was kept)
    )
