"""The Layer protocol.

A layer maps a batch ``x`` of shape ``(n_samples, in_features)`` to ``(n_samples, out_features)``.

* ``params`` and ``grads`` are dicts with the same keys and shapes (``"W"``, ``"b"``, ``"gamma"``,
  ``"beta"``, ``"alpha"``). Inside a :class:`~backprop.Sequential` they are views into the model's
  two flat buffers, so a layer must write its gradients *into* ``grads[key]`` (``out=`` or ``[...]
  =``) and never rebind them.
* ``forward(x, training=False)`` returns the output. Only when ``training`` is true does it cache,
  under named private attributes, exactly what ``backward`` needs; each call overwrites the cache.
* ``backward(grad_out)`` takes dL/dy ``(n_samples, out_features)``, overwrites ``grads`` with
  dL/dparams and returns dL/dx ``(n_samples, in_features)``. It never writes into ``grad_out``.
* ``trainable = False`` freezes the layer: its gradients are left at zero and optimizers skip it.
* ``buffers`` holds non-trained state saved with the model (BatchNorm's running statistics).

A parametric layer declares its parameters in ``param_specs()``: ``{key: (shape, kind)}`` where
``kind`` is ``"weight"`` (penalized by L1/L2 and max-norm) or ``"other"`` (biases, gains, slopes),
and fills them in ``reset_parameters(rng)``. Built on its own, a layer owns its arrays; a
``Sequential`` rebinds them into its flat buffers (see :meth:`Layer.bind`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_dtype(dtype: Any) -> np.dtype:
    """Validate a model dtype: float32 or float64 only."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class Layer:
    """Base class of every layer. Subclasses override ``forward`` and ``backward``.

    Attributes:
        params: dict of parameter arrays (empty for parameter-free layers).
        grads: dict of gradient arrays with the same keys and shapes as ``params``.
        buffers: dict of non-trained state arrays (saved, not optimized).
        trainable: when False the layer's parameters are frozen.
        in_features / out_features: feature counts when the layer fixes them, else None
            (parameter-free layers keep the width they receive).
    """

    in_features: int | None = None
    out_features: int | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.trainable: bool = True

    # -- parameters -------------------------------------------------------------------------
    def param_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``{key: (shape, kind)}``; kind is ``"weight"`` or ``"other"``. Empty by default."""
        return {}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Fill ``params`` in place with fresh initial values drawn from ``rng``."""

    def reset_buffers(self) -> None:
        """Reset non-trained state (running statistics) in place."""

    def _allocate(self, dtype: Any, rng: np.random.Generator) -> None:
        """Give a stand-alone layer its own arrays and initialize them."""
        dt = as_float_dtype(dtype)
        specs = self.param_specs()
        self.bind(
            {k: np.empty(shape, dtype=dt) for k, (shape, _) in specs.items()},
            {k: np.zeros(shape, dtype=dt) for k, (shape, _) in specs.items()},
        )
        self.reset_parameters(rng)

    def bind(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Adopt ``params``/``grads`` (views into a model's flat buffers) as this layer's storage."""
        self.params = params
        self.grads = grads
        dt = next(iter(params.values())).dtype if params else None
        for key, buf in self.buffers.items():
            if dt is not None and buf.dtype != dt:
                self.buffers[key] = buf.astype(dt)

    def _set_dtype(self, dtype: np.dtype) -> None:
        """Cast buffers of a parameter-free layer (called by Sequential)."""
        for key, buf in self.buffers.items():
            if buf.dtype != dtype:
                self.buffers[key] = buf.astype(dtype)

    # -- computation ------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward_params_only(self, grad_out: np.ndarray) -> None:
        """Fill ``grads`` without computing dL/dx (used for a model's first layer)."""
        self.backward(grad_out)

    def zero_grads(self) -> None:
        """Set every gradient to zero in place (frozen layers report zero gradients)."""
        for g in self.grads.values():
            g.fill(0)

    # -- helpers for subclasses ---------------------------------------------------------------
    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim != 2:
            raise ValueError(
                f"{type(self).__name__} expects a 2-D batch (n_samples, n_features), "
                f"got an array of shape {x.shape}"
            )
        if self.in_features is not None and x.shape[1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expected {self.in_features} features, got {x.shape[1]}"
            )

    def _missing_cache(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__}.backward called without a preceding forward(x, training=True)"
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON values (used by save/load)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
