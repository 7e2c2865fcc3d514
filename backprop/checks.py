"""Argument checks: the one home of the library's bool / int / real checks.

Every constructor validates its numbers through these functions, so that they agree on what a
number is::

    integer   int or any np.integer (np.int64(5) is 5); never bool (True is not 1 here)
    real      int, float, np.integer or np.floating; never bool; finite unless allowed
    boolean   bool or np.bool_ only (1 and "yes" are refused)

Each check returns the value as a plain Python ``int`` / ``float`` / ``bool`` and raises
``ValueError`` naming the argument and the offending value.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_integer(value: Any) -> bool:
    """An integer that is not a bool (Python int or NumPy integer)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A real number that is not a bool (Python or NumPy, integer or floating)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def integer(name: str, value: Any, low: int | None = None) -> int:
    """``value`` as an int, required to be ``>= low`` when ``low`` is given."""
    if not is_integer(value) or (low is not None and value < low):
        words = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}
        want = words.get(low, f"an integer >= {low}")
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """An integer ``>= 1``."""
    return integer(name, value, 1)


def non_negative_int(name: str, value: Any) -> int:
    """An integer ``>= 0``."""
    return integer(name, value, 0)


def real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
    allow_inf: bool = False,
) -> float:
    """``value`` as a float in the interval from ``low`` to ``high`` (either may be None).

    ``closed`` says which ends belong to the interval: "both", "left", "right" or "neither".
    NaN is always refused; infinity unless ``allow_inf``.
    """
    ok = is_real(value) and not math.isnan(value) and (allow_inf or math.isfinite(value))
    if ok and low is not None:
        ok = value >= low if closed in ("both", "left") else value > low
    if ok and high is not None:
        ok = value <= high if closed in ("both", "right") else value < high
    if not ok:
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        if low == 0 and high is None:
            where = " > 0" if closed in ("neither", "right") else " >= 0"
        elif low is None and high is None:
            where = ""
        else:
            where = f" in {left}{lo}, {hi}{right}"
        kind = "a non-NaN number" if allow_inf else "a finite number"
        raise ValueError(f"{name} must be {kind}{where}, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """A finite number ``> 0``."""
    return real(name, value, 0, None, "neither")


def non_negative(name: str, value: Any) -> float:
    """A finite number ``>= 0``."""
    return real(name, value, 0, None, "left")


def optional_positive(name: str, value: Any) -> float | None:
    """None, or a finite number ``> 0``."""
    if value is None:
        return None
    if not (is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` (a NumPy bool too), nothing else."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def generator(name: str, value: Any) -> np.random.Generator:
    """A ``np.random.Generator`` as it is; an int ``>= 0`` or None (OS entropy) seeds a new one."""
    if isinstance(value, np.random.Generator):
        return value
    if value is not None and not (is_integer(value) and value >= 0):
        raise ValueError(f"{name} must be an int >= 0, a numpy Generator or None, got {value!r}")
    return np.random.default_rng(value)


def one_of(name: str, value: Any, options: tuple) -> Any:
    """``value`` itself when it is one of ``options``."""
    if not isinstance(value, str | type(None)) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def same_monitor(owner: Any, state: dict[str, Any]) -> None:
    """Refuse a saved state of ``owner`` (EarlyStopping, ReduceLROnPlateau, Checkpoint) that
    watched another quantity or direction: its best value and counters would be compared with
    this one's (a best loss with accuracies). A state saved without them passes."""
    saved = (state.get("monitor", owner.monitor), state.get("mode", owner.mode))
    if saved != (owner.monitor, owner.mode):
        raise ValueError(
            f"the saved {type(owner).__name__} state watched {saved[0]!r} ({saved[1]}), this one "
            f"watches {owner.monitor!r} ({owner.mode}): its best value and counters would be "
            "compared with the other's; resume with the same monitor, or start a new run"
        )
