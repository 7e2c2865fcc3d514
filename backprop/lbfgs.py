"""Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``.

The second-order option for small data sets. The trainer supplies ``objective(x) -> (loss, grad)``
over the whole training set (the same forward/loss/backward/penalty function its mini-batch step
uses) and SciPy gets the model's flat parameter vector, in float64, directly. One L-BFGS
iteration counts as one epoch in the history; ``max_fun`` bounds the number of loss evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class LBFGS:
    """Limited-memory BFGS (SciPy's L-BFGS-B without bounds).

    Args:
        tol: stop when the largest gradient entry falls below ``tol`` (SciPy's ``gtol``).
        max_fun: maximum number of loss-and-gradient evaluations.
        memory: number of correction pairs kept (SciPy's ``maxcor``).
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

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def config(self) -> dict[str, Any]:
        return {"tol": self.tol, "max_fun": self.max_fun, "memory": self.memory}

    def __repr__(self) -> str:
        return f"LBFGS(tol={self.tol}, max_fun={self.max_fun}, memory={self.memory})"
