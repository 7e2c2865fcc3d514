"""The estimators' pruning keywords (issue 15): ``sparsity`` and ``pruning_epochs``.

``sparsity = s > 0`` prunes that fraction of the weights by magnitude, raised along Zhu & Gupta's
cubic curve (:class:`backprop.pruning.GradualPruning`) over the first ``pruning_epochs`` epochs,
re-pruning four times per epoch. If training stops before the curve reaches ``s`` (scikit-learn's
``tol`` / ``n_iter_no_change`` convergence test, or ``max_iter``), :func:`finish` prunes the rest
in one shot and warns. Each ``partial_fit`` call is one epoch of the curve (the trainer's
update count carries over), so a run of ``partial_fit`` calls reaches ``s`` after
``pruning_epochs`` of them; none of them prunes the rest in one shot.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .. import pruning
from ..callbacks import Callback


def callbacks(est: Any, n_samples: int, batch_size: int) -> list[Callback]:
    """The GradualPruning callback for ``est.sparsity`` (none when it is 0)."""
    if not est.sparsity:
        return []
    steps = 1 if est.solver == "lbfgs" else -(-n_samples // batch_size)  # updates per epoch
    end = int(est.pruning_epochs) * steps
    return [pruning.GradualPruning(float(est.sparsity), 0, end, max(1, steps // 4))]


def finish(est: Any, trainer: Any) -> None:
    """Training stopped before the schedule reached ``sparsity``: prune the rest now."""
    model = est.model_
    wanted = round(float(est.sparsity) * model.n_weights)  # as pruning.compute_mask rounds
    mask = model.weight_mask
    if est.sparsity and (mask is None or np.count_nonzero(~mask) < wanted):
        warnings.warn(
            f"training stopped before the pruning schedule reached sparsity {est.sparsity}; "
            "the remaining weights were pruned in one shot without retraining (raise max_iter "
            "or n_iter_no_change, or lower pruning_epochs)",
            ConvergenceWarning,
            stacklevel=5,
        )
        pruning.prune(model, float(est.sparsity), optimizer=trainer.optimizer)
