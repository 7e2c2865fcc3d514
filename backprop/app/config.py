"""Experiment configs: TOML tables -> objects, through the registries and nothing else.

Tables and what they become (every key is checked; an unknown key names the allowed ones, the
file and the line)::

    [data]            backprop.app.sources.prepare      source, test/validation sizes, scaling
    [model]           Sequential                    dtype, seed, [[model.layers]] tables
    [[model.layers]]  backprop.layers.REGISTRY      type = "Dense", then the class's arguments
                                                    (any registered layer; the argument types
                                                    come from its constructor's type hints);
                                                    input widths are inferred when the model is
                                                    built, and the last layer with an
                                                    ``output_size_argument`` gets the task's
                                                    number of outputs
    [loss]            backprop.losses.REGISTRY      name, then the class's arguments
    [optimizer]       backprop.optimizers.get       name, then the class's arguments
    [schedule]        backprop.schedules.REGISTRY   optional; name, then the arguments
    [trainer]         Trainer arguments             mode, batch_size, epochs, l1, l2, ...
    [pruning]         backprop.pruning.GradualPruning   optional; sparsity = 0 (default) is off
    [early_stopping]  EarlyStopping                 optional; enabled = false turns it off
    [output]          the run directory             dir, checkpoint_every, plots, ...

``--set section.key=value`` overrides one key; the value is read as a TOML value (bare words
are strings) and must have the key's type. Nothing is ever evaluated as code.

This module reads and validates (:func:`load_config`) and writes back (:func:`dumps`); the
tables' keys, types and :class:`ConfigError` are :mod:`.config_schema`, the objects built from a
config :mod:`.config_build`, what a resumed run may not change :mod:`.resume_checks`. Every
name is importable from here.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from .. import layers as layers_mod
from .. import schedules as schedules_mod
from .config_build import (  # noqa: F401  (re-exported: the builders were this module's first)
    _build_named,
    build_early_stopping,
    build_loss,
    build_model,
    build_optimizer,
    build_pruning,
    build_schedule,
    build_trainer,
    check_loss_fits,
    check_output_width,
)
from .config_schema import (  # noqa: F401  (re-exported)
    FIXED,
    NAMED,
    SECTIONS,
    TYPE_NAMES,
    Config,
    ConfigError,
    _named_class,
    check_type,
    class_arguments,
)
from .resume_checks import (  # noqa: F401  (re-exported: they were this module's first)
    STATEFUL_CALLBACKS,
    resume_changes,
    resume_dropped_callbacks,
    resume_refusal,
)
from .sources import COMMON_OPTIONS, SOURCE_OPTIONS


def line_of(text: str, table: str, key: str | None = None, index: int = 0) -> int | None:
    """Line number (1-based) of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``)."""
    current, seen = None, -1
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\[\[?\s*([\w.\-]+)\s*\]\]?", line)
        if m:
            current = m.group(1)
            if current == table:
                seen += 1
                if key is None and seen == index:
                    return n
            continue
        if current == table and seen == index and key is not None:
            if re.match(rf"\s*{re.escape(key)}\s*=", line):
                return n
    return None


def parse_override(item: str) -> tuple[str, str, Any]:
    """``"section.key=value"`` -> (section, key, value); the value is read as TOML."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. trainer.epochs=5")
    dotted, raw = item.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return section, key, value


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read, override and validate a config file (see the module docstring).

    Parameters
    ----------
    path : str | Path
        A TOML config file.
    overrides : list[str], default ()
        ``"section.key=value"`` strings applied before validation.

    Returns
    -------
    Config
        The validated config.
    """
    path = Path(path)
    if path.is_dir():  # `backprop train runs/x` for `--resume runs/x`, or a tool given a run
        run = (path / "config.toml").is_file()
        hint = f" (a run: its config is {path / 'config.toml'}; --resume {path} continues it)"
        raise ConfigError(f"{path}: is a directory, not a config file{hint if run else ''}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return resolve(raw, str(path), text, overrides)


def resolve(
    raw: dict[str, Any], where: str = "<config>", text: str = "", overrides: list[str] = ()
) -> Config:
    raw = copy.deepcopy(raw)
    origins: dict[str, str] = {}
    for item in overrides:
        section, key, value = parse_override(item)
        if section not in SECTIONS:
            raise ConfigError(f"--set {item!r}: unknown section {section!r}; sections: {SECTIONS}")
        if isinstance(raw.get(section), dict) and (section, key) in CHOOSERS:
            _drop_defaults_of_replaced(raw[section], section, key, value)
        raw.setdefault(section, {})[key] = value
        origins[f"{section}.{key}"] = f"--set {item}"

    def where_is(section: str, key: str | None = None, index: int = 0) -> str:
        dotted = f"{section}.{key}"
        if dotted in origins:
            return origins[dotted]
        if section == "model.layers" and section in origins:  # --set model.layers=[...]
            return origins[section]
        line = line_of(text, section, key, index) if text else None
        return f"{where}, line {line}" if line else where

    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown table(s) {unknown}; allowed: {', '.join(SECTIONS)}")
    out: dict[str, Any] = {}
    for section in SECTIONS:
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where_is(section)}: [{section}] must be a table")
        if section == "data":
            source = table.get("source", COMMON_OPTIONS["source"])
            if source not in SOURCE_OPTIONS:
                raise ConfigError(
                    f"{where_is(section, 'source')}: unknown data source {source!r}; "
                    f"valid: {', '.join(SOURCE_OPTIONS)}"
                )
            spec = {
                k: (type(v), v) for k, v in {**COMMON_OPTIONS, **SOURCE_OPTIONS[source]}.items()
            }
            if source == "file":
                spec["target"] = ((str, int), "y")
        elif section in NAMED:
            if section == "schedule" and not table:
                out[section] = None
                continue
            name = table.get("name", NAMED[section])
            if name is None:  # a [schedule] of arguments only: the class is not optional
                raise ConfigError(
                    f'{where_is(section)}: [{section}] needs a name, e.g. name = "cosine"; '
                    f"valid names: {', '.join(sorted(schedules_mod.REGISTRY))}"
                )
            check_type(name, str, f"{where_is(section, 'name')}: {section}.name")
            try:
                cls = _named_class(section, name)
            except ConfigError as exc:  # it names the valid ones; say where the bad one is
                raise ConfigError(f"{where_is(section, 'name')}: {exc}") from None
            spec = {"name": (str, name), **class_arguments(cls)}
        else:
            spec = FIXED[section]
        out[section] = _check_table(table, spec, section, where_is)
    out["model"]["layers"] = _check_layers(out["model"].get("layers"), where_is)
    for key in ("test_size", "validation_size"):
        if not 0 <= out["data"][key] < 1:
            raise ConfigError(
                f"{where_is('data', key)}: data.{key} must be in [0, 1), got {out['data'][key]}"
            )
    for section in ("data", "model", "trainer"):  # numpy's own refusal names neither
        if out[section]["seed"] < 0:
            raise ConfigError(
                f"{where_is(section, 'seed')}: {section}.seed must be an integer >= 0, "
                f"got {out[section]['seed']}"
            )
    if "trainer.mode" in origins and "trainer.batch_size" not in origins:
        # --set trainer.mode=batch on a file written for minibatches: its batch_size is the
        # file's, for its mode; the run (and its config.toml) goes back to the unused default
        if out["trainer"]["mode"] != "minibatch":
            out["trainer"]["batch_size"] = FIXED["trainer"]["batch_size"][1]
    return Config(where, out, text, origins)


#: The keys that choose a class (or data source) and with it the table's other keys.
CHOOSERS = {("data", "source"), *((section, "name") for section in NAMED)}


def _arguments_of(section: str, choice: Any) -> dict[str, tuple[Any, Any]]:
    """``{key: (types, default)}`` that ``section`` takes when ``choice`` names its class."""
    if section == "data":
        return {k: (None, v) for k, v in {**COMMON_OPTIONS, **SOURCE_OPTIONS[choice]}.items()}
    return class_arguments(_named_class(section, choice))


def _drop_defaults_of_replaced(table: dict[str, Any], section: str, key: str, new: Any) -> None:
    """``--set optimizer.name=sgd`` on a table written for another class: drop the keys that
    only the old class takes and that hold its defaults (a run's config.toml spells out every
    default, so without this no --set could change the class). A key set to another value
    stays, and the new class's check refuses it, naming the file and line."""
    old = table.get(key, COMMON_OPTIONS["source"] if section == "data" else NAMED[section])
    if old == new:
        return
    try:
        before, after = _arguments_of(section, old), _arguments_of(section, new)
    except (ConfigError, KeyError, ValueError, TypeError):
        return  # an unknown name: the checks below say so
    for k in [k for k in table if k != key and k in before and k not in after]:
        if table[k] == before[k][1]:
            del table[k]


def _check_table(table, spec, section, where_is) -> dict[str, Any]:
    unknown = sorted(set(table) - set(spec))
    if unknown:
        key = unknown[0]
        chooser = "source" if section == "data" else "name"
        chosen = where_is(section, chooser)  # "--set optimizer.name=sgd" if that replaced it
        hint = (
            f" ({chosen} replaced the {chooser} this key was for)"
            if chosen.startswith("--set")
            else ""
        )
        raise ConfigError(
            f"{where_is(section, key)}: unknown key {section}.{key}{hint}; "
            f"allowed keys in [{section}]: {', '.join(spec)}"
        )
    out = {}
    for key, (typ, default) in spec.items():
        if key in table:
            out[key] = check_type(table[key], typ, f"{where_is(section, key)}: {section}.{key}")
        elif default is not None:
            out[key] = default
    return out


def _check_layers(specs: Any, where_is) -> list[dict[str, Any]]:
    if not isinstance(specs, list) or not specs:
        at = where_is("model", "layers")  # "--set model.layers=[]", or the file's [model]
        at = at if at.startswith("--set") else where_is("model")
        raise ConfigError(f"{at}: [model] needs a non-empty list of [[model.layers]]")
    out = []
    for i, spec in enumerate(specs):
        at = where_is("model.layers", None, i)
        if not isinstance(spec, dict) or "type" not in spec:
            raise ConfigError(f'{at}: layer {i} needs a type, e.g. type = "Dense"')
        try:
            cls = layers_mod.get(spec["type"])
        except ConfigError:  # already names its place
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{at}: layer {i}: {exc}") from None
        allowed = {**class_arguments(cls, skip=("dtype", "seed")), "trainable": (bool, True)}
        checked = {"type": spec["type"]}
        for key, value in spec.items():
            if key == "type":
                continue
            if key not in allowed:
                raise ConfigError(
                    f"{where_is('model.layers', key, i)}: unknown key {key!r} for layer {i} "
                    f"({cls.__name__}); allowed keys: type, {', '.join(allowed)}"
                )
            typ = allowed[key][0]
            what = f"{where_is('model.layers', key, i)}: layer {i} {key}"
            checked[key] = check_type(value, typ, what)  # an int given for a float becomes one
        out.append(checked)
    return out


def dumps(resolved: dict[str, Any]) -> str:
    """The resolved config as TOML (tables of plain values, and the layers as [[model.layers]])."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, float):
            return repr(v) if v == v and abs(v) != float("inf") else ("nan" if v != v else "inf")
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):  # a nested layer of a container, as an inline table
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return str(v)

    lines = []
    for section in SECTIONS:
        table = resolved.get(section)
        if table is None:
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items() if k != "layers"]
        lines.append("")
        if section == "model":
            for spec in table["layers"]:
                lines.append("[[model.layers]]")
                lines += [f"{k} = {value(v)}" for k, v in spec.items()]
                lines.append("")
    return "\n".join(lines)


#: [data] keys that do not change which rows a config's test split holds: the scaling (a model
#: file holds its own), the validation part (drawn after the test part), the path (the same file
#: may be reached from elsewhere); and for MNIST, whose test set is the official one, n_train,
#: the seed and test_size (unused).
SPLIT_NEUTRAL = ("standardize", "standardize_target", "validation_size", "path")
#: Generators that draw their points from one fixed distribution: another data.seed draws new
#: points, none of them a training row (the split is of other data, not another split).
FRESH_DRAWS = ("moons", "circles", "adding")


def evaluation_split(path: str | Path, trained: Any = None) -> tuple[Any, Any]:
    """``(X, y)`` of the test split of the config at ``path``, unscaled (a model file holds its
    scaling; class labels as the data names them), for ``backprop evaluate``. Refused when its
    ``[data]`` would split the rows otherwise than ``trained``, the ``[data]`` a model was
    trained with (its file's metadata; None in a file written before it was recorded): another
    seed or test size would put rows the model trained on into the test split."""
    import numpy as np

    from .datasets import relative_note
    from .sources import prepare

    config = load_config(path)
    data = config["data"]
    source, trained = data["source"], trained if isinstance(trained, dict) else None
    new_draw = source in FRESH_DRAWS and trained and trained.get("source") == source
    if trained and not (new_draw and trained.get("seed") != data["seed"]):
        official = ("n_train", "seed", "test_size") if source in ("mnist", "fashion_mnist") else ()
        keys = sorted((set(trained) | set(data)) - {*SPLIT_NEUTRAL, *official})
        changes = [
            f"data.{k}: {trained.get(k)!r} -> {data.get(k)!r}"
            for k in keys
            if trained.get(k) != data.get(k)
        ]
        if changes:
            raise ConfigError(
                f"{path}: its [data] is not the one the model was trained with "
                f"({'; '.join(changes)}), so its test split would hold other rows, some of them "
                "training rows; evaluate with the run's config.toml"
            )
    try:
        ds = prepare({**data, "standardize": False, "standardize_target": False}, np.float64)
    except FileNotFoundError as exc:  # as train says it: the key, and where it was looked for
        note = relative_note(data)
        raise ConfigError(f"{config.where('data', 'path')}: {exc}{note}") from None
    y = ds.y_test if ds.task == "regression" else np.asarray(ds.classes)[ds.y_test]
    return ds.X_test, y
