"""Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``.

The second-order option for small data sets. The trainer supplies ``objective(x) -> (loss, grad)``
over the whole training set (the same forward/loss/backward/penalty function its mini-batch step
uses) and SciPy gets the model's flat parameter vector, in float64, directly. One L-BFGS
iteration counts as one epoch in the history; ``max_fun`` bounds the number of loss evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .data import METRICS, gather
from .regularization import global_norm
from .sparse import is_sparse


class LBFGS:
    """Limited-memory BFGS (SciPy's L-BFGS-B without bounds).

    Parameters
    ----------
    tol : float, default 1e-05
        stop when the largest gradient entry falls below ``tol`` (SciPy's ``gtol``).
    max_fun : int, default 15000
        maximum number of loss-and-gradient evaluations.
    memory : int, default 10
        number of correction pairs kept (SciPy's ``maxcor``).

    """

    lr = float("nan")  # no learning rate: reported as NaN in the history

    def __init__(self, tol: float = 1e-5, max_fun: int = 15000, memory: int = 10) -> None:
        if not (isinstance(tol, int | float) and tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {tol!r}")
        if isinstance(max_fun, bool) or not isinstance(max_fun, int) or max_fun < 1:
            raise ValueError(f"max_fun must be a positive integer, got {max_fun!r}")
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 1:
            raise ValueError(f"memory must be a positive integer, got {memory!r}")
        self.tol, self.max_fun, self.memory = float(tol), max_fun, memory
        self.result: Any = None  # scipy.optimize.OptimizeResult after minimize

    def minimize(
        self,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
        params: np.ndarray,
        after_iteration: Callable[[np.ndarray, float], bool],
        max_iter: int,
    ) -> Any:
        """Minimize from ``params`` (updated in place with the result). ``after_iteration(x,
        loss)`` runs after every iteration and returns True to stop."""

        from scipy import optimize  # imported here: it costs ~0.4 s at `import backprop`

        def callback(intermediate_result: Any) -> None:
            if after_iteration(intermediate_result.x, float(intermediate_result.fun)):
                raise StopIteration

        self.result = optimize.minimize(
            objective,
            params.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxiter": max_iter,
                "maxfun": self.max_fun,
                "gtol": self.tol,
                "maxcor": self.memory,
            },
        )
        params[...] = self.result.x
        return self.result

    def fit(self, trainer: Any, X, y, w, train_idx, val, callbacks) -> None:
        """Run the trainer's full-batch L-BFGS fit: one iteration is one epoch of its history.

        Called by ``Trainer.fit``; uses its loss-and-gradient function, callbacks and logs."""
        full = len(train_idx) == X.shape[0]
        Xt = X if full else gather(X, train_idx)
        yt = y if full else y[train_idx]
        wt = w if (w is None or full) else w[train_idx]
        if is_sparse(Xt):  # CSR stays CSR, cast once (L-BFGS reads the whole set anyway)
            Xt = Xt if Xt.dtype == trainer.model.dtype else Xt.astype(trainer.model.dtype)
        else:
            Xt = np.asarray(Xt, dtype=trainer.model.dtype)
        trainer.steps_per_epoch = 1
        metrics = [METRICS[name]() for name in trainer.metric_names]
        state = {"start": time.perf_counter(), "epoch": trainer.initial_epoch}

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            trainer._position = (state["epoch"], 0)
            trainer.model.flat_parameters[...] = x
            loss, _ = trainer.loss_and_gradients(Xt, yt, wt)
            norm = global_norm(trainer.model.flat_gradients)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise trainer._diverged(loss, norm)
            return loss, trainer.model.flat_gradients.astype(np.float64)

        def after_iteration(x: np.ndarray, loss: float) -> bool:
            epoch = state["epoch"]
            trainer.model.flat_parameters[...] = x
            for cb in callbacks:
                cb.on_epoch_begin(trainer, epoch)
            out = trainer.model.predict(Xt)
            logs: dict[str, float] = {"epoch": epoch + 1, "loss": float(loss)}
            for metric in metrics:
                metric.reset()
                metric.update(out, yt, wt)
                logs[metric.name] = metric.result()
            trainer._finish_epoch(epoch, logs, val, callbacks, state["start"])
            state["epoch"], state["start"] = epoch + 1, time.perf_counter()
            trainer.step_count += 1
            return trainer.stop_training or state["epoch"] >= trainer.end_epoch

        self.minimize(
            objective,
            trainer.model.flat_parameters,
            after_iteration,
            trainer.end_epoch - trainer.initial_epoch,
        )

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def config(self) -> dict[str, Any]:
        return {"tol": self.tol, "max_fun": self.max_fun, "memory": self.memory}

    def __repr__(self) -> str:
        return f"LBFGS(tol={self.tol}, max_fun={self.max_fun}, memory={self.memory})"
