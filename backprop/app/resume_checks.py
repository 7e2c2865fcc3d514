"""What a resumed run may not change from the run it resumes (``backprop train --resume``).

A checkpoint holds the state of one split of the data, one network, one optimizer, one shuffle
stream and the callbacks the run was configured with; :func:`resume_refusal` says which change
of the config would resume it into something else, in the command line's words (the setting,
its old and new value), before the loader refuses it in its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config


def resume_changes(saved: Config, config: Config) -> list[str]:
    """What ``config`` changes in ``[data]``, ``[model]``, ``optimizer.name`` and
    ``trainer.seed`` from a run's ``saved`` config, as ``"section.key: old -> new"``: a resumed
    run must keep the split its checkpoint was trained on (another ``data.seed`` would move test
    rows into training), the network it holds, the optimizer whose state it holds, and the
    seed whose shuffle stream it restores (a new seed would do nothing, yet be recorded)."""
    changes = []
    for section, key in (("optimizer", "name"), ("trainer", "seed")):
        old, new = saved[section][key], config[section][key]
        changes += [] if old == new else [f"{section}.{key}: {old!r} -> {new!r}"]
    for section in ("data", "model"):
        old, new = saved[section], config[section]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                changes.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


#: Settings that, turned off, drop a callback whose state a run's checkpoint holds.
STATEFUL_CALLBACKS = (
    ("early_stopping", "enabled"),
    ("output", "gradient_monitor"),
    ("output", "trajectory"),
)


def resume_dropped_callbacks(saved: Config, config: Config) -> list[str]:
    """The settings in :data:`STATEFUL_CALLBACKS` that ``config`` turns off from a run's
    ``saved`` config, as ``"section.key: true -> false"``: the checkpoint holds their
    callbacks' state (early stopping's counters and best weights, the monitors' records),
    which a resumed run without them would lose, so the loader refuses it."""
    return [
        f"{section}.{key}: true -> false"
        for section, key in STATEFUL_CALLBACKS
        if saved[section][key] and not config[section][key]
    ]


def resume_refusal(saved: Config, config: Config) -> str | None:
    """Why ``config`` cannot resume the run whose config was ``saved``, or None: a change
    :func:`resume_changes` lists, or a setting :func:`resume_dropped_callbacks` lists."""
    if changes := resume_changes(saved, config):
        return (
            f"the run's data, model, optimizer and seed cannot change ({'; '.join(changes)}); "
            "start a new run to change them"
        )
    if dropped := resume_dropped_callbacks(saved, config):
        return (
            f"{'; '.join(dropped)}: the checkpoint holds the state of what this turns off; "
            "resume with it on, or start a new run"
        )
    return None
