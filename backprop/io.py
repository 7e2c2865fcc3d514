"""Safe model files: save and load any registered kind of object, a Sequential built in.

A file is an archive (:mod:`backprop.archive`: a JSON header plus one ``.npy`` member per
array, in an uncompressed zip, written atomically, checked before any array is read)::

    __header__.npy      {"format": "backprop", "version": 1, "kind": "Sequential",
                         "config": {...}, "metadata": {...}, "arrays": {...}}
    param/0.W.npy, param/0.b.npy, ...   the object's arrays
    extra/NAME.npy, ...                 arrays the caller adds (``extras``)

Layer types resolve through :data:`backprop.layers.REGISTRY` only, and the arrays a model needs
come from its layers' own ``build`` and ``param_specs``. Anything else raises
:class:`ModelFileError` naming the file and the problem.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import layers as layers_mod
from . import pruning_files
from .archive import (  # noqa: F401  (re-exported: the archive's names were io's first)
    ALLOWED_DTYPES,
    FORMAT,
    HEADER,
    MAX_HEADER_BYTES,
    VERSION,
    ModelFileError,
    _member_header,
    _read_checked,
    read_archive,
    write_archive,
)
from .layers.containers import named_layers
from .model import Sequential


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
    _check_json(metadata or {}, "metadata")
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
        if not isinstance(name, str):  # (a list or table is no key of KINDS)
            raise ModelFileError(f"{where}: header's kind must be a name, got {name!r}")
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
    _check_json_settings(model)
    config: dict[str, Any] = {
        "dtype": model.dtype.name,
        "layers": [layers_mod.layer_spec(layer) for layer in model.layers],
    }
    if model.in_shape is not None:
        config["input_shape"] = list(model.in_shape)
    return config


def _check_json(value: Any, path: str) -> None:
    """Raise a TypeError naming ``path`` (``metadata['run']['loss']``) and the value when
    ``value`` holds what JSON cannot store (a NumPy scalar, say): json.dumps names neither."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise TypeError(f"{path} has the key {key!r}: JSON keys are strings")
            _check_json(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise TypeError(
            f"{path} is {value!r} of type {type(value).__name__}, not a JSON value (a number, "
            "string, bool, None, list or dict; a NumPy scalar needs .item())"
        )


def _check_json_settings(model: Sequential) -> None:
    """A TypeError naming the layer (and the setting) when a ``config()`` holds a value JSON
    cannot store, or cannot rebuild its layer as loading will: a file that could never load."""
    for name, layer, _ in named_layers(model.layers):
        if layer.children():
            continue
        where = f"layer {name} ({type(layer).__name__})"
        spec = layers_mod.layer_spec(layer)  # (an unregistered type is refused here)
        _check_json(spec["config"], f"{where}: config()")
        try:  # from the spec as the file will hold it (JSON: a tuple comes back a list)
            layers_mod.layer_from_spec(json.loads(json.dumps(spec)), f"layer {name}")
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where} cannot be rebuilt from its config() {spec['config']!r}, as loading "
                f"would: {exc}; config() must return the constructor's arguments"
            ) from None


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
    _check_sample_size("input_shape", shape)
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for i, layer in enumerate(layers):
        shape = layer.build(shape)
        _check_activations(i, layer)
        for key, (pshape, _) in layer.param_specs().items():
            out[f"{i}.{key}"] = (dtype.str, tuple(pshape))
        for key, bshape in layer.buffer_specs().items():
            out[f"{i}.{key}"] = (dtype.str, tuple(bshape))
        for key, buf in layer.buffers.items():  # buffers a layer made without declaring them
            out.setdefault(f"{i}.{key}", (dtype.str, tuple(buf.shape)))
    return out


#: The most values one sample may have in any activation of a model read from a file (1 GiB in
#: float32; an ImageNet network's largest is about 3 million): a forged padding or input shape
#: declares no array to refuse, yet would make predict allocate terabytes.
MAX_SAMPLE_VALUES = 2**28


def _check_sample_size(what: str, shape: tuple[int, ...]) -> None:
    values = math.prod(shape)
    if values > MAX_SAMPLE_VALUES:
        raise ValueError(
            f"{what} {tuple(shape)} holds {values} values per sample, over the "
            f"{MAX_SAMPLE_VALUES} a model file may declare (for a file you trust, raise "
            "bp.io.MAX_SAMPLE_VALUES)"
        )


def _check_activations(i: int, layer: Any) -> None:
    """Layer ``i``'s activations per sample: its output, a Residual's layers' outputs, and the
    padded input of a convolution or pooling (a large padding with a stride that undoes it
    leaves the output small, yet the padded images are made)."""
    for name, part, _ in named_layers([layer]):
        what = f"layer {i}{name[1:]} ({type(part).__name__})"
        _check_sample_size(f"{what} output", part.out_shape)
        if hasattr(part, "_padded_shape"):
            padded = part._padded_shape(1, part.in_shape[-1])[1:]
            _check_sample_size(f"{what} padded input", padded)


def _specs(config: dict[str, Any]) -> list[Any]:
    if not isinstance(config, dict):  # (an estimator's "model" entry, edited)
        raise ValueError(f"the model config must be a table, got {config!r}")
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
