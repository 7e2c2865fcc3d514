"""The layer registry: how files, configs and the command line name a layer.

``@register_layer`` on a :class:`~backprop.Layer` subclass makes it known by its class name.
Built-in layers are registered the same way; nothing else lists layer types. A layer is written
to a file or a config as a *spec*, ``{"type": name, "config": layer.config(), "trainable": bool}``,
and :func:`layer_from_spec` turns a spec back into an (unbuilt) layer.

The arguments a config may give a layer, and their types, come from the constructor's signature
(:func:`constructor_arguments`): its type hints, resolved to real types by
``typing.get_type_hints``, or the type of the default value when there is no hint.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from .base import Layer

#: Layer types by class name: the only way a saved model or a config names a layer.
REGISTRY: dict[str, type[Layer]] = {}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` known to files, configs and the command line by its name.

    Registering another class under a name already taken is an error (re-running the same class
    definition, in a notebook say, replaces the old entry).

    Parameters
    ----------
    cls : type[Layer]
        A :class:`Layer` subclass.

    Returns
    -------
    type[Layer]
        ``cls`` itself, registered.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer expects a subclass of backprop.Layer, got {cls!r}")
    name = cls.__name__
    old = REGISTRY.get(name)
    if old is not None and old is not cls:
        same = (old.__module__, old.__qualname__) == (cls.__module__, cls.__qualname__)
        if not same:
            raise ValueError(
                f"a layer named {name!r} is already registered ({old.__module__}."
                f"{old.__qualname__}); rename the class"
            )
    REGISTRY[name] = cls
    return cls


def get(name: str) -> type[Layer]:
    """Return the layer class called ``name``; an unknown name lists the valid ones."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown layer type {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def layer_spec(layer: Layer) -> dict[str, Any]:
    """``{"type", "config", "trainable"}`` of a registered layer (what files and configs hold)."""
    name = type(layer).__name__
    if REGISTRY.get(name) is not type(layer):
        raise TypeError(
            f"layer type {name} is not registered; decorate the class with @bp.register_layer"
        )
    return {"type": name, "config": layer.config(), "trainable": bool(layer.trainable)}


def not_a_layer_hint(obj: Any) -> str:
    """What to do instead, for two common non-layers in a list of layers ("" for others)."""
    if isinstance(obj, type) and issubclass(obj, Layer):
        return f" (the class itself: make a layer, {obj.__name__}(...))"
    if hasattr(obj, "layers") and hasattr(obj, "flat_parameters"):
        return (
            " (a Sequential is no layer: give its layers, model.layers, or wrap them in a Residual)"
        )
    return ""


def layer_from_spec(spec: Any, where: str = "layer") -> Layer:
    """The unbuilt layer a spec describes: ``{"type", "config", "trainable"}`` as
    :func:`layer_spec` writes it, or the flat form of a TOML table, ``{"type": "Dense",
    "out_features": 10, "trainable": true}``. A Layer is passed through. Each argument must have
    a type of :func:`constructor_arguments` (None where the default is None or the type hint
    admits None, as ``LSTM(forget_bias=None)``), and ``trainable``
    must be a bool: a TypeError names the layer and the argument otherwise."""
    if isinstance(spec, Layer):
        return spec
    if not isinstance(spec, dict) or "type" not in spec:
        hint = not_a_layer_hint(spec) or " (a table with a type is needed)"
        raise ValueError(f"{where}: malformed entry {spec!r}{hint}")
    nested = "config" in spec and not set(spec) - {"type", "config", "trainable"}
    kwargs = (
        spec.get("config", {})
        if nested
        else {k: v for k, v in spec.items() if k not in ("type", "trainable")}
    )
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: config must be a table, got {kwargs!r}")
    try:
        cls = get(spec["type"])
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):  # name the key, not a TypeError
        unknown = sorted(set(kwargs) - set(params) - {"self"})
        if unknown:
            allowed = ", ".join(
                n for n, p in params.items() if n != "self" and p.kind != p.VAR_POSITIONAL
            )
            raise ValueError(
                f"{where}: unknown key(s) {unknown} for {cls.__name__}; allowed: {allowed}"
            )
    trainable = spec.get("trainable", True)
    if not isinstance(trainable, bool):  # bool("no") is True
        raise ValueError(
            f"{where} ({cls.__name__}): trainable must be true or false, got {trainable!r}"
        )
    arguments, nullable = constructor_arguments(cls), _nullable(cls)
    kwargs = dict(kwargs)
    for name, value in kwargs.items():  # the signature's types, as configs get them checked
        if name in arguments and not (
            value is None and (arguments[name][1] is None or name in nullable)
        ):
            try:
                kwargs[name] = check_argument(value, arguments[name][0])
            except TypeError as exc:
                raise TypeError(f"{where} ({cls.__name__}): {name}: {exc}") from None
    layer = cls(**kwargs)
    layer.trainable = trainable
    return layer


_JSON_TYPES = (bool, int, float, str, list, dict)


def _json_types(hint: Any) -> tuple[type, ...] | None:
    """The JSON value types a type hint admits; None for "anything"."""
    if hint is Any or hint is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        found: list[type] = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            sub = _json_types(arg)
            if sub is None:
                return None
            found += [t for t in sub if t not in found]
        return tuple(found) or None
    if origin is not None:
        hint = origin
    if hint in (list, tuple):
        return (list,)
    if hint in _JSON_TYPES:
        return (hint,)
    return None  # a callable, a Generator, ...: not a config value; accept what the layer takes


def _nullable(cls: type) -> set[str]:
    """The constructor arguments whose type hint admits None (``float | None``)."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an unresolvable hint: only a None default admits None
        return set()
    return {name for name, hint in hints.items() if type(None) in typing.get_args(hint)}


def constructor_arguments(cls: type, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """``{argument: (types, default)}`` of ``cls.__init__``: ``types`` is a tuple of JSON value
    types (None: any value), from the resolved type hint or else the default's type."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an unresolvable hint: fall back to the defaults' types
        hints = {}
    out = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        if p.name in hints:
            typs = _json_types(hints[p.name])
        elif default is not None:
            typs = _json_types(type(default))
        else:
            typs = None
        out[p.name] = (typs, default)
    return out


def check_argument(value: Any, typs: tuple[type, ...] | None) -> Any:
    """``value`` if it has one of the types ``typs`` (a bool is not a number; an int is accepted
    for a float and converted); raises TypeError otherwise."""
    if typs is None:
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, bool):
        ok = bool in typs
    else:
        ok = isinstance(value, typs) or (float in typs and number)
    if not ok:
        names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in typs)
        raise TypeError(f"expected {names}, got {value!r}")
    if float in typs and int not in typs and isinstance(value, int) and number:
        return float(value)
    return value


_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "a table",
}
