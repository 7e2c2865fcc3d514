"""Optimizer: the base class of the first-order optimizers, and the in-place kernels they share.

A subclass lists its state arrays in ``state_names`` and implements ``_update(p, g, state)``
on matching slices of the flat vectors, in place; :meth:`Optimizer.step` creates the state
(one flat array per kind, the size of ``params``) on the first step, runs ``_update`` over the
trainable slices, counts the steps and flushes near-subnormal state. The update rules are
listed in :mod:`backprop.optimizers`.

Speed. Every update is written as in-place passes over the flat vectors, and elementwise steps
write into one reused work array. NumPy, not BLAS level 1: ``axpy``/``scal`` from
``scipy.linalg.blas`` would save a pass each, but SciPy ships its own OpenBLAS with its own thread
pool, and alternating it with NumPy's (matrix products) made a training step about 12 times slower
with 2 BLAS threads (measured here: 19.1 against 1.5 ms a step, MNIST-sized 784-256-128-10, batch
32). The results equal the plain formulas above to rounding (``tests/test_optimizer_speed.py``).

Subnormal numbers. A weight whose gradient is almost always zero (the weight of a pixel that is
almost always black) has optimizer state that decays geometrically, ``m <- b1 * m``, until it
reaches the subnormal range (below ``np.finfo(np.float32).tiny`` = 1.2e-38), where x86 processors
compute tens of times more slowly. Training then slows down for good after a few thousand steps.
Every ``flush_every`` steps (16) each optimizer therefore sets to exactly zero the state entries
whose magnitude is below ``tiny * 2**24`` (2.0e-31 in float32, 3.7e-301 in float64): a decay
factor of at least 0.5 per step cannot carry an entry from above that bound into the subnormal
range within 16 steps, and a zero entry stays zero while its gradient does, at full speed. What it
costs: three passes over each state array every 16 steps (about 0.2 passes per step per array).
What it changes: nothing in float64 at any realistic scale; in float32 an Adam step on such an
entry differs by at most ``lr * 2.0e-31 / eps`` (2e-23 with the defaults), below the rounding of
any weight larger than 1e-16, and a ``sqrt(v) + eps`` whose ``v`` was flushed is the same float32
number, since ``sqrt(2.0e-31) = 4.5e-16`` is below half an ulp of ``eps = 1e-8``.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import numpy as np

from . import checks


def axpy(a: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y += a * x`` in place."""
    if x.size:
        y += y.dtype.type(a) * x


def scal(a: float, x: np.ndarray) -> None:
    """``x *= a`` in place."""
    if x.size:
        x *= x.dtype.type(a)


def flush_tiny(a: np.ndarray, work: np.ndarray, mask: np.ndarray) -> None:
    """Set to zero, in place, the entries of ``a`` with ``|a| < tiny * 2**24`` (see the module
    docstring); ``work`` and ``mask`` are scratch arrays of ``a``'s shape (float and bool).
    Only float32 and wider: float16's bound would be 1024 (every useful entry), and NumPy
    computes float16 in software, where subnormals cost nothing extra."""
    if a.dtype.itemsize < 4:
        return
    bound = np.finfo(a.dtype).tiny * 2.0**24
    np.less(np.abs(a, out=work), bound, out=mask)
    np.copyto(a, 0, where=mask)


def _root(a: np.ndarray) -> Any:
    """The object that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def _where(a: np.ndarray) -> tuple:
    """Where ``a`` lies in its memory: address, shape and strides."""
    return (a.__array_interface__["data"][0], a.shape, a.strides)


def count_steps(
    counts: list[list[int]], slices: list[slice]
) -> tuple[list[list[int]], list[tuple[slice, int]]]:
    """Per-entry step counts, run-length coded: ``counts`` is ``[[start, stop, t], ...]``
    covering the vector in order (entries ``start:stop`` have taken ``t`` steps). Count one step
    on every entry of ``slices``; returns the new counts (equal neighbours merged) and the runs
    stepped with their new counts, ``[(slice, t), ...]``."""
    if len(counts) == 1 and len(slices) == 1 and slices[0] == slice(*counts[0][:2]):
        counts[0][2] += 1  # the usual case: every entry, always
        return counts, [(slices[0], counts[0][2])]
    cuts = sorted({b for s in slices for b in (s.start, s.stop)})
    pieces = []  # the runs of counts, cut at the slices' ends
    for a, b, t in counts:
        inner = [c for c in cuts if a < c < b]
        pieces += [[lo, hi, t] for lo, hi in zip([a, *inner], [*inner, b], strict=True) if lo < hi]
    stepped: list[list[int]] = []
    for piece in pieces:
        if any(s.start <= piece[0] and piece[1] <= s.stop for s in slices):
            piece[2] += 1
            if stepped and stepped[-1][1] == piece[0] and stepped[-1][2] == piece[2]:
                stepped[-1][1] = piece[1]
            else:
                stepped.append(list(piece))
    merged: list[list[int]] = []
    for piece in pieces:
        if merged and merged[-1][2] == piece[2]:
            merged[-1][1] = piece[1]
        else:
            merged.append(piece)
    return merged, [(slice(a, b), t) for a, b, t in stepped]


def check_counts(counts: Any, iterations: int) -> list[list[int]]:
    """Saved step counts (see :func:`count_steps`), checked: ``[start, stop, t]`` runs that
    tile ``[0, n)`` in order, each ``0 <= t <= iterations``."""
    ok = isinstance(counts, list) and len(counts) > 0
    end = 0
    for run in counts if ok else ():
        ok = (
            isinstance(run, list | tuple)
            and len(run) == 3
            and all(checks.is_integer(v) for v in run)
            and run[0] == end < run[1]
            and 0 <= run[2] <= iterations
        )
        if not ok:
            break
        end = int(run[1])
    if not ok:
        raise ValueError(
            f"step_counts must be [start, stop, steps] runs tiling [0, n) in order, with "
            f"0 <= steps <= iterations ({iterations}); got {counts!r}"
        )
    return [[int(v) for v in run] for run in counts]


def _check_number(name: str, value: Any, low: float = 0.0, low_inclusive: bool = True) -> float:
    return checks.real(name, value, low, None, "left" if low_inclusive else "neither")


def _check_fraction(name: str, value: Any) -> float:
    return checks.real(name, value, 0.0, 1.0, "left")


class Optimizer:
    """Base class. Subclasses list their state arrays in ``state_names`` and implement
    ``_update(p, g, state)`` on matching slices, in place.

    Parameters
    ----------
    lr : float
        Learning rate (a schedule may change it during training).
    """

    state_names: tuple[str, ...] = ()
    # (weak reference to the array the state belongs to, where in it), or None: not bound yet
    # (see _ensure_state); a class default for optimizers pickled before it existed
    _owner: tuple[weakref.ref, tuple] | None = None
    flush_every: int = 16  # steps between flushes of near-subnormal state (0: never)

    def __init__(self, lr: float) -> None:
        self.lr = _check_number("lr", lr, 0.0, low_inclusive=False)
        self.iterations = 0  # number of steps taken
        self.state: dict[str, np.ndarray] = {}
        self._owner = None

    def _fresh_state(self, name: str, params: np.ndarray) -> np.ndarray:
        """The initial value of state array ``name``: zeros shaped like ``params``."""
        return np.zeros_like(params)

    def _ensure_state(self, params: np.ndarray) -> None:
        """Create the missing state arrays, and check that the state belongs to ``params``.

        The state is the moments of one parameter vector: an optimizer that has stepped one
        model and is given another (one instance passed to two Trainers) would start that model
        from the first one's moments and step count, so it is refused, as is a loaded state of
        another size. An optimizer without state (SGD without momentum) carries nothing over
        and binds to nothing. Arrays of another float dtype (a float64 state loaded for float32
        parameters) are converted."""
        if not self.state_names:
            return
        owner = _root(params)
        bound = None if self._owner is None else self._owner[0]()
        if self._owner is not None and (bound is not owner or self._owner[1] != _where(params)):
            raise ValueError(
                f"this {type(self).__name__} holds the state of another parameter vector (it "
                f"has stepped another model's parameters, {self.iterations} steps): give each "
                "model its own optimizer, call reset() to start afresh, or copy.deepcopy() it "
                "to carry the state over to a copy of the model"
            )
        for name in self.state_names:
            arr = self.state.get(name)
            if arr is None:
                self.state[name] = self._fresh_state(name, params)
            elif arr.shape != params.shape:
                raise ValueError(
                    f"the optimizer state {name} has shape {arr.shape}, the parameters "
                    f"{params.shape}: it was saved for another model; call reset() to start "
                    "afresh"
                )
            elif arr.dtype != params.dtype:
                self.state[name] = arr.astype(params.dtype)
        try:
            self._owner = (weakref.ref(owner), _where(params))
        except TypeError:  # a buffer that takes no weak reference: not checked
            self._owner = None

    def step(
        self, params: np.ndarray, grads: np.ndarray, slices: list[slice] | None = None
    ) -> None:
        """Apply one update to ``params`` in place from ``grads`` (flat vectors of one shape).

        ``slices``: the parts of the vectors to update (``model.trainable_slices()``: the
        layers not frozen), a list of ``slice`` objects; None updates everything."""
        if slices is not None and not (
            isinstance(slices, list | tuple) and all(isinstance(s, slice) for s in slices)
        ):
            raise ValueError(
                f"slices must be a list of slice objects (model.trainable_slices()) or None, "
                f"got {slices!r}"
            )
        if np.shape(grads) != np.shape(params):  # (a (1,) gradient would be broadcast)
            raise ValueError(
                f"grads has shape {np.shape(grads)}, params {np.shape(params)}: they must match"
            )
        self._ensure_state(params)
        self.iterations += 1
        self._apply(params, grads, slices)
        if self.flush_every and self.iterations % self.flush_every == 0:
            self.flush_subnormals()

    def _apply(self, params: np.ndarray, grads: np.ndarray, slices: list[slice] | None) -> None:
        """``_update`` on the whole vectors, or on each of ``slices`` (its state sliced alike)."""
        if slices is None or (len(slices) == 1 and slices[0] == slice(0, params.size)):
            self._update(params, grads, self.state)
        else:
            for s in slices:
                self._update(params[s], grads[s], {k: v[s] for k, v in self.state.items()})

    def flush_subnormals(self) -> None:
        """Zero every state entry too small to matter before it decays into the subnormal
        range (see the module docstring). Called every ``flush_every`` steps."""
        for arr in self.state.values():
            if arr.size and arr.dtype.kind == "f":
                work = self._scratch(arr)
                mask = getattr(self, "_mask", None)
                if mask is None or mask.size < arr.size:
                    mask = self._mask = np.empty(arr.size, dtype=bool)
                flush_tiny(arr, work, mask[: arr.size].reshape(arr.shape))

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _scratch(self, like: np.ndarray) -> np.ndarray:
        """A work array shaped like ``like``, reused from step to step (not part of the state):
        intermediate results go there with ``out=`` instead of into new arrays."""
        buf = getattr(self, "_work", None)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            buf = self._work = np.empty(like.size, dtype=like.dtype)
        return buf[: like.size].reshape(like.shape)

    def reset(self) -> None:
        """Forget all state (as if no step had been taken)."""
        self.state = {}
        self.iterations = 0
        self._owner = None

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"state.{k}": v.copy() for k, v in self.state.items()}
        out["iterations"] = self.iterations
        out["lr"] = self.lr
        out["type"] = type(self).__name__  # another optimizer's moments are refused on load
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("type", type(self).__name__)  # (absent from older checkpoints)
        if saved != type(self).__name__:
            raise ValueError(
                f"the saved state is {saved}'s, this optimizer is {type(self).__name__}: "
                "resume with the optimizer the run had"
            )
        self.iterations = int(state["iterations"])
        self.lr = float(state["lr"])
        self.state = {
            k.split(".", 1)[1]: np.array(v) for k, v in state.items() if k.startswith("state.")
        }
        self._owner = None  # the next step's parameters take it (sizes checked there)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the binding (a weak reference): the unpickled optimizer is bound
        by its first ``step``, to the unpickled model's parameters."""
        return {k: v for k, v in self.__dict__.items() if k != "_owner"}

    def __deepcopy__(self, memo: dict) -> Optimizer:
        """A copy whose state is not bound to the original's parameters: the first ``step``
        binds it to the parameters it is given (a copy of the model, say)."""
        new = copy.copy(self)
        memo[id(self)] = new
        for key, value in self.__dict__.items():  # (not setattr: an SGD pickled before its
            if key != "_owner":  # state_names became a property holds one in its __dict__)
                new.__dict__[key] = copy.deepcopy(value, memo)
        new._owner = None
        return new

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


__all__ = ["Optimizer", "axpy", "check_counts", "count_steps", "flush_tiny", "scal"]
