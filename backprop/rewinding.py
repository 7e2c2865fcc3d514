"""Weight snapshots for rewinding (lottery tickets, Frankle & Carbin 2019).

:class:`WeightSnapshot` records ``flat_parameters`` after update ``k`` (0 = the initialization);
:func:`backprop.pruning.rewind` puts them back on the surviving weights. The snapshot is part of
the callback's state, so a checkpointed run that is resumed rewinds to the weights it recorded.
(Re-exported as ``backprop.pruning.WeightSnapshot``, where it was first defined.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import checks
from .callbacks import Callback


class WeightSnapshot(Callback):
    """Record a copy of ``flat_parameters`` after update ``step`` (0: when training begins, i.e.
    the initialization) into ``self.params``; the first time only.

    Parameters
    ----------
    step : int, default 0
        The update count ``trainer.step`` after which the weights are recorded.
    """

    def __init__(self, step: int = 0) -> None:
        self.step = checks.integer("step", step, 0)  # (a NumPy integer too, as an int)
        self.params: np.ndarray | None = None

    def state_dict(self) -> dict[str, Any]:
        """The snapshot (None until it is taken): a checkpoint keeps it for the resumed run."""
        return {"params": None if self.params is None else self.params.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        params = state["params"]
        if params is not None:
            ok = isinstance(params, np.ndarray) and params.ndim == 1 and params.dtype.kind == "f"
            if not ok:
                raise ValueError(f"WeightSnapshot params must be a 1-D float array, got {params!r}")
        if params is not None:  # None: not taken yet when saved; keep one this fit just took
            self.params = params.copy()

    def on_train_begin(self, trainer):
        if self.params is None and trainer.step == self.step:
            self.params = trainer.model.flat_parameters.copy()

    def on_epoch_begin(self, trainer, epoch):
        # Checked here, not in on_train_begin: a resumed run gets its snapshot back after that.
        if self.params is None and trainer.step > self.step:
            raise ValueError(f"WeightSnapshot(step={self.step}) added after {trainer.step} updates")

    def on_batch_end(self, trainer, batch, logs):
        if self.params is None and trainer.step == self.step:
            self.params = trainer.model.flat_parameters.copy()
