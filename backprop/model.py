"""Sequential: a stack of layers that owns their parameters in two flat buffers.

Storage. Every parameter of every layer is a view into one contiguous array
``flat_parameters`` (and its gradient into ``flat_gradients``), laid out weights first::

    [ 0.W | 2.W | 4.W | ... | 0.b | 2.b | 3.gamma | 3.beta | 4.b ]
      <----- n_weights ----->

so that an optimizer step is a few vectorized calls over the whole network, the global gradient
norm is one dot product, L-BFGS hands SciPy the flat vector directly, and "weights only" (for
L1/L2 and max-norm) is the slice ``flat_parameters[:n_weights]``.

Randomness. ``seed`` (int, Generator or None) is split into two independent streams: one draws
the initial weights, the other the dropout masks. Turning dropout on therefore never changes the
initial weights. A ``Sequential`` (re-)initializes every layer it is given from its own seed.

Shapes: ``forward`` maps ``(n_samples, n_features_in)`` to ``(n_samples, n_outputs)``; ``backward``
takes dL/dy of the output's shape and returns dL/dX of the input's shape.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import initializers
from .layers import BatchNorm, Dense, Dropout, Layer, LayerNorm
from .layers.base import as_float_dtype

SeedLike = int | np.random.Generator | None


def spawn_generators(seed: SeedLike, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one seed (an int, a Generator, or None for OS entropy)."""
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(n))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def as_2d_float(X: Any, dtype: np.dtype, name: str = "X") -> np.ndarray:
    """``X`` as a 2-D array of ``dtype``; copies only if the dtype differs. Clear errors otherwise."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    return X if X.dtype == dtype else X.astype(dtype)


class Sequential:
    """Layers applied in order, with their parameters in one flat buffer.

    Args:
        layers: the layers, in order.
        dtype: "float32" (default) or "float64": the dtype of every parameter and activation.
        seed: int, ``np.random.Generator`` or None: initial weights and dropout masks.

    Raises:
        ValueError: when adjacent layers disagree on a feature count (the message names both).
    """

    def __init__(self, layers: Iterable[Layer], dtype: Any = "float32", seed: SeedLike = None):
        self.layers: list[Layer] = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is {layer!r}, not a backprop Layer")
        self.dtype = as_float_dtype(dtype)
        self.seed = seed if isinstance(seed, int) else None
        init_rng, self.rng = spawn_generators(seed, 2)
        # Pruning (issue 15, backprop.pruning): None, or a bool (n_weights,) mask; False = pruned.
        self.weight_mask: np.ndarray | None = None
        self._check_sizes()
        self._build()
        self.reset_parameters(init_rng)

    # -- construction -------------------------------------------------------------------------
    def _check_sizes(self) -> None:
        width, source = None, None
        for i, layer in enumerate(self.layers):
            if layer.in_features is not None and width is not None and layer.in_features != width:
                raise ValueError(
                    f"layer {i} ({type(layer).__name__}) expects {layer.in_features} features but "
                    f"layer {source} ({type(self.layers[source]).__name__}) outputs {width}"
                )
            if layer.out_features is not None:
                width, source = layer.out_features, i

    def _build(self) -> None:
        specs = [
            (i, key, tuple(shape), kind)
            for i, layer in enumerate(self.layers)
            for key, (shape, kind) in layer.param_specs().items()
        ]
        # Weights first, so that "every weight" is the single slice [:n_weights].
        specs.sort(key=lambda s: s[3] != "weight")
        sizes = [int(np.prod(s[2])) for s in specs]
        self.n_weights = sum(n for n, s in zip(sizes, specs, strict=True) if s[3] == "weight")
        total = sum(sizes)
        self.flat_parameters = np.zeros(total, dtype=self.dtype)
        self.flat_gradients = np.zeros(total, dtype=self.dtype)
        self._offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for (i, key, _, _), size in zip(specs, sizes, strict=True):
            self._offsets[f"{i}.{key}"] = (start, start + size)
            start += size
        self._bind_views()
        for i, layer in enumerate(self.layers):
            layer._set_dtype(self.dtype)
            if isinstance(layer, Dropout):
                layer.rng = self.rng
            if isinstance(layer, Dense):
                layer.auto_init = initializers.default_for_activation(self._activation_after(i))

    def _bind_views(self) -> None:
        """Make every layer's ``params``/``grads`` views into the two flat buffers."""
        for i, layer in enumerate(self.layers):
            specs = layer.param_specs()
            if not specs:
                continue
            params, grads = {}, {}
            for key, (shape, _) in specs.items():
                a, b = self._offsets[f"{i}.{key}"]
                params[key] = self.flat_parameters[a:b].reshape(shape)
                grads[key] = self.flat_gradients[a:b].reshape(shape)
            layer.bind(params, grads)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickle and deepcopy store each layer's parameter views as separate arrays; bind them
        # to the flat buffers again (whose values are the same) so that updates reach them.
        self.__dict__.update(state)
        self._bind_views()

    def _activation_after(self, i: int) -> str | None:
        for layer in self.layers[i + 1 :]:
            if isinstance(layer, Dropout | BatchNorm | LayerNorm):
                continue
            return None if isinstance(layer, Dense) else type(layer).__name__
        return None

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Re-draw every layer's parameters from ``rng`` and reset running statistics."""
        for layer in self.layers:
            layer.reset_parameters(rng)
            layer.reset_buffers()
        self.flat_gradients.fill(0)

    # -- computation --------------------------------------------------------------------------
    def forward(self, X: Any, training: bool = False) -> np.ndarray:
        """Output ``(n_samples, n_outputs)`` for input ``X`` ``(n_samples, n_features_in)``.

        ``X`` is cast to the model's dtype (a copy only when its dtype differs).
        """
        out = as_2d_float(X, self.dtype)
        for layer in self.layers:
            out = layer.forward(out, training=training)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Back-propagate dL/dy through every layer, filling each layer's ``grads``.

        Returns dL/dX, or None when ``need_input_grad`` is False (which skips the first layer's
        input-gradient product, the trainer's default).
        """
        g = grad_out
        for layer in reversed(self.layers[1:]):
            g = layer.backward(g)
        if need_input_grad:
            return self.layers[0].backward(g)
        self.layers[0].backward_params_only(g)
        return None

    def predict(self, X: Any, batch_size: int = 1024) -> np.ndarray:
        """Inference in chunks of ``batch_size`` rows, so that only one chunk's activations are
        alive at a time; returns ``(n_samples, n_outputs)`` in the model's dtype. ``X`` may be a
        memmap or another array-like with row slicing: it is read one chunk at a time."""
        if not hasattr(X, "shape"):
            X = np.asarray(X)
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n = X.shape[0]
        if n <= batch_size:
            return self.forward(X)
        first = self.forward(X[:batch_size])
        out = np.empty((n, first.shape[1]), dtype=first.dtype)
        out[:batch_size] = first
        for start in range(batch_size, n, batch_size):
            out[start : start + batch_size] = self.forward(X[start : start + batch_size])
        return out

    __call__ = forward

    # -- parameters by name -------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Live views of every parameter, keyed ``"index.key"`` (``"0.W"``, ``"3.gamma"``)."""
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()
        }

    def gradients(self) -> dict[str, np.ndarray]:
        """Live views of every gradient, with the same keys and shapes as :meth:`parameters`."""
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()
        }

    def buffers(self) -> dict[str, np.ndarray]:
        """Live views of non-trained state (BatchNorm running statistics), keyed like params."""
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()
        }

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed ``"index.key"``."""
        state = {k: v.copy() for k, v in self.parameters().items()}
        state.update({k: v.copy() for k, v in self.buffers().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Write ``state`` into the model in place. Keys and shapes must match exactly; nothing is
        written unless every entry is valid."""
        targets = {**self.parameters(), **self.buffers()}
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for key, target in targets.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"{key}: expected shape {target.shape}, got {value.shape}")
            if value.dtype.kind not in "fiu":
                raise ValueError(f"{key}: expected real numbers, got dtype {value.dtype}")
        for key, target in targets.items():
            target[...] = state[key]

    @property
    def n_parameters(self) -> int:
        return int(self.flat_parameters.size)

    @property
    def n_features_in(self) -> int | None:
        return next((la.in_features for la in self.layers if la.in_features is not None), None)

    @property
    def n_outputs(self) -> int | None:
        return next(
            (la.out_features for la in reversed(self.layers) if la.out_features is not None), None
        )

    def param_slices(self) -> dict[str, slice]:
        """Where each named parameter lives in ``flat_parameters``."""
        return {k: slice(a, b) for k, (a, b) in self._offsets.items()}

    def trainable_slices(self) -> list[slice]:
        """Contiguous runs of ``flat_parameters`` that belong to trainable layers (merged)."""
        runs = sorted(
            self._offsets[f"{i}.{k}"]
            for i, layer in enumerate(self.layers)
            if layer.trainable
            for k in layer.params
        )
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        return [slice(a, b) for a, b in merged]

    def zero_grad(self) -> None:
        self.flat_gradients.fill(0)

    # -- copies, description -------------------------------------------------------------------
    def copy(self, dtype: Any = None) -> Sequential:
        """An independent model with the same layers, weights and buffers (optionally re-typed)."""
        layers = copy.deepcopy(self.layers)
        new = Sequential(layers, dtype=self.dtype if dtype is None else dtype, seed=0)
        new.load_state_dict(self.state_dict())
        new.rng.bit_generator.state = copy.deepcopy(self.rng.bit_generator.state)
        new.seed = self.seed
        new.weight_mask = None if self.weight_mask is None else self.weight_mask.copy()
        return new

    def sparsity(self) -> dict[str, float]:
        """Fraction of exactly-zero weights per weight parameter (``"0.W"``...) and ``"total"``
        (see :mod:`backprop.pruning`)."""
        from .pruning import sparsity

        return sparsity(self)

    def summary(self) -> str:
        """Per-layer output width, parameter count and trainability, as a text table."""
        rows = [("#", "layer", "output", "params", "trainable")]
        width = self.n_features_in
        total = trainable = 0
        for i, layer in enumerate(self.layers):
            if layer.out_features is not None:
                width = layer.out_features
            n = sum(p.size for p in layer.params.values())
            total += n
            trainable += n if layer.trainable else 0
            rows.append(
                (
                    str(i),
                    repr(layer),
                    f"(None, {width})",
                    str(n),
                    "yes" if layer.trainable else "no",
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {total} ({trainable} trainable), dtype {self.dtype}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], dtype='{self.dtype}')"
