"""What a config may say: its tables, their keys and types, and how a value is type-checked.

Fixed tables (``[model]``, ``[trainer]``, ``[pruning]``, ``[early_stopping]``, ``[output]``) list
their keys here as ``key -> (type, default)``; named tables (``[loss]``, ``[optimizer]``,
``[schedule]``) take a ``name`` from a library registry and then that class's constructor
arguments, typed from its resolved type hints (:func:`class_arguments`). ``[data]`` takes the
options of its source (:mod:`.sources`). A value must have its key's type (an integer is
accepted for a number); anything else is a :class:`ConfigError`, the error a user can fix.
:class:`Config` is what validation returns. Reading and validating a file is :mod:`.config`;
building objects from it, :mod:`.config_build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import losses as losses_mod
from .. import optimizers as optimizers_mod
from .. import schedules as schedules_mod
from ..layers.registry import check_argument, constructor_arguments
from ..lbfgs import LBFGS


class ConfigError(ValueError):
    """A config the user can fix: unknown key, wrong type, unknown name."""


# Fixed tables: key -> (type, default). Types: a Python type or a tuple of them.
FIXED: dict[str, dict[str, tuple[Any, Any]]] = {
    "model": {"dtype": (str, "float32"), "seed": (int, 0), "layers": (list, None)},
    "trainer": {
        "mode": (str, "minibatch"),
        "batch_size": (int, 32),
        "epochs": (int, 20),
        "shuffle": (bool, True),
        "l1": (float, 0.0),
        "l2": (float, 0.0),
        "clip_norm": (float, None),
        "clip_value": (float, None),
        "clip_mode": (str, None),
        "clip_factor": (float, 0.01),
        "seed": (int, 0),
        "l1_method": (str, "subgradient"),
    },
    # Gradual magnitude pruning (Zhu & Gupta 2017) while training; sparsity = 0 turns it off.
    "pruning": {
        "sparsity": (float, 0.0),
        "scope": (str, "global"),
        "begin_step": (int, 0),
        "end_step": (int, 1000),
        "frequency": (int, 100),
        "initial": (float, 0.0),
        "power": (float, 3.0),
    },
    "early_stopping": {
        "enabled": (bool, True),
        "monitor": (str, "val_loss"),
        "patience": (int, 10),
        "min_delta": (float, 0.0),
        "restore_best_weights": (bool, True),
    },
    "output": {
        "dir": (str, "runs"),
        "name": (str, ""),
        "checkpoint_every": (int, 5),
        "save_best": (bool, True),
        "plots": (bool, True),
        "gradient_monitor": (bool, True),
        "trajectory": (bool, False),
    },
}
NAMED = {"loss": "mse", "optimizer": "adam", "schedule": None}
SECTIONS = (
    "data",
    "model",
    "loss",
    "optimizer",
    "schedule",
    "trainer",
    "pruning",
    "early_stopping",
    "output",
)
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
TYPE_NAMES[list] = "a list"
TYPE_NAMES[dict] = "a table"


def _named_class(section: str, name: Any) -> type:
    if section == "loss":
        registry = losses_mod.REGISTRY
    elif section == "optimizer":
        registry = {**optimizers_mod.REGISTRY, "lbfgs": LBFGS}
    else:
        registry = schedules_mod.REGISTRY
    if name not in registry:
        raise ConfigError(f"unknown {section} {name!r}; valid names: {', '.join(sorted(registry))}")
    return registry[name]


def class_arguments(cls: type, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """``{argument: (types, default)}`` of a constructor, from its resolved type hints (see
    :func:`backprop.layers.registry.constructor_arguments`); ``types`` None accepts any value."""
    return constructor_arguments(cls, skip)


def check_type(value: Any, typ: Any, what: str) -> Any:
    """``value`` if it has type ``typ`` (a type, a tuple of types, or None for any; an int is
    accepted for a float); else a ConfigError."""
    typs = typ if typ is None or isinstance(typ, tuple) else (typ,)
    try:
        return check_argument(value, typs)
    except TypeError:
        names = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in typs)
        raise ConfigError(f"{what}: expected {names}, got {value!r}") from None


@dataclass
class Config:
    """A validated config: ``resolved`` holds every table with its defaults filled in."""

    path: str
    resolved: dict[str, Any]
    text: str = ""
    origins: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.resolved[section]

    def at(self, section: str) -> str:
        """Where ``section``'s values come from, for errors: the file and the line of the
        table, or with the ``--set`` items that changed the section (a bad value given on the
        command line is not the file's)."""
        sets = [origin for key, origin in self.origins.items() if key.split(".")[0] == section]
        return f"{self.path} ({', '.join(sets)})" if sets else self.where(section)

    def where(self, section: str, key: str | None = None, index: int = 0) -> str:
        """Where ``section.key`` comes from, for errors: its ``--set`` item, or the file and
        the key's line (in the ``index``-th ``[[section]]``; the table's own line without a
        ``key``; the file alone when it is not written there)."""
        from .config import line_of

        for dotted in (f"{section}.{key}", section):  # model.layers: --set model.layers=[...]
            if dotted in self.origins:
                return self.origins[dotted]
        line = line_of(self.text, section, key, index) if self.text else None
        return f"{self.path}, line {line}" if line else self.path
