"""Loss landscapes: the loss along a line and over a plane in parameter space.

**1-D** (Goodfellow, Vinyals & Saxe 2015): the loss along the straight line from the initial
weights ``theta_0`` to the trained weights ``theta_1``::

    L(alpha) = loss(theta_0 + alpha * (theta_1 - theta_0)),      alpha in [a, b] (0 -> init, 1 -> trained)

**2-D** (Li et al. 2018, "Visualizing the loss landscape of neural nets"): the loss around the
trained weights ``theta`` over two random directions ``d1``, ``d2``::

    L(alpha, beta) = loss(theta + alpha * d1 + beta * d2)

Random Gaussian directions are *filter-normalized*: each unit's slice of a direction is rescaled
to the norm of the same unit's weights, so that the picture does not depend on the scale of the
weights (a ReLU network's function is unchanged when one layer's weights are multiplied and the
next layer's divided by the same factor). A unit is one index of the weight's last axis: a
column of a Dense ``W`` ``(in, out)`` (the weights into one output unit), a filter of a Conv2D
``W`` ``(kh, kw, c_in, filters)``::

    d[..., j] <- d[..., j] / ||d[..., j]|| * ||theta[..., j]||

Parameters of kind "other" (biases, BatchNorm gains) get a zero direction, as Li et al. do.

The training trajectory ``theta_t`` is drawn on a plane by its least-squares coordinates::

    (alpha_t, beta_t) = argmin ||(theta_t - theta) - alpha d1 - beta d2||

Two random directions in a space of thousands of dimensions are almost orthogonal to the path
the weights took, so the path projects to a dot near the center. To see the path, take the plane
of its two principal directions instead (Li et al. 2018, section 7): the top two right singular
vectors of the matrix of ``theta_t - theta`` (:func:`pca_directions`), which hold most of the
path's squared distance from ``theta``. Not centered first (Li et al.'s code runs scikit-learn's
PCA, which centers): the plane goes through ``theta``, where the picture is drawn.

Memory: one copy of the model, whose flat parameter vector is overwritten for each grid point;
the data go through it in chunks of ``batch_size`` rows, in inference mode (no cache). Nothing
passed in is modified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import checks
from .callbacks import Callback
from .data import check_sample_weight, check_targets, check_X
from .regularization import penalty


def _loss_at(model, loss_fn, X, y, w, batch_size: int, l1: float, l2: float) -> float:
    """The (weighted) mean loss of ``model`` over all of X, chunk by chunk, plus the penalty
    (each chunk weighted by what the loss divides by: rows, weights or a sequence's real steps,
    as in :meth:`Trainer.evaluate`)."""
    checks.positive_int("batch_size", batch_size)  # -1 read no chunk: a NaN loss
    total = weight_total = 0.0
    for start in range(0, X.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        out = model.forward(X[sl])
        wb = None if w is None else w[sl]
        bw = loss_fn.total_weight(y[sl], wb, out.shape[0])
        if bw > 0:
            total += loss_fn.forward(out, y[sl], wb) * bw
            weight_total += bw
    loss = total / weight_total if weight_total else math.nan
    if l1 or l2:
        loss += penalty(model.flat_parameters[: model.n_weights], l1, l2)
    return float(loss)


def _need_weights(model: Any) -> None:
    if not model.built:  # no flat parameters to move along a direction
        raise ValueError(
            "the model is not built, so it has no weights to evaluate: train it first, or "
            "call model.build(input_shape)"
        )


def _prepare(model, X, y, sample_weight, l1: float, l2: float):
    _need_weights(model)
    checks.non_negative("l1", l1), checks.non_negative("l2", l2)  # as the Trainer refuses them
    X = check_X(X)
    y = check_targets(y, X.shape[0])
    w = check_sample_weight(sample_weight, X.shape[0])
    return model.copy(), X, y, w


def loss_along_line(
    model: Any,
    loss: Any,
    X: Any,
    y: Any,
    start: np.ndarray,
    end: np.ndarray | None = None,
    alphas: np.ndarray | None = None,
    sample_weight: Any = None,
    batch_size: int = 1024,
    l1: float = 0.0,
    l2: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The loss on the segment from flat parameters ``start`` to ``end``.

    Parameters
    ----------
    model : Sequential
        Gives the architecture (and ``end``'s default: its current weights). Not modified.
        Its buffers stay as they are at every ``alpha``: with BatchNorm, ``alpha = 0`` is the
        start's parameters with this model's running statistics, not the start model itself.
    loss : Loss
        The loss to evaluate.
    X, y : array-like
        The data, evaluated in chunks of ``batch_size`` rows.
    start, end : ndarray (n_parameters,)
        Flat parameter vectors (``model.flat_parameters`` layout); ``alpha = 0`` is ``start``.
    alphas : ndarray (k,), optional
        Where to evaluate; default 61 points on ``[-0.25, 1.25]``, step 0.025, with 0 and 1
        among them exactly (the two ends of the segment are what the profile is read at).
    sample_weight, batch_size, l1, l2
        As in :meth:`Trainer.evaluate`.

    Returns
    -------
    alphas : ndarray (k,)
    losses : ndarray (k,)
    """
    copy_, X, y, w = _prepare(model, X, y, sample_weight, l1, l2)
    start = np.asarray(start, dtype=copy_.dtype)
    end = copy_.flat_parameters.copy() if end is None else np.asarray(end, dtype=copy_.dtype)
    if start.shape != copy_.flat_parameters.shape or end.shape != start.shape:
        raise ValueError(
            f"start and end must have shape {copy_.flat_parameters.shape}, got {start.shape} "
            f"and {end.shape}"
        )
    alphas = np.arange(-10, 51) / 40 if alphas is None else np.asarray(alphas, float)
    direction = end - start
    losses = np.empty(len(alphas))
    for i, a in enumerate(alphas):
        if a == 1.0:  # start + (end - start) rounds (float32): the end itself, exactly
            copy_.flat_parameters[...] = end
        else:
            np.multiply(direction, copy_.dtype.type(a), out=copy_.flat_parameters)
            copy_.flat_parameters += start
        losses[i] = _loss_at(copy_, loss, X, y, w, batch_size, l1, l2)
    return alphas, losses


def filter_normalized_direction(model: Any, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian direction in ``model``'s flat layout, filter-normalized (see the module doc).

    Returns
    -------
    ndarray (n_parameters,)
        Zero on every parameter of kind "other".
    """
    _need_weights(model)
    d = np.zeros_like(model.flat_parameters)
    params = model.parameters()
    for name, sl in model.param_slices().items():
        if sl.stop > model.n_weights:  # "other" parameters come after every weight
            continue
        theta = params[name]
        cols = theta.reshape(-1, theta.shape[-1]) if theta.ndim > 1 else theta.reshape(-1, 1)
        r = rng.standard_normal(cols.shape).astype(d.dtype)
        r *= np.linalg.norm(cols, axis=0) / np.maximum(np.linalg.norm(r, axis=0), 1e-12)
        d[sl] = r.reshape(-1)
    return d


def loss_surface(
    model: Any,
    loss: Any,
    X: Any,
    y: Any,
    d1: np.ndarray,
    d2: np.ndarray,
    alphas: np.ndarray,
    betas: np.ndarray,
    sample_weight: Any = None,
    batch_size: int = 1024,
    l1: float = 0.0,
    l2: float = 0.0,
) -> np.ndarray:
    """``L(theta + a d1 + b d2)`` on the grid ``alphas x betas`` around the model's weights.

    Returns
    -------
    ndarray (len(betas), len(alphas))
        Row ``j`` is ``beta_j`` (the layout ``matplotlib.contour(alphas, betas, Z)`` takes).
    """
    copy_, X, y, w = _prepare(model, X, y, sample_weight, l1, l2)
    center = copy_.flat_parameters.copy()
    d1, d2 = np.asarray(d1, copy_.dtype), np.asarray(d2, copy_.dtype)
    if d1.shape != center.shape or d2.shape != center.shape:
        raise ValueError(
            f"d1 and d2 must have shape {center.shape} (the model's flat parameters), got "
            f"{d1.shape} and {d2.shape}"
        )
    Z = np.empty((len(betas), len(alphas)))
    for j, b in enumerate(betas):
        for i, a in enumerate(alphas):
            p = copy_.flat_parameters
            np.multiply(d1, copy_.dtype.type(a), out=p)
            p += copy_.dtype.type(b) * d2
            p += center
            Z[j, i] = _loss_at(copy_, loss, X, y, w, batch_size, l1, l2)
    return Z


def project_trajectory(
    trajectory: np.ndarray, center: np.ndarray, d1: np.ndarray, d2: np.ndarray
) -> np.ndarray:
    """Least-squares coordinates ``(k, 2)`` of the points ``trajectory`` ``(k, n_parameters)``
    on the plane through ``center`` spanned by ``d1`` and ``d2``."""
    center, d1, d2 = (np.asarray(a, np.float64) for a in (center, d1, d2))
    trajectory = np.asarray(trajectory, np.float64)
    if d1.ndim != 1 or not center.shape == d1.shape == d2.shape:
        raise ValueError(
            f"center, d1 and d2 must have shape {center.shape}, got {d1.shape} and {d2.shape}"
        )
    if trajectory.ndim != 2 or trajectory.shape[1] != d1.size:
        raise ValueError(f"trajectory must have shape (k, {d1.size}), got {trajectory.shape}")
    A = np.stack([d1, d2], axis=1)
    B = (trajectory - center).T
    coords, *_ = np.linalg.lstsq(A, B, rcond=None)
    return coords.T


def pca_directions(
    trajectory: np.ndarray, center: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two principal directions of the path ``trajectory`` ``(k, n_parameters)`` around
    ``center`` (unit vectors), and the share of ``sum_t ||theta_t - center||^2`` each holds
    (the matrix of ``theta_t - center`` is not centered: a plane through ``center``).

    Returns
    -------
    d1, d2 : ndarray (n_parameters,)
    explained : ndarray (2,)
    """
    D = np.asarray(trajectory, np.float64) - np.asarray(center, np.float64)
    if D.shape[0] < 2:
        raise ValueError(f"a path needs at least 2 points, got {D.shape[0]}")
    _, s, Vt = np.linalg.svd(D, full_matrices=False)
    explained = s**2 / max(float(np.sum(s**2)), 1e-300)
    if len(s) < 2:
        return Vt[0], np.zeros_like(Vt[0]), np.array([explained[0], 0.0])
    return Vt[0], Vt[1], explained[:2]


def sharpness(alphas: np.ndarray, losses: np.ndarray, radius: float) -> float:
    """The largest loss increase within ``|alpha| <= radius`` of ``alpha = 0`` along a 1-D
    profile centered on the minimum (a simple measure of how sharp the minimum is)."""
    checks.non_negative("radius", radius)
    alphas, losses = np.asarray(alphas), np.asarray(losses)
    if alphas.ndim != 1 or alphas.shape != losses.shape or not alphas.size:
        raise ValueError(
            f"alphas and losses must be a profile of the same length >= 1, got {alphas.shape} "
            f"and {losses.shape}"
        )
    center = losses[int(np.argmin(np.abs(alphas)))]
    return float(np.max(losses[np.abs(alphas) <= radius]) - center)


class TrajectoryRecorder(Callback):
    """Record the flat parameter vector at the start of training and after every ``every``
    epochs, for :func:`project_trajectory`. Memory: ``(epochs / every + 1) * n_parameters``
    values of the model's dtype.

    Attributes
    ----------
    snapshots : list of ndarray (n_parameters,)
    epochs : list of int
        The epoch after which each snapshot was taken (0: before training).

    Parameters
    ----------
    every : int, default 1
        Epochs between two snapshots.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = checks.positive_int("every", every)
        self.snapshots: list[np.ndarray] = []
        self.epochs: list[int] = []

    def on_train_begin(self, trainer: Any) -> None:
        if not self.snapshots:
            self.snapshots.append(trainer.model.flat_parameters.copy())
            self.epochs.append(0)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        if (epoch + 1) % self.every == 0:
            self.snapshots.append(trainer.model.flat_parameters.copy())
            self.epochs.append(epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        """The snapshots so far (saved in checkpoints: a resumed run keeps its trajectory)."""
        stacked = np.stack(self.snapshots) if self.snapshots else np.empty((0, 0))
        return {"snapshots": stacked, "epochs": list(self.epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        snapshots = [np.array(row) for row in state["snapshots"]]
        if len(snapshots) != len(state["epochs"]):
            raise ValueError(
                f"TrajectoryRecorder state holds {len(state['epochs'])} epochs for "
                f"{len(snapshots)} snapshots"
            )
        if snapshots:  # none: saved before the first fit; keep the start this fit recorded
            self.snapshots = snapshots
            self.epochs = [int(e) for e in state["epochs"]]


__all__ = [
    "TrajectoryRecorder",
    "filter_normalized_direction",
    "loss_along_line",
    "loss_surface",
    "pca_directions",
    "project_trajectory",
    "sharpness",
]
