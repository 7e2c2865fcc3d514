"""Learning-rate schedules.

Protocol: a schedule is asked ``schedule(t) -> lr`` where ``t`` counts epochs (``interval="epoch"``,
the default) or optimizer updates (``interval="update"``), starting at 0; ``base_lr`` is the
optimizer's learning rate when training begins (set by the trainer through ``start(base_lr)``).
ReduceLROnPlateau watches metrics, so it is a callback: it is asked nothing per step, and
multiplies the optimizer's rate by ``factor`` when its monitored key stops improving. Passed as
``schedule=`` it runs as the first callback (it sees the trainer's own ``loss``/``val_*`` logs);
in ``callbacks=`` it sees what the callbacks before it added. It cannot share a run with another
schedule (that one would overwrite its reductions every epoch): the Trainer refuses the pair.

=====================  ==================================================================
schedule               lr(t)
=====================  ==================================================================
Constant               base_lr
StepDecay              base_lr * gamma ** floor(t / step_size)
ExponentialDecay       base_lr * gamma ** t
InverseScaling         base_lr / (t + 1) ** power                 (sklearn's 'invscaling')
CosineDecay            warm-up: base_lr * (t + 1) / warmup for t < warmup, then
                       min_lr + (base_lr - min_lr) * (1 + cos(pi * s)) / 2,
                       s = min(1, (t - warmup) / (total - warmup))
ReduceLROnPlateau      multiply by ``factor`` after ``patience + 1`` epochs in a row without
                       improvement (``patience`` are tolerated, as in torch)
=====================  ==================================================================

The current state of a schedule is plain numbers (``state_dict``) for checkpoints.
"""

from __future__ import annotations

import inspect
import math
import weakref
from typing import Any

from . import checks
from .callbacks import (
    Callback,
    check_monitor_has_validation,
    improved,
    monitored,
    resolve_mode,
)


class Schedule:
    """Base class: subclasses implement ``lr_at(t)`` from ``self.base_lr``.

    Parameters
    ----------
    interval : str, default 'epoch'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    # weak reference to the Trainer that started it (see start); a class default for
    # schedules pickled before it existed
    _owner: weakref.ref | None = None

    def __init__(self, interval: str = "epoch") -> None:
        self.interval = checks.one_of("interval", interval, ("epoch", "update"))
        self.base_lr: float | None = None
        self._owner = None

    def start(self, base_lr: float, owner: Any = None) -> None:
        """Called by the trainer ``owner`` when training begins: the base rate is taken the
        first time only, so resuming keeps the original one. A schedule started by another
        trainer is refused: its base rate is that trainer's (one schedule object reused over a
        learning-rate sweep would give every run the first run's rate)."""
        if owner is not None:
            if self._owner is not None and self._owner() is not owner:
                raise ValueError(
                    f"this {self!r} was started by another Trainer (base_lr {self.base_lr}): "
                    "give each Trainer its own schedule (a new instance)"
                )
            self._owner = weakref.ref(owner)
        if self.base_lr is None:
            self.base_lr = float(base_lr)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied without the trainer that started it (a weak reference)."""
        return {k: v for k, v in self.__dict__.items() if k != "_owner"}

    def __call__(self, t: int) -> float:
        if self.base_lr is None:
            raise RuntimeError("schedule used before start(base_lr)")
        return float(self.lr_at(t))

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "type": type(self).__name__}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("type", type(self).__name__)  # (absent from older checkpoints)
        if saved != type(self).__name__:
            raise ValueError(f"the saved state is {saved}'s, this schedule is {self!r}")
        base = state["base_lr"]
        self.base_lr = None if base is None else float(base)
        self._owner = None  # the trainer resuming the run starts it

    def config(self) -> dict[str, Any]:
        return {"interval": self.interval}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The optimizer's own learning rate at every step: ``lr(t) = base_lr``.

    Parameters
    ----------
    interval : str, default 'epoch'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    def lr_at(self, t):
        return self.base_lr


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (or updates).

    Parameters
    ----------
    step_size : int
        Steps between two drops.
    gamma : float, default 0.1
        Factor of each drop.
    interval : str, default 'epoch'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    def __init__(self, step_size: int, gamma: float = 0.1, interval: str = "epoch") -> None:
        super().__init__(interval)
        self.step_size = checks.positive_int("step_size", step_size)
        self.gamma = checks.positive("gamma", gamma)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)

    def config(self):
        return {"step_size": self.step_size, "gamma": self.gamma, "interval": self.interval}


class ExponentialDecay(Schedule):
    """``base_lr * gamma ** t``.

    Parameters
    ----------
    gamma : float
        Factor per step.
    interval : str, default 'epoch'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    def __init__(self, gamma: float, interval: str = "epoch") -> None:
        super().__init__(interval)
        self.gamma = checks.positive("gamma", gamma)

    def lr_at(self, t):
        return self.base_lr * self.gamma**t

    def config(self):
        return {"gamma": self.gamma, "interval": self.interval}


class InverseScaling(Schedule):
    """``base_lr / (t + 1) ** power`` (scikit-learn's 'invscaling' counts samples seen).

    Parameters
    ----------
    power : float, default 0.5
        Exponent of the decay.
    interval : str, default 'update'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    def __init__(self, power: float = 0.5, interval: str = "update") -> None:
        super().__init__(interval)
        self.power = checks.positive("power", power)

    def lr_at(self, t):
        return self.base_lr / (t + 1) ** self.power

    def config(self):
        return {"power": self.power, "interval": self.interval}


class CosineDecay(Schedule):
    """Linear warm-up over ``warmup`` steps, then a half cosine from ``base_lr`` to ``min_lr``
    over the remaining ``total - warmup`` steps (constant at ``min_lr`` after ``total``).

    Parameters
    ----------
    total : int
        Steps from the start to ``min_lr`` (warm-up included).
    warmup : int, default 0
        Steps of linear warm-up from 0 to ``base_lr``.
    min_lr : float, default 0.0
        Final learning rate.
    interval : str, default 'epoch'
        "epoch" or "update": what one step ``t`` of the schedule counts.
    """

    def __init__(
        self, total: int, warmup: int = 0, min_lr: float = 0.0, interval: str = "epoch"
    ) -> None:
        super().__init__(interval)
        self.total = checks.positive_int("total", total)
        if not checks.is_integer(warmup) or not 0 <= warmup < self.total:
            raise ValueError(
                f"warmup must be an integer in [0, total={self.total}), got {warmup!r}"
            )
        self.warmup = int(warmup)
        self.min_lr = checks.non_negative("min_lr", min_lr)

    def lr_at(self, t):
        if t < self.warmup:
            return self.base_lr * (t + 1) / self.warmup
        s = min(1.0, (t - self.warmup) / (self.total - self.warmup))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * s))

    def config(self):
        return {
            "total": self.total,
            "warmup": self.warmup,
            "min_lr": self.min_lr,
            "interval": self.interval,
        }


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has gone ``patience + 1`` epochs
    in a row without improving by more than ``min_delta``; never below ``min_lr``.

    ``patience`` bad epochs are tolerated and the next one reduces the rate, as in
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (``patience=0``: every epoch without
    improvement reduces it; ``patience=2``: the third in a row). The count restarts after each
    reduction. :class:`~backprop.EarlyStopping` counts differently: it stops after ``patience``
    bad epochs, as Keras's does.

    A callback (see the module docstring); ``schedule="plateau"`` or ``schedule=`` an instance
    also works. ``mode`` is "min", "max" or "auto" (max for names containing accuracy/r2/score).
    A monitored key that never appears in the logs is an error, not a silent no-op. Its state
    (``scale``, ``best``, ``wait``) is saved in checkpoints; a resumed run continues at the
    reduced rate.

    The rate it sets is ``max(base_lr * scale, min_lr)``, ``base_lr`` being the optimizer's
    rate when the first fit began.

    Parameters
    ----------
    monitor : str, default 'val_loss'
        The logged value to watch.
    factor : float, default 0.1
        Multiplier of the rate on a plateau.
    patience : int, default 5
        Epochs without improvement tolerated; the next one drops the rate.
    min_delta : float, default 0.0
        Smallest change that counts as an improvement.
    min_lr : float, default 0.0
        Lower bound of the rate.
    mode : str, default 'auto'
        "min", "max" or "auto".
    """

    interval = "epoch"
    _owner: weakref.ref | None = None  # the model it was started on (see on_train_begin)

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 5,
        min_delta: float = 0.0,
        min_lr: float = 0.0,
        mode: str = "auto",
    ) -> None:
        self.monitor = monitor
        self.factor = checks.real("factor", factor, 0, 1, "neither")
        self.patience = checks.non_negative_int("patience", patience)
        self.min_delta = checks.non_negative("min_delta", min_delta)
        self.min_lr = checks.non_negative("min_lr", min_lr)
        self.mode = resolve_mode(monitor, mode)
        self.base_lr: float | None = None
        self.scale = 1.0
        self.best: float | None = None
        self.wait = 0
        self._owner = None

    def lr(self) -> float:
        """The rate this plateau asks for now."""
        return max(self.base_lr * self.scale, self.min_lr)

    def observe(self, value: float) -> None:
        """One epoch's monitored value: count it, and reduce the scale at the
        ``patience + 1``-th epoch in a row without improvement."""
        if improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = float(value), 0
            return
        self.wait += 1
        if self.wait > self.patience:
            self.scale *= self.factor
            self.wait = 0

    def on_train_begin(self, trainer):
        check_monitor_has_validation(self, trainer)
        # its base rate, scale and best value are one run's: another model's run is refused
        model = getattr(trainer, "model", None)
        if model is not None:
            if self._owner is not None and self._owner() is not model:
                raise ValueError(
                    f"this {self!r} was started on another model (base_lr {self.base_lr}, "
                    f"scale {self.scale:g}): give each run its own plateau (a new instance)"
                )
            self._owner = weakref.ref(model)
        if self.base_lr is None:
            self.base_lr = float(trainer.lr)
        trainer.lr = self.lr()

    def on_epoch_end(self, trainer, epoch, logs):
        self.observe(monitored(self, logs))
        trainer.lr = self.lr()

    def state_dict(self) -> dict[str, Any]:
        keys = ("base_lr", "scale", "best", "wait", "monitor", "mode")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        checks.same_monitor(self, state)  # a best of another quantity would mislead it
        base, best = state["base_lr"], state["best"]
        if base is not None:  # None: saved before any fit began; keep the rate this fit took
            self.base_lr = float(base)
        self.scale = float(state["scale"])
        self.best = None if best is None else float(best)
        self.wait = int(state["wait"])
        self._owner = None  # the run that resumes it takes it

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and copied without the model it was started on (a weak reference)."""
        return {k: v for k, v in self.__dict__.items() if k != "_owner"}

    def config(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "min_lr": self.min_lr,
            "mode": self.mode,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"ReduceLROnPlateau({args})"


REGISTRY: dict[str, type[Schedule] | type[ReduceLROnPlateau]] = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "invscaling": InverseScaling,
    "cosine": CosineDecay,
    "plateau": ReduceLROnPlateau,
}


def get(
    identifier: str | Schedule | ReduceLROnPlateau | None, **kwargs: Any
) -> Schedule | ReduceLROnPlateau | None:
    """A schedule from a name (``"cosine"``, ``"step"``, ...), an instance, or None. A name
    whose schedule needs arguments (``"step"``, ``"exponential"``, ``"cosine"``) needs them in
    ``kwargs``; without them the error names the arguments and the instance to pass."""
    if identifier is None or isinstance(identifier, Schedule | ReduceLROnPlateau):
        return identifier
    if identifier not in REGISTRY:
        raise ValueError(f"unknown schedule {identifier!r}; valid names: {', '.join(REGISTRY)}")
    cls = REGISTRY[identifier]
    missing = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.default is p.empty and p.kind is not p.VAR_KEYWORD and p.name not in kwargs
    ]
    if missing:
        args = ", ".join(f"{name}=..." for name in missing)
        raise ValueError(
            f"schedule {identifier!r} needs {' and '.join(missing)}, which a name cannot give: "
            f"pass an instance, schedule=bp.{cls.__name__}({args})"
        )
    return cls(**kwargs)
