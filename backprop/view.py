"""TrainingView: what a callback sees of a run, and all it may change.

The trainer passes one ``TrainingView`` as the first argument of every callback hook (the
argument the hooks have always called ``trainer``), so callbacks written against the documented
hooks keep working: ``trainer.model`` and ``trainer.stop_training = True`` mean what they meant.
The view offers nothing else of the Trainer: no optimizer, no data, no private state.

==================  =====================================================================
attribute           meaning
==================  =====================================================================
model               the Sequential being trained (read its weights, gradients, buffers)
loss                the loss function object (to measure other data sets the same way)
epoch               epochs completed so far (across calls to fit)
step                optimizer updates taken so far (L-BFGS: iterations)
lr                  the optimizer's learning rate (NaN for L-BFGS); assignable, >= 0
stop_training       set it to True to end training after this epoch
note(text)          leave a line for the user (why training stopped, say); ProgressBar prints
                    the notes of the run at its end, so no callback reads another's state
notes               the notes left so far in this call to fit (a tuple)
has_validation      whether ``val_*`` keys will be in the epoch logs
metric_names        the metrics the trainer logs ("accuracy", "r2")
steps_per_epoch     updates per epoch (0 until known for a stream of batches)
initial_epoch       the epoch this call to fit started at
end_epoch           the epoch this call to fit ends at, unless stopped
state_dict()        a copy of the run's state, for checkpoints (Checkpoint uses it)
==================  =====================================================================

Batch logs hold ``loss``, ``grad_norm`` (before clipping) and ``batch_size`` (rows in the batch);
epoch logs hold ``loss``, the metrics, ``val_*``, ``lr``, ``grad_norm``, ``grad_norm_max``,
``time`` and whatever callbacks add.
"""

from __future__ import annotations

import math
from typing import Any

from . import checks


class TrainingView:
    """A narrow, typed view of a Trainer for callbacks (see the module docstring).

    Parameters
    ----------
    trainer : Any
        The :class:`Trainer` to view.
    """

    __slots__ = ("_trainer",)

    def __init__(self, trainer: Any) -> None:
        object.__setattr__(self, "_trainer", trainer)

    @property
    def model(self) -> Any:
        return self._trainer.model

    @property
    def loss(self) -> Any:
        return self._trainer.loss

    @property
    def epoch(self) -> int:
        return self._trainer.epoch

    @property
    def step(self) -> int:
        return self._trainer.step_count

    @property
    def lr(self) -> float:
        return float(getattr(self._trainer.optimizer, "lr", math.nan))

    @lr.setter
    def lr(self, value: float) -> None:
        if not self._trainer.has_learning_rate:
            raise ValueError("L-BFGS has no learning rate to set")
        # a negative rate climbs the loss and NaN fills the weights with NaN, both silently
        self._trainer.optimizer.lr = checks.real("lr", value, 0.0, None, "left")

    @property
    def stop_training(self) -> bool:
        return self._trainer.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._trainer.stop_training = bool(value)

    @property
    def has_validation(self) -> bool:
        return self._trainer.has_validation

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self._trainer.metric_names)

    @property
    def steps_per_epoch(self) -> int:
        return self._trainer.steps_per_epoch

    @property
    def initial_epoch(self) -> int:
        return self._trainer.initial_epoch

    @property
    def end_epoch(self) -> int:
        return self._trainer.end_epoch

    def note(self, text: str) -> None:
        """Leave a line for the user about this run (printed by ProgressBar at the end)."""
        self._trainer.notes.append(str(text))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._trainer.notes)

    def state_dict(self) -> dict[str, Any]:
        """A copy of the run's complete state (``Trainer.state_dict``), for checkpoints."""
        return self._trainer.state_dict()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in ("lr", "stop_training"):
            raise AttributeError(
                f"a callback may set only 'lr' and 'stop_training' on the training view, "
                f"not {name!r}"
            )
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"the training view has no attribute {name!r}; callbacks see model, loss, epoch, "
            "step, lr, stop_training, has_validation, metric_names, steps_per_epoch, "
            "initial_epoch, end_epoch and notes, and may call note() (and the logs)"
        )

    def __repr__(self) -> str:
        return f"TrainingView(epoch={self.epoch}, step={self.step}, lr={self.lr:g})"
