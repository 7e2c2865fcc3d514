"""Compact model files for pruned models (the hook :mod:`backprop.io` calls).

A Sequential with a mask (:mod:`backprop.pruning`) is saved without its dense weight arrays.
Instead of ``0.W``, ``2.W``, ... the file holds::

    pruning/mask     uint8 (ceil(n_weights / 8),)   np.packbits of the mask, weights in
                                                     flat order, padding bits zero
    pruning/values   model dtype (n_kept,)          the kept weights, in flat order

and the config gains ``"pruning": {"weights": ["0.W", "2.W", ...], "n_kept": n_kept}``. Biases,
gains and buffers stay dense. At 5% of weights kept that is about 5% + 1/32 of the weights'
dense bytes (float32). Saving refuses a model whose pruned weights are not all zero (set by
hand after the mask): the file would silently drop them. Loading checks, before reading any data, that the declared arrays have
exactly these shapes (as :func:`backprop.io.load` does for dense files), then that the weight
names are the architecture's, the padding bits are zero and the mask keeps ``n_kept`` weights.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import pruning

MASK = "pruning/mask"
VALUES = "pruning/values"


def compact_payload(model: Any, config: dict[str, Any], arrays: dict[str, np.ndarray]):
    """``(config, arrays)`` of a dense payload rewritten compactly (see the module docstring)."""
    mask = model.weight_mask
    if mask is None:
        return config, arrays
    revived = np.count_nonzero(model.flat_parameters[: model.n_weights][~mask])
    if revived:  # (they are set by hand: training, pruning and loading keep them zero)
        raise ValueError(
            f"{revived} pruned weights are not zero (set after the mask), and the compact file "
            "would drop them: zero them with bp.pruning.enforce(model), or remove the mask "
            "with bp.pruning.set_mask(model, None) to save every weight"
        )
    names = list(pruning.weight_slices(model))
    arrays = {k: v for k, v in arrays.items() if k not in names}
    arrays[MASK] = np.packbits(mask)
    arrays[VALUES] = model.flat_parameters[: model.n_weights][mask].copy()
    config = {**config, "pruning": {"weights": names, "n_kept": int(np.count_nonzero(mask))}}
    return config, arrays


def expected_arrays(config: dict[str, Any], dense: dict[str, tuple[str, tuple[int, ...]]]):
    """The arrays a compact file must declare, from those of the dense architecture."""
    spec = config.get("pruning")
    if spec is None:
        return dense
    if not isinstance(spec, dict) or set(spec) != {"weights", "n_kept"}:
        raise ValueError(f"'pruning' must be a table with weights and n_kept, got {spec!r}")
    names, n_kept = spec["weights"], spec["n_kept"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n in dense for n in names):
        raise ValueError(f"pruning weights {names!r} are not parameters of the architecture")
    if len(set(names)) != len(names):
        raise ValueError(f"pruning weights {names!r} repeat a name")
    n_weights = sum(math.prod(dense[n][1]) for n in names)
    if isinstance(n_kept, bool) or not isinstance(n_kept, int) or not 0 <= n_kept <= n_weights:
        raise ValueError(f"pruning n_kept must be an integer in [0, {n_weights}], got {n_kept!r}")
    dtype = dense[names[0]][0] if names else "<f4"
    out = {k: v for k, v in dense.items() if k not in names}
    out[MASK] = ("|u1", ((n_weights + 7) // 8,))
    out[VALUES] = (dtype, (n_kept,))
    return out


def expand(model: Any, config: dict[str, Any], arrays: dict[str, np.ndarray]):
    """``(dense state dict, mask)`` for ``model`` (built from ``config``) from a compact payload;
    ``mask`` is None for a dense file."""
    spec = config.get("pruning")
    if spec is None:
        return arrays, None
    names = list(pruning.weight_slices(model))
    if spec["weights"] != names:
        raise ValueError(f"pruning weights {spec['weights']} differ from the model's {names}")
    bits = arrays[MASK]
    mask = np.unpackbits(bits, count=model.n_weights).astype(bool)
    if np.any(np.unpackbits(bits)[model.n_weights :]):
        raise ValueError("the pruning mask has bits set past the last weight")
    if np.count_nonzero(mask) != spec["n_kept"]:
        raise ValueError(
            f"the pruning mask keeps {np.count_nonzero(mask)} weights, the header says "
            f"{spec['n_kept']}"
        )
    flat = np.zeros(model.n_weights, dtype=model.dtype)
    flat[mask] = arrays[VALUES]
    state = {k: v for k, v in arrays.items() if k not in (MASK, VALUES)}
    params = model.parameters()
    for name, s in pruning.weight_slices(model).items():
        state[name] = flat[s].reshape(params[name].shape)
    return state, mask


__all__ = ["compact_payload", "expand", "expected_arrays"]
