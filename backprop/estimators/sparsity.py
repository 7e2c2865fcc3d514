"""The estimators' pruning keywords (issue 15): ``sparsity`` and ``pruning_epochs``.

``sparsity = s > 0`` prunes that fraction of the weights by magnitude, raised along Zhu & Gupta's
cubic curve (:class:`backprop.pruning.GradualPruning`) over the first ``pruning_epochs`` epochs,
re-pruning four times per epoch. If training stops before the curve reaches ``s`` (scikit-learn's
``tol`` / ``n_iter_no_change`` convergence test, or ``max_iter``), :func:`finish` prunes the rest
in one shot and warns. Each ``partial_fit`` call is one epoch of the curve (the trainer's
update count carries over, through ``bp.save``/``bp.load`` too: :func:`updates_taken`), so a
run of ``partial_fit`` calls reaches ``s`` after ``pruning_epochs`` of them; none of them prunes
the rest in one shot.
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


def updates_taken(est: Any) -> int:
    """The update count a file keeps (``_updates``): that of the estimator's trainer, from
    which its next ``partial_fit`` goes on (0 after L-BFGS, whose trainer it does not reuse),
    or the one it was loaded with while it has no trainer yet."""
    trainer = getattr(est, "_trainer", None)
    if trainer is None:
        return int(getattr(est, "_updates", 0))
    return 0 if trainer.mode == "batch" else int(trainer.step_count)


def carried_updates(est: Any, incremental: bool) -> int:
    """The first update count of a new trainer: a ``partial_fit`` after ``bp.load`` goes on
    from the saved estimator's (its pruning curve and step-based learning-rate schedule with
    it, as without the file); a ``fit`` starts at 0."""
    updates = int(vars(est).pop("_updates", 0))
    return updates if incremental else 0


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
