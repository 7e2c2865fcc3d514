"""The adaptive optimizers: per-parameter step sizes from running gradient statistics.

Update rules (``g`` gradient, ``p`` parameter, ``t`` the update count starting at 1)::

    RMSprop:   s = rho * s + (1 - rho) * g^2
               p -= lr * g / (sqrt(s) + eps)
    Adagrad:   s += g^2
               p -= lr * g / (sqrt(s) + eps)
    Adam:      m = b1 * m + (1 - b1) * g
               v = b2 * v + (1 - b2) * g^2
               vmax = max(vmax, v)                      (amsgrad=True: use vmax for v below)
               p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    AdamW:     Adam, then p -= lr * weight_decay * p    (decoupled weight decay)

Adam's ``t`` is each entry's own count of updates, as torch.optim.Adam keeps one per parameter:
an entry that was frozen (left out of ``slices``) for some steps has moments that started later,
and the global count would make its first steps after unfreezing 3 to 6 times too large. The
counts are run-length coded (``[start, stop, t]`` runs, a single run unless something was
frozen) and saved as ``step_counts``.

Adam's bias correction is folded into the step size as in Kingma & Ba (Algorithm 1, final
paragraph of section 2) and as scikit-learn does, so ``eps`` is added to the *uncorrected*
``sqrt(v)``. The protocol, the in-place kernels and the flushing of near-subnormal state are
:mod:`backprop.optimizer_base`'s; the public names are imported from :mod:`backprop.optimizers`.
"""

from __future__ import annotations

import math

import numpy as np

from .optimizer_base import (
    Optimizer,
    _check_fraction,
    _check_number,
    axpy,
    check_counts,
    count_steps,
    scal,
)


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

    def _fresh_state(self, name, params):
        return np.full_like(params, self.initial_accumulator)

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

        self._counts = None

    # Steps taken by each entry, run-length coded (see optimizer_base.count_steps): an entry
    # frozen for some steps has moments that started later, so its bias correction counts its
    # own steps, as torch.optim.Adam's per-parameter step does. None: every entry has taken
    # ``iterations`` steps (also the class default, for an Adam pickled before the counts).
    _counts: list[list[int]] | None = None

    def _apply(self, params, grads, slices):
        n = params.size
        if self._counts is None:
            self._counts = [[0, n, self.iterations - 1]]  # (iterations counts this step)
        if self._counts[-1][1] != n:
            raise ValueError(
                f"the step counts cover {self._counts[-1][1]} entries, the parameters {n}: "
                "they were saved for another model; call reset() to start afresh"
            )
        runs = [slice(0, n)] if slices is None else [slice(*s.indices(n)) for s in slices]
        if any(s.step not in (None, 1) for s in runs):
            raise ValueError(f"slices must be contiguous runs (step 1), got {slices!r}")
        runs = [slice(s.start, s.stop) for s in runs]
        self._counts, stepped = count_steps(self._counts, runs)
        for run, t in stepped:
            # The bias-corrected step size depends on t only: once per run of equal counts.
            self._step_size = self.lr * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
            super()._apply(params, grads, [run])

    def reset(self):
        super().reset()
        self._counts = None

    def state_dict(self):
        out = super().state_dict()
        if self._counts is not None:
            out["step_counts"] = [list(run) for run in self._counts]
        return out

    def load_state_dict(self, state):
        super().load_state_dict(state)
        counts = state.get("step_counts")  # (absent from older checkpoints: all equal)
        self._counts = None if counts is None else check_counts(counts, self.iterations)

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


__all__ = ["Adagrad", "Adam", "AdamW", "RMSprop"]
