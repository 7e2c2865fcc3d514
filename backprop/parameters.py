"""FlatParameters: how a :class:`~backprop.Sequential` keeps its layers' parameters.

Every parameter of every layer is a view into one contiguous array ``flat_parameters`` (and
its gradient into ``flat_gradients``), laid out weights first::

    [ 0.W | 2.W | 4.0.W | ... | 0.b | 2.b | 3.gamma | 3.beta | 4.0.b ]
      <------- n_weights ------->

so that an optimizer step is a few vectorized calls over the whole network, the global gradient
norm is one dot product, L-BFGS hands SciPy the flat vector directly, and "weights only" (for
L1/L2 and pruning masks) is the slice ``flat_parameters[:n_weights]``. Names are ``"index.key"``;
a container's children add their own index (``"4.0.W"``). ``_offsets[name] = (start, stop)``
is where each named parameter lives; ``param_slices()`` gives them as slices.

The mixin needs ``self.layers`` (built layers), ``self.dtype`` and ``self.rng`` (the dropout
stream each layer gets); ``Sequential.build`` calls :meth:`FlatParameters._allocate` once the
layers know their shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers.base import Layer
from .layers.containers import named_layers
from .layers.dense import set_auto_init


class _Owner:
    """A model's mark on the layers it holds the state of (see :meth:`FlatParameters._claim`)."""


def _holds_state(layer: Layer) -> bool:
    """True for a layer whose parameters, buffers or random stream a model hands it (containers
    hand theirs down to their children, which are checked instead)."""
    if layer.children():
        return False
    uses_rng = type(layer).set_rng is not Layer.set_rng
    return bool(layer.param_specs() or layer.buffer_specs() or layer.buffers or uses_rng)


class FlatParameters:
    """Mixin of :class:`~backprop.Sequential`: the flat buffers and the parameters by name (see
    the module docstring)."""

    def _allocate(self) -> None:
        specs = [
            (f"{i}.{key}", tuple(shape), kind)
            for i, layer in enumerate(self.layers)
            for key, (shape, kind) in layer.param_specs().items()
        ]
        # Weights first, so that "every weight" is the single slice [:n_weights].
        specs.sort(key=lambda s: s[2] != "weight")
        sizes = [int(np.prod(s[1])) for s in specs]
        self.n_weights = sum(n for n, s in zip(sizes, specs, strict=True) if s[2] == "weight")
        self.flat_parameters = np.zeros(sum(sizes), dtype=self.dtype)
        self.flat_gradients = np.zeros(sum(sizes), dtype=self.dtype)
        self._offsets = {}
        start = 0
        for (name, _, _), size in zip(specs, sizes, strict=True):
            self._offsets[name] = (start, start + size)
            start += size
        self._bind_views()
        for layer in self.layers:
            layer._allocate_buffers(self.dtype)
            layer.set_rng(self.rng)
            # no container above it here, whichever one it was taken from (see containers.py)
            layer.frozen_by_container = False
        set_auto_init(self.layers)
        self._claim()

    def _claim(self) -> None:
        """Mark the layers this model now holds the state of. A second Sequential built from the
        same layer objects re-binds them to its own buffers and stream: this model would go on
        computing with the other one's weights while its optimizer updated its own buffer, which
        no layer reads any more. :meth:`_check_owned` then refuses to use it."""
        self._owner = _Owner()
        self._owned = [(n, lay) for n, lay, _ in named_layers(self.layers) if _holds_state(lay)]
        for _, layer in self._owned:
            layer._owner = self._owner

    def _check_owned(self) -> None:
        """Raise when another model (or ``layer.initialize``) has taken one of this model's
        layers (see :meth:`_claim`)."""
        for name, layer in getattr(self, "_owned", ()):
            if getattr(layer, "_owner", None) is not self._owner:
                raise RuntimeError(
                    f"layer {name} ({type(layer).__name__}) was taken by another Sequential "
                    "built from the same layer object (or by layer.initialize): it computes "
                    "with that one's weights now, not this model's. Give each model its own "
                    "layers: Sequential(copy.deepcopy(layers)), or model.copy()"
                )

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

    # -- parameters by name -------------------------------------------------------------------
    def _named(self, what: str) -> dict[str, np.ndarray]:
        self._check_owned()
        return {
            f"{i}.{k}": v
            for i, layer in enumerate(self.layers)
            for k, v in getattr(layer, what).items()
        }

    def parameters(self) -> dict[str, np.ndarray]:
        """Live views of every parameter, keyed ``"index.key"`` (``"0.W"``, ``"3.gamma"``)."""
        return self._named("params")

    def gradients(self) -> dict[str, np.ndarray]:
        """Live views of every gradient, with the same keys and shapes as :meth:`parameters`."""
        return self._named("grads")

    def buffers(self) -> dict[str, np.ndarray]:
        """Live views of non-trained state (BatchNorm running statistics), keyed like params."""
        return self._named("buffers")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed ``"index.key"``."""
        state = {k: v.copy() for k, v in self.parameters().items()}
        state.update({k: v.copy() for k, v in self.buffers().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Write ``state`` into the model in place, cast to the model's dtype. Keys and shapes
        must match exactly, a finite value must stay finite in the model's dtype (no float64
        1e300 becoming inf in a float32 model), and buffers respect their layer's
        ``buffer_bounds`` (no negative variance, no scale <= 0); nothing is written unless every
        entry is valid."""
        targets = self._check_state_dict(state)
        for key, target in targets.items():
            target[...] = state[key]

    def _check_state_dict(self, state: dict[str, Any]) -> dict[str, np.ndarray]:
        """Raise what :meth:`load_state_dict` refuses in ``state``; returns the live arrays."""
        targets = {**self.parameters(), **self.buffers()}
        if not self.built and targets:
            # layers built elsewhere (e.g. copied from another model) in a model that is not:
            # its build at the first forward would re-draw every weight written here
            raise ValueError(
                "load_state_dict on a model that is not built: its first forward would "
                "re-initialize the values written; give Sequential(..., input_shape=...) first"
            )
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
            if value.dtype.kind == "f" and value.dtype.itemsize > target.dtype.itemsize:
                _check_fits(key, value, target.dtype)
        buffers = self.buffers()  # bounds hold for the values as cast (1e-50 is 0 in float32)
        self._check_buffer_bounds(
            {k: np.asarray(state[k], dtype=v.dtype) for k, v in buffers.items()}
        )
        return targets

    def _check_buffer_bounds(self, buffers: dict[str, Any]) -> None:
        """Refuse values of ``buffers`` (keyed like :meth:`buffers`) outside their layer's
        ``buffer_bounds`` (a negative variance, a scale <= 0), naming the array."""
        for name, layer, _ in named_layers(self.layers):
            for k, (low, strict) in layer.buffer_bounds().items():
                if f"{name}.{k}" not in buffers:
                    continue
                value = np.asarray(buffers[f"{name}.{k}"])
                bad = np.flatnonzero(~(value > low if strict else value >= low))
                if bad.size:
                    raise ValueError(
                        f"{name}.{k} ({type(layer).__name__} {k}) must be "
                        f"{'>' if strict else '>='} {low:g}, got {float(value.flat[bad[0]]):g} at "
                        f"index {bad[0]} ({bad.size} of {value.size} values)"
                    )

    @property
    def n_parameters(self) -> int:
        return int(self.flat_parameters.size)

    @property
    def n_features_in(self) -> int | None:
        """The input width for tabular ``(n, n_features)`` input; None otherwise or unbuilt."""
        if self.in_shape is not None:
            return self.in_shape[0] if len(self.in_shape) == 1 else None
        return self.layers[0].in_features

    @property
    def n_outputs(self) -> int | None:
        """The width of the output's last axis (None until built)."""
        return None if self.out_shape is None else self.out_shape[-1]

    def param_slices(self) -> dict[str, slice]:
        """Where each named parameter lives in ``flat_parameters``."""
        return {k: slice(a, b) for k, (a, b) in self._offsets.items()}

    def trainable_parameter_names(self) -> list[str]:
        """Names of the parameters of trainable layers (inside trainable containers)."""
        return [
            f"{name}.{key}"
            for name, layer, trainable in named_layers(self.layers)
            if trainable and not layer.children()
            for key in layer.params
        ]

    def trainable_slices(self) -> list[slice]:
        """Contiguous runs of ``flat_parameters`` that belong to trainable layers (merged)."""
        runs = sorted(self._offsets[name] for name in self.trainable_parameter_names())
        merged: list[list[int]] = []
        for a, b in runs:
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        return [slice(a, b) for a, b in merged]

    def zero_grad(self) -> None:
        self.flat_gradients.fill(0)


def _check_fits(key: str, value: np.ndarray, dtype: np.dtype) -> None:
    """Refuse finite values of ``value`` that ``dtype`` can only hold as infinity."""
    limit = float(np.finfo(dtype).max)
    over = np.flatnonzero(np.isfinite(value) & (np.abs(value) > limit))
    if over.size:
        raise ValueError(
            f"{key} holds {float(value.flat[over[0]]):g} at index {over[0]} ({over.size} of "
            f"{value.size} values), beyond the range of the model's {dtype} (largest "
            f"{limit:.4g}): it would become infinite"
        )
