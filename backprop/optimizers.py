"""First-order optimizers that update a model's flat parameter vector in place.

Protocol: ``optimizer.step(params, grads, slices=None)`` where ``params``/``grads`` are the model's
``flat_parameters``/``flat_gradients`` and ``slices`` the trainable runs of them (all when None).
State (velocity, moments) is one flat array per kind, the size of ``params``, created on the first
step, so each update is a handful of vectorized NumPy calls for the whole network. ``lr`` is a
plain attribute that schedules overwrite. ``state_dict()``/``load_state_dict()`` copy the state
out and back for checkpoints. The state belongs to the parameter vector it was built for: an
optimizer that has stepped one model refuses another (one instance passed to two Trainers would
give the second model the first one's moments); ``reset()`` starts afresh, and a
``copy.deepcopy`` carries the state over to a copy of the model. An optimizer without state (SGD
without momentum) carries nothing over and may step several models.

Update rules (``g`` gradient, ``p`` parameter)::

    SGD:       v = momentum * v - lr * g
               p += v                                   (classic momentum)
               p += momentum * v - lr * g               (nesterov=True)

RMSprop, Adagrad, Adam and AdamW: their rules, and Adam's bias correction, head
:mod:`backprop.adaptive`.

Where they live: the base class, the in-place kernels and the flushing of subnormal state in
:mod:`backprop.optimizer_base`; SGD here; RMSprop, Adagrad, Adam and AdamW in
:mod:`backprop.adaptive`. Every name is importable from this module.
"""

from __future__ import annotations

from typing import Any

from .adaptive import Adagrad, Adam, AdamW, RMSprop, _step_by_root  # noqa: F401
from .lbfgs import LBFGS
from .optimizer_base import (  # noqa: F401  (re-exported: the kernels were this module's first)
    Optimizer,
    _check_fraction,
    _check_number,
    axpy,
    flush_tiny,
    scal,
)


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

    @property
    def state_names(self) -> tuple[str, ...]:
        """The velocity, when there is momentum (read at each step: ``momentum`` may change)."""
        return ("velocity",) if self.momentum else ()

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
