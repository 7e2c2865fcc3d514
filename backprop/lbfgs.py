"""Full-batch L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``, one iteration at a
time.

The second-order option for small data sets. SciPy runs its own loop, so :class:`LBFGSRun`
turns it inside out: SciPy works in a helper thread that hands control back after every
iteration, and the Trainer's ordinary epoch loop asks for the next iteration as it would take a
mini-batch step. Only one of the two threads runs at any moment, so results are deterministic.
One iteration is one epoch (one "batch" of the whole training set) in the history; the hooks,
``grad_norm`` and GradientMonitor work as with any optimizer.

The objective is the Trainer's ``loss_and_gradients`` over the whole training set (L1/L2
penalty included, as in the other modes). SciPy works in float64 on a copy of the model's flat
parameter vector: each point it tries is written into the model's parameters (rounded, for a
float32 model) and the gradient goes back cast to float64, so the weights keep their dtype and a
float32 run stops at a gradient a little larger than a float64 one, or, when SciPy's steps fall
below the weights' resolution so that an iteration cannot move them, far earlier: then a
RuntimeWarning says so. ``fit``'s ``epochs`` bound the iterations (SciPy's ``maxiter``),
``max_fun`` the loss evaluations.

L-BFGS assumes a deterministic objective: with Dropout every evaluation draws new masks and
the line search stops early, and BatchNorm's running statistics move once per evaluation, not
per iteration. The Trainer refuses Dropout with L-BFGS and warns about BatchNorm.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import checks


class LBFGS:
    """Limited-memory BFGS (SciPy's L-BFGS-B without bounds).

    Parameters
    ----------
    tol : float, default 1e-05
        stop when the largest gradient entry falls below ``tol`` (SciPy's ``gtol``); SciPy
        also stops when an iteration lowers the loss by a relative 2.2e-9 or less (its
        default ``ftol``).
    max_fun : int, default 15000
        bound on the loss-and-gradient evaluations: SciPy stops at the end of the iteration
        in which their count exceeds it (so ``result.nfev`` is at least ``max_fun + 1``).
    memory : int, default 10
        number of correction pairs kept (SciPy's ``maxcor``).

    """

    lr = float("nan")  # no learning rate: reported as NaN in the history

    def __init__(self, tol: float = 1e-5, max_fun: int = 15000, memory: int = 10) -> None:
        self.tol = checks.non_negative("tol", tol)
        self.max_fun = checks.positive_int("max_fun", max_fun)
        self.memory = checks.positive_int("memory", memory)
        self.result: Any = None  # scipy.optimize.OptimizeResult of the last run

    def start(
        self,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
        params: np.ndarray,
        max_iter: int,
    ) -> LBFGSRun:
        """A run from ``params`` (which each iteration updates in place); see LBFGSRun."""
        return LBFGSRun(self, objective, params, max_iter)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def config(self) -> dict[str, Any]:
        return {"tol": self.tol, "max_fun": self.max_fun, "memory": self.memory}

    def __repr__(self) -> str:
        return f"LBFGS(tol={self.tol}, max_fun={self.max_fun}, memory={self.memory})"


def iteration_step(trainer: Any, batches: Callable) -> tuple[LBFGSRun, Callable]:
    """Start ``trainer.optimizer`` (an LBFGS) on the trainer's one full batch; returns the run
    (to close) and the step the trainer's epoch loop calls in place of ``train_step``: one
    L-BFGS iteration, returning ``(loss, output, gradient norm)`` at the point reached, or
    raising StopIteration once SciPy has stopped on its own (converged, or ``max_fun``)."""
    ((Xt, yt, wt),) = list(batches(trainer.epoch))
    last: dict[str, Any] = {}

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, last["out"], last["norm"] = trainer.checked_loss_and_gradients(Xt, yt, wt)
        return loss, trainer.model.flat_gradients

    params = trainer.model.flat_parameters
    run = trainer.optimizer.start(objective, params, trainer.end_epoch - trainer.epoch)

    def step(Xb: Any, yb: Any, wb: Any) -> tuple[float, np.ndarray, float]:
        loss = run.next_iteration()
        if loss is None:
            raise StopIteration
        if not np.array_equal(run.last_x, params):
            objective(params.astype(np.float64))  # measure at the accepted point
        trainer.step_count += 1
        return loss, last["out"], last["norm"]

    return run, step


class LBFGSRun:
    """One ``scipy.optimize.minimize`` call, driven one iteration at a time.

    ``next_iteration()`` lets SciPy run until its next iteration ends and returns that
    iteration's loss, with ``params`` set to the new point (and the model's gradients, as the
    objective left them, at that point); it returns None once SciPy has stopped on its own
    (converged, or ``max_fun`` reached). ``close()`` ends the run and waits for the thread.
    An exception raised by the objective (divergence) comes out of ``next_iteration``, with
    ``params`` put back to the last accepted point. When SciPy stops on its own, ``params``
    ends at its result; ``close()`` leaves ``params`` as they are (the last accepted point, or
    what a callback set after it: the last epoch's ``on_epoch_end`` runs before the close).

    SciPy iterates on its own copy of the point. When ``params`` changed between two iterations
    (a callback pruned weights: :class:`~backprop.pruning.GradualPruning`), ``next_iteration``
    therefore ends that ``minimize`` call and starts another from ``params`` as they are
    (losing the curvature pairs), with the iterations and evaluations left; ``result.nit`` and
    ``result.nfev`` count those of every call. Going on would have revived the pruned weights.
    """

    def __init__(self, lbfgs: LBFGS, objective, params: np.ndarray, max_iter: int) -> None:
        self.lbfgs, self.objective, self.params = lbfgs, objective, params
        self.max_iter = max_iter
        self.last_x: np.ndarray | None = None  # the parameters of the last evaluation
        self.nit = self.nfev = 0  # iterations and evaluations of every minimize call so far
        self._begin()

    def _begin(self) -> None:
        """Start a ``minimize`` call (in a new thread) from ``params``."""
        self._accepted = self.params.copy()  # the last point an iteration accepted
        self._go: queue.Queue[bool] = queue.Queue()
        self._back: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True, name="backprop-lbfgs")
        self._finished = self._started = self._stopped = self._stalled = False
        self._stall_note: str | None = None  # why SciPy's own stop deserves a warning
        self._counts = (self.nit, self.nfev)  # before this call
        self._thread.start()

    def _evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.nfev += 1
        self.params[...] = x
        self.last_x = self.params.copy()  # in the model's dtype, to compare with params
        loss, grad = self.objective(x)
        return loss, grad.astype(np.float64)

    def _after_iteration(self, intermediate_result: Any) -> None:
        self.nit += 1
        # an iteration that left the weights as they were (in their dtype): float32 rounding
        self._stalled = np.array_equal(
            intermediate_result.x.astype(self.params.dtype), self._accepted
        )
        self.params[...] = intermediate_result.x
        self._accepted[...] = self.params
        self._back.put(("iteration", float(intermediate_result.fun)))
        if not self._go.get():
            self._stopped = True  # by close(): params stay as the trainer left them
            raise StopIteration

    def _work(self) -> None:
        from scipy import optimize  # imported here: it costs ~0.4 s at `import backprop`

        if not self._go.get():
            self._back.put(("stopped", None))
            return
        try:
            result = optimize.minimize(
                self._evaluate,
                self.params.astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                callback=self._after_iteration,
                options={
                    "maxiter": self.max_iter - self._counts[0],
                    "maxfun": self.lbfgs.max_fun - self._counts[1],
                    "gtol": self.lbfgs.tol,
                    "maxcor": self.lbfgs.memory,
                },
            )
        except BaseException as exc:  # handed to the trainer's thread, raised there
            self.params[...] = self._accepted  # not the trial point that failed
            self._back.put(("error", exc))
            return
        if not self._stopped:  # SciPy stopped on its own, maybe after a trial point
            self.params[...] = result.x
            self._note_stall(result)
        result.nit, result.nfev = self.nit, self.nfev  # of every call since the first
        # Its inverse-Hessian operator holds the 2 * memory curvature vectors: kept with the
        # trainer (and a pickled estimator) they weighed up to 20 times the parameters.
        result.pop("hess_inv", None)
        self.lbfgs.result = result
        self._back.put(("stopped", None))

    def _note_stall(self, result: Any) -> None:
        """A stop right after an iteration that could not move the weights, with the gradient
        above ``tol``: SciPy's float64 steps fell below the weights' resolution (float32)."""
        gmax = float(np.abs(result.jac).max()) if result.jac.size else 0.0
        if self._stalled and gmax > self.lbfgs.tol:
            self._stall_note = (
                f"L-BFGS stopped ({result.message}) after an iteration that left the "
                f"{self.params.dtype} weights unchanged: its steps fell below their resolution, "
                f"with the largest gradient entry still {gmax:.3g} (tol {self.lbfgs.tol:g}); "
                "train a float64 model (dtype='float64') or rescale the inputs"
            )

    def next_iteration(self) -> float | None:
        """Run one iteration; its loss, or None when SciPy has stopped."""
        if self._finished:
            return None
        if self._started and not np.array_equal(self.params, self._accepted):
            moved = self.params.copy()  # changed by a callback since the last iteration
            self.close()
            self.params[...] = moved
            if self.nit >= self.max_iter or self.nfev >= self.lbfgs.max_fun:
                return None
            self._begin()
        self._started = True
        self._go.put(True)
        kind, value = self._back.get()
        if kind == "iteration":
            return value
        self._finished = True
        self._thread.join()
        if kind == "error":
            raise value
        if self._stall_note is not None:
            warnings.warn(self._stall_note, RuntimeWarning, stacklevel=2)
        return None

    def close(self) -> None:
        """Stop SciPy (if it is still running) and wait for the thread to end."""
        if not self._finished:
            self._finished = True
            self._go.put(False)
            while True:
                kind, value = self._back.get()
                if kind != "iteration":
                    break
                self._go.put(False)
        self._thread.join()
