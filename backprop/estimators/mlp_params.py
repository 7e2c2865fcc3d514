"""What BaseMLP accepts: its solvers and activations, the checks of every constructor parameter,
and the optimizer each solver means.

Parameters are checked in ``fit`` (scikit-learn's convention: ``__init__`` only stores them),
with scikit-learn's wording where scikit-learn has the parameter::

    solver          "lbfgs" -> LBFGS(tol, max_fun)     "sgd" -> SGD(lr, momentum, nesterov)
                    "adam" -> Adam     "adamw" -> AdamW(weight_decay)
                    "rmsprop" -> RMSprop     "adagrad" -> Adagrad       (lr = learning_rate_init)
    activation      a name of ACTIVATION_LAYERS, or a list of them, one per hidden layer
    dropout         a rate in [0, 1), or a list of them, one per hidden layer
    normalization   None, "batch" or "layer" (after each hidden Dense, before its activation)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layers as L
from ..callbacks import Callback
from ..lbfgs import LBFGS
from ..optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from ..schedules import ReduceLROnPlateau, Schedule
from ..schedules import get as get_schedule
from . import conventions as C
from .sklearn_private import InvalidParameterError

SOLVERS = ("lbfgs", "sgd", "adam", "rmsprop", "adagrad", "adamw")
STOCHASTIC = ("sgd", "adam", "rmsprop", "adagrad", "adamw")
ACTIVATION_LAYERS = {
    "identity": L.Identity,
    "logistic": L.Sigmoid,
    "tanh": L.Tanh,
    "relu": L.ReLU,
    "leaky_relu": L.LeakyReLU,
    "elu": L.ELU,
    "gelu": L.GELU,
    "silu": L.SiLU,
    "softplus": L.Softplus,
}


def check_params(est: Any) -> None:
    """Check every constructor parameter of ``est`` (a BaseMLP); a bad one raises ValueError
    naming the parameter and the value."""
    C.hidden_sizes(est)
    for name, low, high, closed in (
        ("alpha", 0, None, "left"),
        ("learning_rate_init", 0, None, "neither"),
        ("power_t", 0, None, "left"),
        ("tol", 0, None, "left"),
        ("momentum", 0, 1, "both"),
        ("validation_fraction", 0, 1, "left"),
        ("beta_1", 0, 1, "left"),
        ("beta_2", 0, 1, "left"),
        ("epsilon", 0, None, "neither"),
        ("l1", 0, None, "left"),
        ("sparsity", 0, 1, "left"),
        ("weight_decay", 0, None, "left"),
    ):
        C.check_real(est, name, low, high, closed)
    C.check_options(est, "solver", SOLVERS)
    C.check_options(est, "learning_rate", ("constant", "invscaling", "adaptive"))
    if est.batch_size != "auto":
        C.check_int(est, "batch_size", 1)
    C.check_int(est, "max_iter", 1)
    C.check_int(est, "n_iter_no_change", 1, allow_inf=True)
    C.check_int(est, "max_fun", 1)
    C.check_int(est, "pruning_epochs", 1)
    C.check_options(est, "l1_method", ("subgradient", "proximal"))
    for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
        C.check_bool(est, name)
    if not isinstance(est.verbose, bool | np.bool_) and not (
        C._is_int(est.verbose) and est.verbose >= 0
    ):
        C._fail(
            est, "verbose", "an int in the range [0, inf) or an instance of 'bool'", est.verbose
        )
    n_hidden = len(C.hidden_sizes(est))
    acts = C.per_layer(est, "activation", n_hidden)
    if isinstance(est.activation, str):
        acts = [est.activation]  # checked even without hidden layers, as in scikit-learn
    for act in acts:
        if not isinstance(act, str) or act not in ACTIVATION_LAYERS:
            raise InvalidParameterError(
                f"The 'activation' parameter of {type(est).__name__} must be a str among "
                f"{sorted(ACTIVATION_LAYERS)} (or a list of them, one per hidden layer). "
                f"Got {act!r} instead."
            )
    for rate in C.per_layer(est, "dropout", n_hidden):
        if not (C._is_real(rate) and 0 <= rate < 1):
            raise ValueError(f"dropout rates must be in [0, 1), got {est.dropout!r}")
    if est.normalization not in (None, "batch", "layer"):
        raise ValueError(
            f"normalization must be None, 'batch' or 'layer', got {est.normalization!r}"
        )
    if est.clip_norm is not None:
        C.check_real(est, "clip_norm", 0, None, "neither")
    if est.dtype not in (None, "float32", "float64", np.float32, np.float64):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {est.dtype!r}")
    if est.schedule is not None and not isinstance(
        est.schedule, Schedule | ReduceLROnPlateau | str
    ):
        raise ValueError(f"schedule must be a backprop Schedule or its name, got {est.schedule!r}")
    if isinstance(est.schedule, str):  # an unknown name, or one whose schedule needs arguments
        get_schedule(est.schedule)
    for cb in est.callbacks or []:
        if not isinstance(cb, Callback):
            raise ValueError(f"callbacks must be backprop Callback instances, got {cb!r}")


def make_optimizer(est: Any) -> Optimizer | LBFGS:
    """The optimizer of ``est.solver`` with the estimator's settings (a fresh one per fit)."""
    lr = float(est.learning_rate_init)
    if est.solver == "lbfgs":
        return LBFGS(tol=float(est.tol), max_fun=int(est.max_fun))
    if est.solver == "sgd":
        nesterov = bool(est.nesterovs_momentum) and est.momentum > 0
        opt = SGD(lr, momentum=min(float(est.momentum), 0.5), nesterov=nesterov)
        opt.momentum = float(est.momentum)  # scikit-learn allows momentum = 1
        return opt
    if est.solver == "adam":
        return Adam(lr, est.beta_1, est.beta_2, est.epsilon)
    if est.solver == "adamw":
        return AdamW(lr, est.beta_1, est.beta_2, est.epsilon, est.weight_decay)
    if est.solver == "rmsprop":
        return RMSprop(lr, eps=est.epsilon)
    return Adagrad(lr, eps=est.epsilon)
