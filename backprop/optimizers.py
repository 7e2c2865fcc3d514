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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import checks
from .lbfgs import LBFGS


def _check_number(name: str, value: Any, low: float = 0.0, low_inclusive: bool = True) -> float:
    return checks.real(name, value, low, None, "left" if low_inclusive else "neither")


def _check_fraction(name: str, value: Any) -> float:
    return checks.real(name, value, 0.0, 1.0, "left")


class Optimizer:
    """Base class. Subclasses list their state arrays in ``state_names`` and implement
    ``_update(p, g, state)`` on matching slices, in place."""

    state_names: tuple[str, ...] = ()

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
            return
        for s in slices:
            self._update(params[s], grads[s], {k: v[s] for k, v in self.state.items()})

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
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(lr)
        self.momentum = _check_fraction("momentum", momentum)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.state_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, state):
        lr = p.dtype.type(self.lr)
        if not self.momentum:
            p -= lr * g
            return
        mu = p.dtype.type(self.momentum)
        v = state["velocity"]
        lr_g = np.multiply(g, lr, out=self._scratch(p))
        v *= mu
        v -= lr_g  # v = momentum * v - lr * g
        if self.nesterov:
            # Look ahead: p += momentum * v - lr * g.
            p += mu * v
            p -= lr_g
        else:
            p += v

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


def _step_by_root(p: np.ndarray, g: np.ndarray, s: np.ndarray, lr: float, eps: float) -> None:
    """``p -= lr * g / (sqrt(s) + eps)``: the step RMSprop and Adagrad share."""
    denom = np.sqrt(s)
    denom += p.dtype.type(eps)
    p -= p.dtype.type(lr) * g / denom


class RMSprop(Optimizer):
    """Divide the step by a running root-mean-square of recent gradients."""

    state_names = ("square_avg",)

    def __init__(self, lr: float = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.rho = _check_fraction("rho", rho)
        self.eps = _check_number("eps", eps, 0.0, low_inclusive=False)

    def _update(self, p, g, state):
        s = state["square_avg"]
        rho = p.dtype.type(self.rho)
        s *= rho
        s += (1 - rho) * g * g  # s = rho * s + (1 - rho) * g^2
        _step_by_root(p, g, s, self.lr, self.eps)

    def config(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps}


class Adagrad(Optimizer):
    """Per-parameter step sizes shrinking with the sum of squared gradients seen so far."""

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
        s = state["sum_sq"]
        s += g * g  # s += g^2
        _step_by_root(p, g, s, self.lr, self.eps)

    def config(self):
        return {"lr": self.lr, "eps": self.eps, "initial_accumulator": self.initial_accumulator}


class Adam(Optimizer):
    """Adaptive moment estimation (Kingma & Ba), with the AMSGrad variant on request."""

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
    # twelve passes instead of streaming every array from memory twelve times. Same results.
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
        dt = p.dtype.type
        b1, b2 = dt(self.beta_1), dt(self.beta_2)
        tmp = self._scratch(p)  # every intermediate goes here: no new arrays per step
        # First and second moment estimates.
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp  # m = b1 * m + (1 - b1) * g
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp  # v = b2 * v + (1 - b2) * g^2
        if self.amsgrad:
            np.maximum(v_max, v, out=v_max)
            v = v_max
        # Bias correction is folded into the step size.
        np.sqrt(v, out=tmp)
        tmp += dt(self.eps)
        np.divide(m, tmp, out=tmp)
        tmp *= dt(self._step_size)
        p -= tmp

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
    after the Adam step, applied to every trainable parameter the optimizer is given."""

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
        p *= p.dtype.type(1.0 - self.lr * self.weight_decay)
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
