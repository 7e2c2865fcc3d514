"""Safe model files: JSON for the architecture, ``.npy`` members for the arrays, one ``.npz``.

File layout (an uncompressed zip, readable by ``np.load(path, allow_pickle=False)``)::

    __header__.npy      uint8 bytes of a UTF-8 JSON object:
                        {"format": "backprop", "version": 1, "kind": "Sequential",
                         "config": {...}, "metadata": {...},
                         "arrays": {"0.W": {"dtype": "<f4", "shape": [64, 128]}, ...}}
    0.W.npy, 0.b.npy, ...   one member per declared array

Reading never unpickles and checks before it reads: the header's size is bounded, its version
must be one this library writes, every declared array must be present with exactly the declared
dtype and shape (read from the member's own ``.npy`` header) and a byte count that matches, and
only then is any data read. Layer types resolve through :data:`backprop.layers.REGISTRY` only,
and the arrays a model needs come from its layers' own ``build`` and ``param_specs``.
Anything else raises :class:`ModelFileError` naming the file and the problem.

Writes are atomic: a temporary file in the target's folder, flushed to disk, then ``os.replace``.

Plugging in another kind of object (the hook estimators use)::

    register_kind(name, cls, to_payload, from_payload)

    to_payload(obj)                     -> (config: JSON-able dict, arrays: {name: ndarray})
    from_payload(config, arrays, path)  -> obj      (arrays already shape-checked)
    expected_arrays(config)             -> optional {name: (dtype, shape)} checked before reading

``save`` picks the kind by the object's type (exact class first, then ``isinstance``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import filecheck, pruning_files
from . import layers as layers_mod
from .model import Sequential

FORMAT = "backprop"
VERSION = 1
HEADER = "__header__"
MAX_HEADER_BYTES = 16 * 2**20
ALLOWED_DTYPES = {"<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<u8"}


class ModelFileError(ValueError):
    """A model or checkpoint file that is malformed, truncated, or of an unknown version."""


@dataclass
class Kind:
    """How one type of object becomes a config dict plus arrays, and back."""

    name: str
    cls: type
    to_payload: Callable[[Any], tuple[dict[str, Any], dict[str, np.ndarray]]]
    from_payload: Callable[[dict[str, Any], dict[str, np.ndarray], str], Any]
    expected_arrays: Callable[[dict[str, Any]], dict[str, tuple[str, tuple[int, ...]]]] | None = (
        None
    )


KINDS: dict[str, Kind] = {}


def register_kind(
    name: str,
    cls: type,
    to_payload: Callable[[Any], tuple[dict[str, Any], dict[str, np.ndarray]]],
    from_payload: Callable[[dict[str, Any], dict[str, np.ndarray], str], Any],
    expected_arrays: Callable[[dict[str, Any]], dict[str, tuple[str, tuple[int, ...]]]]
    | None = None,
) -> None:
    """Make objects of type ``cls`` savable under the name ``name`` (see the module docstring).

    Parameters
    ----------
    name : str
        The kind's name in the file header.
    cls : type
        The type of the objects.
    to_payload : Callable[[Any], tuple[dict[str, Any], dict[str, np.ndarray]]]
        ``obj -> (json_header, arrays)``.
    from_payload : Callable[[dict[str, Any], dict[str, np.ndarray], str], Any]
        ``(json_header, arrays, path) -> obj``.
    expected_arrays : Callable[[dict[str, Any]], dict[str, tuple[str, tuple[int, ...]]]] | None, default None
        Optional ``json_header -> {name: (dtype, shape)}``, checked before any array is read.
    """
    KINDS[name] = Kind(name, cls, to_payload, from_payload, expected_arrays)


def kind_of(obj: Any) -> Kind:
    for kind in KINDS.values():
        if type(obj) is kind.cls:
            return kind
    for kind in KINDS.values():
        if isinstance(obj, kind.cls):
            return kind
    raise TypeError(f"cannot save a {type(obj).__name__}; savable kinds: {', '.join(KINDS)}")


# -- the archive: header + arrays, written atomically, read with checks first -------------------
def write_archive(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write ``header`` (JSON) and ``arrays`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for name, arr in arrays.items():
        if name == HEADER or not name or "\\" in name or name.startswith("/") or ".." in name:
            raise ValueError(f"invalid array name {name!r}")
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise ValueError(f"array {name!r} has dtype {arr.dtype}, not one a model file holds")
    header = {
        **header,
        "format": FORMAT,
        "version": VERSION,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
    }
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, arr in [(HEADER, blob), *arrays.items()]:
                    with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _member_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str):
    """(dtype, shape, data offset) of one ``.npy`` member, reading only its header."""
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise ModelFileError(
                f"{where}: member {info.filename} is not a valid array: {exc}"
            ) from None
        offset = f.tell()
    if fortran:
        raise ModelFileError(f"{where}: member {info.filename} is Fortran-ordered")
    return dtype, tuple(shape), offset


def read_archive(
    path: str | os.PathLike,
    expect: Callable[[dict[str, Any]], dict[str, tuple[str, tuple[int, ...]]] | None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` from a file written by :func:`write_archive`, checking everything
    that can be checked before any array data is read. ``expect(header)`` may return the
    ``{name: (dtype, shape)}`` the caller requires; a difference is an error."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise ModelFileError(f"{where}: is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with open(path, "rb") as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelFileError(
                f"{where}: not a backprop model file (not a valid .npz archive, or truncated: "
                f"{exc})"
            ) from None
        with z:
            try:
                filecheck.check_zip_layout(z, f, os.fstat(f.fileno()).st_size, where)
                return _read_checked(z, where, expect)
            except (zipfile.BadZipFile, EOFError, OSError, struct.error) as exc:
                raise ModelFileError(f"{where}: corrupt or truncated archive ({exc})") from None


def _read_checked(z: zipfile.ZipFile, where: str, expect):
    members = {info.filename: info for info in z.infolist()}
    info = members.get(f"{HEADER}.npy")
    if info is None:
        raise ModelFileError(f"{where}: no {HEADER} member; not a backprop model file")
    if info.file_size > MAX_HEADER_BYTES:
        raise ModelFileError(f"{where}: header of {info.file_size} bytes is implausibly large")
    with z.open(info) as f:
        blob = np.lib.format.read_array(f, allow_pickle=False)
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(f"{where}: header must be 1-D uint8, got {blob.dtype} {blob.shape}")
    try:
        text = blob.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{where}: header is not valid JSON ({exc})") from None
    header = filecheck.parse_json(text, where)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: header does not say format {FORMAT!r}")
    version = header.get("version")
    if version != VERSION:
        raise ModelFileError(
            f"{where}: file format version {version!r} is not supported "
            f"(this backprop reads version {VERSION})"
        )
    declared = header.get("arrays")
    if not isinstance(declared, dict):
        raise ModelFileError(f"{where}: header has no 'arrays' table")
    specs: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, spec in declared.items():
        ok = isinstance(spec, dict) and isinstance(spec.get("shape"), list)
        ok = ok and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec["shape"]
        )
        if not ok or spec.get("dtype") not in ALLOWED_DTYPES:
            raise ModelFileError(f"{where}: array {name!r} has a malformed declaration {spec!r}")
        specs[name] = (spec["dtype"], tuple(spec["shape"]))
    if expect is not None:
        wanted = expect(header)
        if wanted is not None and wanted != specs:
            diff = sorted(set(wanted).symmetric_difference(specs)) or [
                f"{k}: declared {specs[k]}, expected {wanted[k]}"
                for k in wanted
                if specs[k] != wanted[k]
            ]
            raise ModelFileError(f"{where}: arrays do not match the architecture: {diff}")
    extra = sorted(set(members) - {f"{n}.npy" for n in specs} - {f"{HEADER}.npy"})
    if extra:
        raise ModelFileError(f"{where}: undeclared members {extra}")
    offsets = {}
    for name, (dtype, shape) in specs.items():
        info = members.get(f"{name}.npy")
        if info is None:
            raise ModelFileError(f"{where}: declared array {name!r} is missing")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            # stored members only: a declared size can never exceed the bytes on disk
            raise ModelFileError(f"{where}: member {info.filename} is compressed; not written here")
        got_dtype, got_shape, offset = _member_header(z, info, where)
        if got_dtype.str != dtype or got_shape != shape:
            raise ModelFileError(
                f"{where}: array {name!r} is {got_dtype.str} {got_shape}, "
                f"but the header declares {dtype} {shape}"
            )
        need = offset + math.prod(shape) * np.dtype(dtype).itemsize  # exact: no overflow
        if info.file_size != need:
            raise ModelFileError(
                f"{where}: array {name!r} holds {info.file_size - offset} data bytes, "
                f"its shape {shape} needs {need - offset}"
            )
        offsets[name] = info
    arrays = {}
    for name, info in offsets.items():
        with z.open(info) as f:
            arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    return header, arrays


# -- public save / load --------------------------------------------------------------------------
@dataclass
class ModelFile:
    """What :func:`load_file` returns: the object, the free-form metadata and extra arrays."""

    obj: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def save(
    obj: Any,
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    extras: dict[str, np.ndarray] | None = None,
) -> None:
    """Save ``obj`` (a Sequential or any registered kind) to ``path`` (a ``.npz``), atomically.

    ``metadata`` (JSON values) and ``extras`` (arrays, stored under ``extra/``) travel with it;
    the command line keeps the preprocessing and class names there.

    Parameters
    ----------
    obj : Any
        A :class:`Sequential`, a fitted estimator or any registered kind.
    path : str or os.PathLike
        The ``.npz`` file to write.
    metadata : dict, optional
        JSON values stored with the object.
    extras : dict of str to ndarray, optional
        Arrays stored under ``extra/``.
    """
    kind = kind_of(obj)
    config, arrays = kind.to_payload(obj)
    arrays = {f"param/{k}": v for k, v in arrays.items()}
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in (extras or {}).items()})
    header = {"kind": kind.name, "config": config, "metadata": metadata or {}}
    write_archive(path, header, arrays)


def load_file(path: str | os.PathLike) -> ModelFile:
    """Load a model file with its metadata and extras (see :func:`save`)."""
    where = str(path)

    def expect(header):
        name = header.get("kind")
        if name not in KINDS and name in LAZY_KINDS:
            importlib.import_module(LAZY_KINDS[name])
        if name == "checkpoint":
            raise ModelFileError(
                f"{where}: is a training checkpoint, not a saved model; restore it into a "
                "trainer with bp.load_checkpoint(path, trainer), or continue its run with "
                "`backprop train --resume RUN_DIR`"
            )
        if name not in KINDS:
            known = ", ".join(sorted(set(KINDS) | set(LAZY_KINDS)))
            raise ModelFileError(f"{where}: unknown kind {name!r}; known kinds: {known}")
        if not isinstance(header.get("config"), dict):
            raise ModelFileError(f"{where}: header has no 'config' table")
        guess = KINDS[name].expected_arrays
        if guess is None:
            return None
        try:
            wanted = {f"param/{k}": v for k, v in guess(header["config"]).items()}
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelFileError(f"{where}: bad {name} config: {exc}") from None
        extras = {k: v for k, v in header["arrays"].items() if k.startswith("extra/")}
        wanted.update({k: (v.get("dtype"), tuple(v.get("shape", ()))) for k, v in extras.items()})
        return wanted

    header, arrays = read_archive(path, expect)
    kind = KINDS[header["kind"]]
    params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
    for name, value in params.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{where}: parameter {name!r} contains NaN or infinity")
    extras = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
    try:
        obj = kind.from_payload(header["config"], params, where)
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{where}: cannot rebuild the {kind.name}: {exc}") from None
    metadata = header.get("metadata") if isinstance(header.get("metadata"), dict) else {}
    return ModelFile(obj, metadata, extras)


def load(path: str | os.PathLike) -> Any:
    """Load an object saved with :func:`save`; never unpickles (see the module docstring).

    Parameters
    ----------
    path : str | os.PathLike
        A ``.npz`` file written by :func:`save`.

    Returns
    -------
    Any
        The saved object (a :class:`Sequential`, an estimator, or a registered kind).
    """
    return load_file(path).obj


# -- the Sequential kind -------------------------------------------------------------------------
def sequential_config(model: Sequential) -> dict[str, Any]:
    """The architecture as JSON: dtype, input shape (when known) and one spec per layer, each
    from the layer itself (:func:`backprop.layers.layer_spec`)."""
    config: dict[str, Any] = {
        "dtype": model.dtype.name,
        "layers": [layers_mod.layer_spec(layer) for layer in model.layers],
    }
    if model.in_shape is not None:
        config["input_shape"] = list(model.in_shape)
    return config


def _sequential_to_payload(model: Sequential):
    if not model.built:
        raise ValueError("cannot save a model that is not built yet: give input_shape or fit it")
    # Pruning hook (issue 15): a masked model stores its weights compactly.
    return pruning_files.compact_payload(model, sequential_config(model), model.state_dict())


def expected_sequential_arrays(config: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Array shapes implied by the architecture, from the layers' own ``build``,
    ``param_specs`` and ``buffer_specs``, allocating nothing of the declared sizes."""
    with layers_mod.base.unallocated():
        layers = [layers_mod.layer_from_spec(s, f"layer {i}") for i, s in enumerate(_specs(config))]
    dtype = np.dtype(config.get("dtype", "float32"))
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {config.get('dtype')!r}")
    shape = config.get("input_shape")
    shape = layers[0].default_in_shape() if shape is None else shape
    if shape is None:
        raise ValueError("the file gives no input_shape and layer 0 does not imply one")
    shape = layers_mod.base.as_shape(shape, "input_shape")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for i, layer in enumerate(layers):
        shape = layer.build(shape)
        for key, (pshape, _) in layer.param_specs().items():
            out[f"{i}.{key}"] = (dtype.str, tuple(pshape))
        for key, bshape in layer.buffer_specs().items():
            out[f"{i}.{key}"] = (dtype.str, tuple(bshape))
        for key, buf in layer.buffers.items():  # buffers a layer made without declaring them
            out.setdefault(f"{i}.{key}", (dtype.str, tuple(buf.shape)))
    return out


def _specs(config: dict[str, Any]) -> list[Any]:
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ValueError("'layers' must be a non-empty list")
    return specs


def sequential_from_config(config: dict[str, Any], seed: int = 0) -> Sequential:
    """Build a Sequential (freshly initialized) from :func:`sequential_config` output."""
    layers = [layers_mod.layer_from_spec(s, f"layer {i}") for i, s in enumerate(_specs(config))]
    return Sequential(
        layers,
        input_shape=config.get("input_shape"),
        dtype=config.get("dtype", "float32"),
        seed=seed,
    )


def _sequential_from_payload(config, arrays, where):
    model = sequential_from_config(config)
    if not model.built:
        raise ValueError("the file gives no input_shape and layer 0 does not imply one")
    arrays, mask = pruning_files.expand(model, config, arrays)  # pruning hook (issue 15)
    model.load_state_dict(arrays)
    pruning_files.pruning.set_mask(model, mask)
    return model


register_kind(
    "Sequential",
    Sequential,
    _sequential_to_payload,
    _sequential_from_payload,
    lambda config: pruning_files.expected_arrays(config, expected_sequential_arrays(config)),
)

# Kinds registered by modules that `import backprop` does not load up front (scikit-learn's
# import is slow): loading a file of such a kind imports its module first.
LAZY_KINDS = {
    name: "backprop.estimators"
    for name in ("MLPClassifier", "MLPRegressor", "NeuralNetClassifier", "NeuralNetRegressor")
}

__all__ = ["ModelFile", "ModelFileError", "load", "load_file", "register_kind", "save"]
