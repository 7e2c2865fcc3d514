"""Checks on files that may come from anyone: the zip container, the JSON header, its schemas.

:mod:`backprop.io` reads model and checkpoint files; this module decides what it may trust.
Every check here runs before any array data is read, and every refusal is a
:class:`~backprop.io.ModelFileError` that names the file.

The container (:func:`check_zip_layout`): a zip's directory is written by whoever wrote the file,
so its sizes prove nothing by themselves. Each member's local header is found at its declared
offset, and its data must end inside the file (``offset + header + size <= file length``) without
overlapping another member; names may not repeat. A stored member therefore can never promise
more bytes than the file holds, whatever its directory entry and ``.npy`` header agree to say.

The header (:func:`parse_json`): integers longer than :data:`MAX_INT_DIGITS` digits are refused
while parsing, before Python builds them.

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

import json
import os
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

MAX_INT_DIGITS = 40  # 2**128 has 39 digits: enough for any random-generator state
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header (30 bytes)
LOCAL_MAGIC = b"PK\x03\x04"

Spec = Callable[[Any, str], None]


def _error(where: str, message: str) -> Exception:
    from .io import ModelFileError  # io imports this module

    return ModelFileError(f"{where}: {message}")


# -- the container ---------------------------------------------------------------------------
def check_zip_layout(z: zipfile.ZipFile, f: Any, file_size: int, where: str) -> None:
    """Refuse repeated member names, and members whose data would lie (even partly) outside
    the file's real ``file_size`` bytes or overlap another member. ``f`` is the open file."""
    infos = z.infolist()
    repeated = sorted(n for n, k in Counter(i.filename for i in infos).items() if k > 1)
    if repeated:
        raise _error(where, f"members {repeated} appear more than once")
    spans = []
    for info in infos:
        start = info.header_offset
        if not 0 <= start <= file_size - LOCAL_HEADER.size:
            raise _error(where, f"member {info.filename} starts outside the file")
        f.seek(start)
        fields = LOCAL_HEADER.unpack(f.read(LOCAL_HEADER.size))
        if fields[0] != LOCAL_MAGIC:
            raise _error(where, f"member {info.filename} has no local header at its offset")
        end = start + LOCAL_HEADER.size + fields[10] + fields[11] + info.compress_size
        if end > file_size:
            raise _error(
                where,
                f"member {info.filename} declares {info.compress_size} bytes, more than the "
                f"file's {file_size} bytes hold",
            )
        spans.append((start, end, info.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise _error(where, f"members {name} and {other} overlap")


DEFLATE_MAX_RATIO = 1032  # no valid deflate stream expands more than this


def _npy_need(f: Any, where: str, member: str) -> tuple[int, int]:
    """(header bytes, data bytes) an ``.npy`` stream's own header declares."""
    import numpy as np

    try:
        version = np.lib.format.read_magic(f)
        read = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = read(f)
    except ValueError as exc:
        raise _error(where, f"{member} is not a valid array: {exc}") from None
    count = 1
    for d in shape:
        count *= d
    return f.tell(), count * dtype.itemsize


def check_array_file(path: Any) -> None:
    """Before ``np.load`` reads a data file (``.npy`` or ``.npz``): every array must fit in the
    bytes the file really holds (a compressed member in what its compressed bytes can inflate
    to), so a forged header never makes NumPy allocate more than a small multiple of the file."""
    where = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if where.lower().endswith(".npy"):
            head, need = _npy_need(f, where, "the file")
            if head + need > size:
                raise _error(where, f"declares {need} bytes of data but holds {size - head}")
            return
        try:
            z = zipfile.ZipFile(f)
        except zipfile.BadZipFile as exc:
            raise _error(where, f"not a valid .npz archive ({exc})") from None
        with z:
            check_zip_layout(z, f, size, where)
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                room = info.compress_size
                if info.compress_type != zipfile.ZIP_STORED:
                    room *= DEFLATE_MAX_RATIO
                with z.open(info) as member:
                    head, need = _npy_need(member, where, info.filename)
                if head + need > min(room, info.file_size):
                    raise _error(
                        where, f"{info.filename} declares {need} bytes of data it cannot hold"
                    )


# -- the JSON header ---------------------------------------------------------------------------
def parse_json(text: str, where: str) -> Any:
    """``json.loads`` that refuses integers of more than :data:`MAX_INT_DIGITS` digits."""

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise _error(where, f"header holds an integer of {len(digits)} digits")
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        if type(exc).__name__ == "ModelFileError":
            raise
        raise _error(where, f"header is not valid JSON ({exc})") from None


# -- schemas -----------------------------------------------------------------------------------
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
        raise _error(where, f"{exc.path}: {exc.message}") from None
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


def checkpoint_schema(trainer: Any) -> Spec:
    """The schema of a checkpoint header that ``trainer`` (freshly built) can take: the
    trainer's, optimizer's, schedule's and generators' state have the keys and kinds of the
    live objects' own ``state_dict()``, counts are non-negative integers."""
    state = trainer.state_dict()
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
            "extra": table(
                {"checkpoint_best": optional(number(finite=False))},
                optional=["checkpoint_best"],
                extra=True,
            ),
        }
    )


@contextmanager
def owner_refusals(where: str) -> Iterator[None]:
    """Turn the ``KeyError``/``TypeError``/``ValueError`` an object's ``load_state_dict`` raises
    for a value from a file into a ModelFileError that names the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if type(exc).__name__ == "ModelFileError":
            raise
        raise _error(where, f"state the configured objects refuse: {exc!r}") from None


# -- the estimator table -----------------------------------------------------------------------
def _label(v: Any, path: str) -> None:
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
        "out_activation_": text(["identity", "exp", "logistic", "softmax"]),
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
    }
    required = ["n_features_in_", "n_outputs_", "out_activation_", "n_layers_", "n_iter_"]
    if classifier:
        fitted["classes_"] = list_of(_label, min_length=1)
        fitted["classes_dtype"] = _label_dtype
        fitted["y_type_"] = text(["binary", "multiclass", "multilabel-indicator"])
        required += ["classes_", "classes_dtype", "y_type_"]
    return table(
        {
            "params": table(dict.fromkeys(names, anything), optional=names),
            "model": mapping(anything),
            "fitted": table(fitted, optional=set(fitted) - set(required)),
        }
    )
