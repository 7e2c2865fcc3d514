"""Finite-difference gradient checking, as a public feature.

For every trainable parameter entry ``p`` (and every input entry) the analytic gradient ``a`` from
``backward`` is compared with the central difference ::

    n = (L(p + eps) - L(p - eps)) / (2 eps)

computed in float64 on a float64 copy of the model (the caller's model is never touched). ``L`` is
the loss plus the L1/L2 penalty, with dropout masks held fixed (the dropout generator is rewound
before every evaluation) and BatchNorm in training mode. The relative error of an entry is ::

    rel = |a - n| / max(|a| + |n|, atol / rtol)

(gradients smaller than ``atol / rtol`` are measured against that floor, so that round-off on
a zero gradient does not read as a 100% error), and an entry agrees when ``rel <= rtol``, that
is when ``|a - n| <= max(rtol * (|a| + |n|), atol)``. The report gives, per parameter, the
largest relative and absolute errors.

Kinks. ReLU at exactly 0 and tied maxima in max pooling have no derivative, and they are common
at real data: a zero bias (the default) on a black image patch gives a pre-activation of exactly
0, and a black region gives windows of equal values. There the central difference averages two
slopes and no analytic gradient can match it. An entry that disagrees is looked at once more:
with ``L0 = L(p)``, the one-sided slopes ``d+ = (L(p + h) - L0) / h`` and
``d- = (L0 - L(p - h)) / h`` at ``h = eps`` and ``h = eps / 10``. If the central difference at
``eps / 10`` agrees, the entry passes (a kink lay within ``eps`` of ``p``, not at it). If the
slopes differ by a jump that does not shrink with the step (a smooth function's shrinks tenfold),
``p`` is a kink: the loss has no derivative there, so no finite difference can judge the entry
(with several kinks along one entry, as an input pixel feeding several tied windows has, the
analytic gradient need not even lie between ``d-`` and ``d+``). Such an entry is counted in
``n_kinks``, left out of the errors and of the verdict, and the report says how many there were;
every disagreement where the loss is smooth still fails, and a check whose every entry sat at a
kink is not a pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import checks
from .losses import Loss
from .model import Sequential
from .regularization import add_penalty_gradient, penalty
from .sparse import is_sparse


@dataclass
class GradientCheck:
    """One parameter's (or the input's) comparison.

    Attributes
    ----------
    name : str
        The parameter's name ("0.W", ...) or "input".
    shape : tuple[int, ...]
        Its shape.
    n_checked : int
        Entries compared.
    max_rel_error : float
        Largest relative error among them.
    max_abs_error : float
        Largest absolute error among them.
    passed : bool
        Every entry within the tolerance.
    n_kinks : int, default 0
        Entries at a kink (see the module docstring), where the loss has no derivative: left
        out of the errors and the verdict.
    """

    name: str
    shape: tuple[int, ...]
    n_checked: int
    max_rel_error: float
    max_abs_error: float
    passed: bool
    n_kinks: int = 0


@dataclass
class GradientReport:
    """Per-parameter results; ``passed`` is True only when at least one entry was checked and
    every gradient agrees (a check of nothing is never a pass).

    Attributes
    ----------
    checks : list[GradientCheck], default <factory>
        One :class:`GradientCheck` per parameter (and the input).
    rtol : float, default 1e-05
        Relative tolerance used.
    atol : float, default 1e-08
        Absolute tolerance used.
    """

    checks: list[GradientCheck] = field(default_factory=list)
    rtol: float = 1e-5
    atol: float = 1e-8

    @property
    def passed(self) -> bool:
        smooth = sum(c.n_checked - c.n_kinks for c in self.checks)
        return smooth > 0 and all(c.passed for c in self.checks)

    def __getitem__(self, name: str) -> GradientCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        kinks = sum(c.n_kinks for c in self.checks)
        rows = [("parameter", "shape", "checked", "max rel err", "max abs err", "ok")]
        for c in self.checks:
            rows.append(
                (
                    c.name,
                    str(c.shape),
                    str(c.n_checked),
                    f"{c.max_rel_error:.2e}",
                    f"{c.max_abs_error:.2e}",
                    "pass" if c.passed else "FAIL",
                )
            )
            if kinks:
                rows[-1] += (str(c.n_kinks),)
        if kinks:
            rows[0] += ("at kinks",)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(s.ljust(w) for s, w in zip(r, widths, strict=True)) for r in rows]
        verdict = "all gradients agree" if self.passed else "SOME GRADIENTS DISAGREE"
        if not any(c.n_checked for c in self.checks):
            verdict = "NOTHING WAS CHECKED (no trainable parameter, and check_input=False)"
        elif all(c.passed and c.n_checked == c.n_kinks for c in self.checks):
            verdict = "NOTHING COULD BE JUDGED (every entry sat at a kink)"
        lines.append(f"{verdict} (rtol={self.rtol:g}, atol={self.atol:g})")
        if kinks:
            lines.append(
                f"{kinks} of the entries sit at a kink (ReLU at exactly 0, tied maxima), where the "
                "loss has no derivative to compare with: left out"
            )
        return "\n".join(lines)


def check_gradients(
    model: Sequential,
    loss: Loss,
    X: Any,
    y: Any,
    sample_weight: Any = None,
    l1: float = 0.0,
    l2: float = 0.0,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    max_entries: int | None = None,
    check_input: bool = True,
    seed: int = 0,
) -> GradientReport:
    """Compare every analytic gradient of ``model`` + ``loss`` (+ penalties) with central
    finite differences in float64.

    Parameters
    ----------
    model : Sequential
        the model to check (copied to float64; not modified).
    loss : Loss
        the loss; ``X``, ``y``, ``sample_weight``: one batch.
    l1, l2 : float, default 0.0
        weight penalties, as the trainer applies them.
    eps : float, default 1e-06
        finite-difference step.
    rtol, atol : float, default 1e-05 and 1e-08
        agreement tolerance per entry (see the module docstring): an entry agrees
        when ``|a - n| <= max(rtol * (|a| + |n|), atol)``.
    max_entries : int | None, default None
        check at most this many randomly chosen entries per parameter (all if None).
    check_input : bool, default True
        also check dL/dX (never for a scipy.sparse ``X``).
    seed : int, default 0
        chooses the entries when ``max_entries`` is set.

    Returns
    -------
    GradientReport
        a :class:`GradientReport`; ``print`` it for a table.

    """
    if max_entries is not None and (
        isinstance(max_entries, bool)
        or not isinstance(max_entries, int | np.integer)
        or max_entries < 1
    ):
        raise ValueError(
            f"max_entries must be a positive integer or None (all entries), got {max_entries!r}"
        )
    eps, rtol = checks.positive("eps", eps), checks.positive("rtol", rtol)  # both divide
    atol, l1, l2 = (checks.non_negative(k, v) for k, v in (("atol", atol), ("l1", l1), ("l2", l2)))
    if np.ndim(X) < 1 or np.shape(X)[0] < 1:
        raise ValueError(f"X must hold at least one sample, got shape {np.shape(X)}")
    if not model.built:
        model.build(X.shape[1:] if is_sparse(X) else np.shape(X)[1:])
    m = model.copy(dtype="float64")
    if is_sparse(X):  # a sparse input has no dL/dX to check (see backprop.sparse)
        X64, check_input = X.tocsr().astype(np.float64), False
    else:
        integer = m.integer_input and np.asarray(X).dtype.kind in "iu"  # token ids stay integers
        X64 = np.asarray(X) if integer else np.array(X, dtype=np.float64)
        check_input = check_input and not integer
    rng_state = copy.deepcopy(m.rng.bit_generator.state)
    saved_buffers = {k: v.copy() for k, v in m.buffers().items()}
    buffers = m.buffers()
    w = m.flat_parameters[: m.n_weights]
    choose = np.random.default_rng(seed)

    def objective(inputs: np.ndarray) -> float:
        m.rng.bit_generator.state = copy.deepcopy(rng_state)
        for k, v in saved_buffers.items():
            buffers[k][...] = v
        out = m.forward(inputs, training=True)
        return loss.forward(out, y, sample_weight) + penalty(w, l1, l2)

    # Analytic gradients, all in one backward pass.
    start = objective(X64)
    dX = m.backward(loss.backward(), need_input_grad=check_input)
    add_penalty_gradient(w, m.flat_gradients[: m.n_weights], l1, l2)
    analytic = m.flat_gradients.copy()
    if not (np.isfinite(start) and np.isfinite(analytic).all()):  # else NaN "disagreements"
        raise ValueError(
            f"the loss is {start} on this batch (gradient norm {np.linalg.norm(analytic):g}): "
            "X or y holds NaN or infinity, or the weights overflow; nothing to compare"
        )

    def compare(name: str, values: np.ndarray, grad: np.ndarray, inputs: np.ndarray) -> None:
        flat_v, flat_g = values.reshape(-1), grad.reshape(-1)
        idx = np.arange(flat_v.size)
        if max_entries is not None and flat_v.size > max_entries:
            idx = choose.choice(flat_v.size, size=max_entries, replace=False)
        rel = np.zeros(idx.size)
        abs_err = np.zeros(idx.size)
        ok, n_kinks, f0 = True, 0, None

        def slopes(i: int, orig: float, h: float) -> tuple[float, float]:
            """The one-sided slopes ``(d-, d+)`` of the loss along entry ``i`` at step ``h``."""
            flat_v[i] = orig + h
            plus = objective(inputs)
            flat_v[i] = orig - h
            minus = objective(inputs)
            flat_v[i] = orig
            return (f0 - minus) / h, (plus - f0) / h

        for j, i in enumerate(idx):
            orig = flat_v[i]
            flat_v[i] = orig + eps
            plus = objective(inputs)
            flat_v[i] = orig - eps
            minus = objective(inputs)
            flat_v[i] = orig
            num = (plus - minus) / (2 * eps)
            a = flat_g[i]
            abs_err[j] = abs(a - num)
            rel[j] = abs_err[j] / max(abs(a) + abs(num), floor)
            if rel[j] <= rtol:
                continue
            f0 = objective(inputs) if f0 is None else f0
            (lo, hi), (lo10, hi10) = slopes(i, orig, eps), slopes(i, orig, eps / 10)
            noise = 1e-14 * max(1.0, abs(f0)) / (eps / 10)  # round-off in a slope at eps / 10
            num10 = (lo10 + hi10) / 2  # a kink within eps of p, but not at p, is gone at eps / 10
            if abs(a - num10) <= max(rtol * (abs(a) + abs(num10)), atol):
                abs_err[j] = abs(a - num10)
                rel[j] = abs_err[j] / max(abs(a) + abs(num10), floor)
            elif abs(hi10 - lo10) > max(0.5 * abs(hi - lo), 10 * noise):  # a kink at p
                n_kinks += 1  # no derivative, so no reference to compare with: not judged
                rel[j] = abs_err[j] = 0.0
            else:
                ok = False
        report.checks.append(
            GradientCheck(
                name,
                tuple(values.shape),
                int(idx.size),
                float(rel.max(initial=0.0)),
                float(abs_err.max(initial=0.0)),
                ok,
                n_kinks,
            )
        )

    floor = atol / rtol
    report = GradientReport(rtol=rtol, atol=atol)
    slices = m.param_slices()
    params = m.parameters()
    for name in m.trainable_parameter_names():
        value = params[name]
        compare(name, value, analytic[slices[name]].reshape(value.shape), X64)
    if check_input:
        compare("input", X64, dX, X64)
    return report
