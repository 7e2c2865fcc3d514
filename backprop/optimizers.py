"""First-order optimizers that update a model's flat parameter vector in place.

Protocol: ``optimizer.step(params, grads, slices=None)`` where ``params``/``grads`` are the model's
``flat_parameters``/``flat_gradients`` and ``slices`` the trainable runs of them (all when None).
State (velocity, moments) is one flat array per kind, the size of ``params``, created on the first
step, so each update is a handful of vectorized NumPy calls for the whole network. ``lr`` is a
plain attribute that schedules overwrite. ``state_dict()``/``load_state_dict()`` copy the state
out and back for checkpoints.

Update rules (``g`` gradient, ``p`` parameter, ``t`` the update count starting at 1)::

    SGD:       v = momentum * v - lr * g
               p += v                                   (classic momentum)
               p += momentum * v - lr * g               (nesterov=True)
    RMSprop:   s = rho * s + (1 - rho) * g^2
               p -= lr * g / (sqrt(s) + eps)
    Adagrad:   s += g^2
               p -= lr * g / (sqrt(s) + eps)
    Adam:      m = b1 * m + (1 - b1) * g
               v = b2 * v + (1 - b2) * g^2
               vmax = max(vmax, v)                      (amsgrad=True: use vmax for v below)
               p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    AdamW:     Adam, then p -= lr * weight_decay * p    (decoupled weight decay)

Adam's bias correction is folded into the step size as in Kingma & Ba (Algorithm 1, final
paragraph of section 2) and as scikit-learn does, so ``eps`` is added to the *uncorrected*
``sqrt(v)``.

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

import math
from typing import Any

import numpy as np

from . import checks
from .lbfgs import LBFGS


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
    docstring); ``work`` and ``mask`` are scratch arrays of ``a``'s shape (float and bool)."""
    bound = np.finfo(a.dtype).tiny * 2.0**24
    np.less(np.abs(a, out=work), bound, out=mask)
    np.copyto(a, 0, where=mask)


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
    flush_every: int = 16  # steps between flushes of near-subnormal state (0: never)

    def __init__(self, lr: float) -> None:
        self.lr = _check_number("lr", lr, 0.0, low_inclusive=False)
        self.iterations = 0  # number of steps taken
        self.state: dict[str, np.ndarray] = {}

    def _ensure_state(self, params: np.ndarray) -> None:
        for name in self.state_names:
            arr = self.state.get(name)
            if arr is None or arr.shape != params.shape or arr.dtype != params.dtype:
                self.state[name] = np.zeros_like(params)

    def step(
        self, params: np.ndarray, grads: np.ndarray, slices: list[slice] | None = None
    ) -> None:
        """Apply one update to ``params`` in place from ``grads``."""
        self._ensure_state(params)
        self.iterations += 1
        if slices is None or (len(slices) == 1 and slices[0] == slice(0, params.size)):
            self._update(params, grads, self.state)
        else:
            for s in slices:
                self._update(params[s], grads[s], {k: v[s] for k, v in self.state.items()})
        if self.flush_every and self.iterations % self.flush_every == 0:
            self.flush_subnormals()

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

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"state.{k}": v.copy() for k, v in self.state.items()}
        out["iterations"] = self.iterations
        out["lr"] = self.lr
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iterations = int(state["iterations"])
        self.lr = float(state["lr"])
        self.state = {
            k.split(".", 1)[1]: np.array(v) for k, v in state.items() if k.startswith("state.")
        }

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate.
    momentum : float, default 0.0
        Momentum coefficient in ``[0, 1]`` (0: plain SGD).
    nesterov : bool, default False
        Use Nesterov's look-ahead momentum.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.state_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, state):
        if not self.momentum:
            axpy(-self.lr, g, p)  # p -= lr * g
            return
        v = state["velocity"]
        scal(self.momentum, v)
        axpy(-self.lr, g, v)  # v = momentum * v - lr * g
        if self.nesterov:
            # Look ahead: p += momentum * v - lr * g.
            axpy(self.momentum, v, p)
            axpy(-self.lr, g, p)
        else:
            axpy(1.0, v, p)

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


def _step_by_root(
    p: np.ndarray, g: np.ndarray, s: np.ndarray, lr: float, eps: float, tmp: np.ndarray
) -> None:
    """``p -= lr * g / (sqrt(s) + eps)``: the step RMSprop and Adagrad share (``tmp``: work)."""
    np.sqrt(s, out=tmp)
    tmp += p.dtype.type(eps)
    np.divide(g, tmp, out=tmp)
    axpy(-lr, tmp, p)


class RMSprop(Optimizer):
    """Divide the step by a running root-mean-square of recent gradients.

    Parameters
    ----------
    lr : float, default 0.001
        Learning rate.
    rho : float, default 0.9
        Decay rate of the running mean of squared gradients.
    eps : float, default 1e-08
        Added to the root in the denominator.
    """

    state_names = ("square_avg",)

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.rho = _check_fraction("rho", rho)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)

    def _update(self, p, g, state):
        s, tmp = state["square_avg"], self._scratch(p)
        np.multiply(g, g, out=tmp)
        scal(self.rho, s)
        axpy(1.0 - self.rho, tmp, s)  # s = rho * s + (1 - rho) * g^2
        _step_by_root(p, g, s, self.lr, self.eps, tmp)

    def config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}


class Adagrad(Optimizer):
    """Per-parameter step sizes shrinking with the sum of squared gradients seen so far.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate.
    eps : float, default 1e-08
        Added to the root in the denominator.
    initial_accumulator : float, default 0.0
        Starting value of the sum of squared gradients.
    """

    state_names = ("sum_sq",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-8, initial_accumulator: float = 0.0):
        super().__init__(lr)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)
        self.initial_accumulator = _check_number("initial_accumulator", initial_accumulator)

    def _ensure_state(self, params):
        fresh = "sum_sq" not in self.state or self.state["sum_sq"].shape != params.shape
        super()._ensure_state(params)
        if fresh:
            self.state["sum_sq"].fill(self.initial_accumulator)

    def _update(self, p, g, state):
        s, tmp = state["sum_sq"], self._scratch(p)
        np.multiply(g, g, out=tmp)
        s += tmp  # s += g^2
        _step_by_root(p, g, s, self.lr, self.eps, tmp)

    def config(self):
        return {"lr": self.lr, "eps": self.eps, "initial_accumulator": self.initial_accumulator}


class Adam(Optimizer):
    """Adaptive moment estimation (Kingma & Ba), with the AMSGrad variant on request.

    Parameters
    ----------
    lr : float, default 0.001
        Learning rate.
    beta_1 : float, default 0.9
        Decay rate of the first-moment (mean) estimate.
    beta_2 : float, default 0.999
        Decay rate of the second-moment estimate.
    eps : float, default 1e-08
        Added to the root in the denominator.
    amsgrad : bool, default False
        Use the running maximum of the second moment (AMSGrad).
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        eps: float = 1e-8,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(lr)
        self.beta_1 = _check_fraction("beta_1", beta_1)
        self.beta_2 = _check_fraction("beta_2", beta_2)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)
        self.amsgrad = bool(amsgrad)
        self.state_names = ("m", "v", "v_max") if self.amsgrad else ("m", "v")

    def step(self, params, grads, slices=None):
        # The bias-corrected step size depends on t only: compute it once per step.
        t = self.iterations + 1
        self._step_size = self.lr * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        super().step(params, grads, slices)

    # The update is elementwise, so a large flat vector is updated block by block: a block of
    # p, g, m, v and the work array (5 x 128 KiB in float32) stays in the L2 cache through all
    # its passes instead of streaming every array from memory at each pass. Same results.
    block_size = 32768

    def _update(self, p, g, state):
        arrays = [state["m"], state["v"], state.get("v_max")]
        n, bs = p.size, self.block_size
        if p.ndim != 1 or n <= 2 * bs:
            self._update_block(p, g, *arrays)
            return
        for start in range(0, n, bs):
            sl = slice(start, start + bs)
            self._update_block(p[sl], g[sl], *[None if a is None else a[sl] for a in arrays])

    def _update_block(self, p, g, m, v, v_max):
        tmp = self._scratch(p)  # every intermediate goes here: no new arrays per step
        # First and second moment estimates.
        scal(self.beta_1, m)
        axpy(1.0 - self.beta_1, g, m)  # m = b1 * m + (1 - b1) * g
        np.multiply(g, g, out=tmp)
        scal(self.beta_2, v)
        axpy(1.0 - self.beta_2, tmp, v)  # v = b2 * v + (1 - b2) * g^2
        if self.amsgrad:
            np.maximum(v_max, v, out=v_max)
            v = v_max
        # Bias correction is folded into the step size.
        np.sqrt(v, out=tmp)
        tmp += p.dtype.type(self.eps)
        np.divide(m, tmp, out=tmp)
        axpy(-self._step_size, tmp, p)

    def config(self):
        return {
            "lr": self.lr,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "eps": self.eps,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p -= lr * weight_decay * p``
    after the Adam step, applied to every trainable parameter the optimizer is given.

    Parameters
    ----------
    lr : float, default 0.001
        Learning rate.
    beta_1 : float, default 0.9
        Decay rate of the first-moment (mean) estimate.
    beta_2 : float, default 0.999
        Decay rate of the second-moment estimate.
    eps : float, default 1e-08
        Added to the root in the denominator.
    weight_decay : float, default 0.01
        Decoupled decay per step, scaled by ``lr``.
    amsgrad : bool, default False
        Use the running maximum of the second moment (AMSGrad).
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(lr, beta_1, beta_2, eps, amsgrad)
        self.weight_decay = _check_number("weight_decay", weight_decay)

    def _update(self, p, g, state):
        # p -= lr * wd * p with p from before this step (the paper's Algorithm 2): scaling first
        # and then taking the Adam step gives exactly that, without a temporary array.
        scal(1.0 - self.lr * self.weight_decay, p)
        super()._update(p, g, state)

    def config(self):
        return {**super().config(), "weight_decay": self.weight_decay}


REGISTRY: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adam": Adam,
    "adamw": AdamW,
}


def get(identifier: str | Optimizer | LBFGS, **kwargs: Any) -> Optimizer | LBFGS:
    """An optimizer from a name (``"adam"``, ``"sgd"``, ..., ``"lbfgs"``) or an instance."""
    if isinstance(identifier, Optimizer | LBFGS):
        return identifier
    if identifier == "lbfgs":
        return LBFGS(**kwargs)
    if identifier not in REGISTRY:
        valid = ", ".join(sorted([*REGISTRY, "lbfgs"]))
        raise ValueError(f"unknown optimizer {identifier!r}; valid names: {valid}")
    return REGISTRY[identifier](**kwargs)
