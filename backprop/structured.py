"""Structured pruning: remove whole hidden units and get a physically smaller Sequential.

A *hidden unit* is output column ``u`` of a Dense layer ``i`` that feeds another Dense layer
``j`` through layers acting on each unit separately (elementwise activations, Dropout,
BatchNorm, PReLU). Removing ``u`` deletes::

    W_i[:, u], b_i[u]                 Dense i loses an output   (in_i, out_i) -> (in_i, out_i - 1)
    gamma[u], beta[u], running_*[u]   BatchNorm in between
    alpha[u]                          PReLU in between
    W_j[u, :]                         Dense j loses an input    (out_i, out_j) -> (out_i - 1, out_j)

A Dense layer followed by LayerNorm or Softmax (which mix units) or by no other Dense (the
output layer) is never pruned. Units are ranked by

* ``"norm"``: ``||W_i[:, u]||_2``, the norm of the unit's incoming weights;
* ``"activation"``: ``mean_n |a_nu|``, the mean absolute activation reaching Dense ``j`` on data
  ``X`` (inference mode).

With data, a removed unit's mean activation ``m_u`` is folded into the next bias,
``b_j += m_u * W_j[u, :]`` (``fold=True``): exact for a unit whose activation is constant on
``X`` (dead ReLU units, whose constant is 0, and saturated units alike). Removing dead units
therefore leaves the predictions on ``X`` unchanged up to float rounding of the shorter sums.

Masks from :mod:`backprop.pruning` are carried over to the kept weights.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from . import pruning
from .layers import BatchNorm, Dense, Dropout, Layer, PReLU
from .layers.activations import Activation
from .layers.base import check_positive_int
from .model import Sequential
from .sparse import is_sparse

CRITERIA = ("norm", "activation")
PER_UNIT = (Activation, Dropout, BatchNorm, PReLU)


def hidden_groups(model: Sequential) -> dict[int, tuple[list[int], int]]:
    """``{i: (between, j)}`` for each prunable Dense ``i``: the per-unit layers after it and the
    Dense ``j`` they feed."""
    groups: dict[int, tuple[list[int], int]] = {}
    layers = model.layers
    for i, layer in enumerate(layers):
        if type(layer) is not Dense:
            continue
        between = []
        for k in range(i + 1, len(layers)):
            if type(layers[k]) is Dense:
                groups[i] = (between, k)
                break
            if not isinstance(layers[k], PER_UNIT):
                break
            between.append(k)
    return groups


def unit_counts(model: Sequential) -> dict[int, int]:
    """``{i: number of units}`` for each prunable Dense layer ``i``."""
    return {i: model.layers[i].out_features for i in hidden_groups(model)}


def activations(model: Sequential, X: Any, batch_size: int = 1024) -> dict[int, np.ndarray]:
    """``{i: (n_samples, units)}``: what each prunable layer's units send to the next Dense
    (for N-D input, every position counts as a sample: ``(n * ..., units)``)."""
    groups = hidden_groups(model)
    taps = {between[-1] if between else i: i for i, (between, _) in groups.items()}
    out: dict[int, list[np.ndarray]] = {i: [] for i in groups}
    batch_size = check_positive_int("batch_size", batch_size)
    X = X.tocsr() if is_sparse(X) else np.asarray(X)  # sparse rows stay sparse, as CSR (rows
    # are sliced below, which DIA and BSR cannot be; np.asarray would make a 0-D object array)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"activations need at least one sample, got X of shape {X.shape}")
    for start in range(0, X.shape[0], batch_size):
        for k, _, h in model.layer_outputs(X[start : start + batch_size]):
            if k in taps:
                out[taps[k]].append(h)
    # units are the last axis: (n, ..., units) -> (n * ..., units)
    return {
        i: np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts]) for i, parts in out.items()
    }


def unit_scores(model: Sequential, criterion: str = "norm", X: Any = None) -> dict[int, np.ndarray]:
    """``{i: (units,)}`` importance of each unit (higher = keep), see the module docstring."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if criterion == "norm":
        return {
            i: np.sqrt(np.sum(model.layers[i].params["W"].astype(np.float64) ** 2, axis=0))
            for i in hidden_groups(model)
        }
    if X is None:
        raise ValueError("criterion='activation' needs data X")
    return {
        i: np.mean(np.abs(a), axis=0, dtype=np.float64) for i, a in activations(model, X).items()
    }


def dead_units(model: Sequential, X: Any) -> dict[int, np.ndarray]:
    """``{i: unit indices}`` whose activation is exactly zero on every row of ``X``."""
    return {i: np.flatnonzero(np.all(a == 0, axis=0)) for i, a in activations(model, X).items()}


def prune_units(
    model: Sequential,
    keep: dict[int, int] | float,
    criterion: str = "norm",
    X: Any = None,
    fold: bool = True,
) -> Sequential:
    """A smaller copy of ``model`` keeping the best-ranked units.

    Args:
        keep: ``{i: units to keep}`` per prunable Dense ``i`` (see :func:`unit_counts`), or a
            fraction in (0, 1] of each layer's units (at least one is kept).
        criterion: "norm" or "activation" (needs ``X``).
        X: data for the activation ranking and for folding (``fold``).
        fold: fold removed units' mean activation on ``X`` into the next bias.
    """
    counts = unit_counts(model)
    if isinstance(keep, float | int) and not isinstance(keep, bool):
        if not 0 < keep <= 1:
            raise ValueError(f"keep as a fraction must be in (0, 1], got {keep!r}")
        keep = {i: max(1, int(round(keep * n))) for i, n in counts.items()}
    for i, k in keep.items():
        if i not in counts:
            raise ValueError(f"layer {i} has no prunable units; prunable layers: {sorted(counts)}")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= counts[i]:
            raise ValueError(f"layer {i}: keep must be an integer in [1, {counts[i]}], got {k!r}")
    scores = unit_scores(model, criterion, X)
    remove = {}
    for i, k in keep.items():
        order = np.argsort(-scores[i], kind="stable")
        remove[i] = np.sort(order[k:])
    return remove_units(model, remove, X=X if fold else None)


def remove_units(model: Sequential, remove: dict[int, Any], X: Any = None) -> Sequential:
    """A copy of ``model`` without the units ``remove = {i: indices}``; with ``X``, the removed
    units' mean activations on ``X`` are folded into the next layer's bias."""
    groups = hidden_groups(model)
    checked = {}
    for i, units in remove.items():
        if i not in groups:
            raise ValueError(f"layer {i} has no prunable units; prunable layers: {sorted(groups)}")
        given = np.asarray(units)
        if given.size and (given.ndim != 1 or given.dtype.kind not in "iu"):
            hint = " (for a boolean mask of units, pass np.flatnonzero(mask))"
            raise ValueError(
                f"layer {i}: units must be a 1-D list of integer unit indices, got {given.dtype} "
                f"{given.tolist()!r}{hint if given.dtype == bool else ''}"
            )
        units = checked[i] = given.astype(np.int64).reshape(-1)
        n = model.layers[i].out_features
        if units.size and (units.min() < 0 or units.max() >= n):
            raise ValueError(f"layer {i} has {n} units; cannot remove units {units.tolist()}")
        if np.unique(units).size >= n:
            raise ValueError(f"layer {i}: removing all {n} units would disconnect the network")
    means = None
    if X is not None:
        means = {i: np.mean(a, axis=0) for i, a in activations(model, X).items()}
    mask = _mask_by_name(model)
    keep_idx: dict[int, np.ndarray] = {}  # layer -> kept output units (for Dense i and between)
    keep_in: dict[int, np.ndarray] = {}  # Dense j -> kept input rows
    bias_shift: dict[int, np.ndarray] = {}
    for i, units in checked.items():
        between, j = groups[i]
        kept = np.setdiff1d(np.arange(model.layers[i].out_features), units)
        for k in [i, *between]:
            keep_idx[k] = kept
        keep_in[j] = kept
        if means is not None:
            gone = np.setdiff1d(np.arange(model.layers[i].out_features), kept)
            shift = means[i][gone].astype(np.float64) @ model.layers[j].params["W"][gone]
            bias_shift[j] = shift
    layers = [
        _shrunk_layer(layer, keep_in.get(k), keep_idx.get(k))
        for k, layer in enumerate(model.layers)
    ]
    new = Sequential(layers, input_shape=model.in_shape, dtype=model.dtype, seed=0)
    state = {}
    for name, value in model.state_dict().items():
        k, key = name.split(".", 1)
        state[name] = _slice(int(k), key, value, keep_in, keep_idx, model)
    for j, shift in bias_shift.items():
        shift = shift[keep_idx[j]] if j in keep_idx else shift  # j may lose units itself
        state[f"{j}.b"] = (state[f"{j}.b"] + shift).astype(model.dtype)
    new.load_state_dict(state)
    # the dropout stream goes on from the model's, as with model.copy()
    new.rng.bit_generator.state = copy.deepcopy(model.rng.bit_generator.state)
    new.seed = model.seed
    if mask is not None:
        parts = [
            _slice(int(n.split(".", 1)[0]), n.split(".", 1)[1], m, keep_in, keep_idx, model).ravel()
            for n, m in mask.items()
        ]
        names = list(pruning.weight_slices(new))
        assert names == list(mask), (names, list(mask))
        pruning.set_mask(new, np.concatenate(parts))
    return new


def _mask_by_name(model: Sequential) -> dict[str, np.ndarray] | None:
    if model.weight_mask is None:
        return None
    params = model.parameters()
    return {
        name: model.weight_mask[s].reshape(params[name].shape)
        for name, s in pruning.weight_slices(model).items()
    }


def _slice(k, key, value, keep_in, keep_idx, model) -> np.ndarray:
    """Parameter or buffer ``key`` of layer ``k`` restricted to the kept rows/columns."""
    layer = model.layers[k]
    if type(layer) is Dense and key == "W":
        if k in keep_in:
            value = value[keep_in[k], :]
        if k in keep_idx:
            value = value[:, keep_idx[k]]
        return value
    if k in keep_idx and value.ndim == 1:  # Dense b, BatchNorm gamma/beta/running_*, alpha
        return value[keep_idx[k]]
    return value


def _shrunk_layer(layer: Layer, rows: np.ndarray | None, units: np.ndarray | None) -> Layer:
    """A fresh, unbuilt layer of the same type and configuration whose sizes match the kept
    inputs/units (sizes the layer infers from its input are left to the build)."""
    cfg = dict(layer.config())
    if type(layer) is Dense:
        if rows is not None and "in_features" in cfg:
            cfg["in_features"] = int(rows.size)
        if units is not None:
            cfg["out_features"] = int(units.size)
    elif units is not None and "n_features" in cfg:  # BatchNorm, PReLU
        cfg["n_features"] = int(units.size)
    new = type(layer)(**cfg)
    new.trainable = layer.trainable
    return new


__all__ = [
    "activations",
    "dead_units",
    "hidden_groups",
    "prune_units",
    "remove_units",
    "unit_counts",
    "unit_scores",
]
