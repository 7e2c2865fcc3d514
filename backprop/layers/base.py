"""The Layer protocol.

A layer maps a batch ``x`` of shape ``(n, *in_shape)`` to ``(n, *out_shape)``; ``in_shape`` is the
per-sample shape (no batch axis). Its life has three steps:

1. ``__init__`` stores the constructor arguments only; no input shape is needed.
2. ``build(in_shape) -> out_shape`` validates the input shape (a ValueError names the layer and
   the shape), stores ``in_shape`` and ``out_shape`` and returns ``out_shape``; then ``built`` is
   True and ``param_specs()`` is valid. Building again with the same shape does nothing, with
   another shape is an error. The default build keeps the shape (``out_shape = in_shape``).
3. Storage: a :class:`~backprop.Sequential` makes ``params``/``grads`` views into its two flat
   buffers (:meth:`Layer.bind`) and calls ``reset_parameters(rng)``; a stand-alone layer gets its
   own arrays from ``initialize(in_shape, dtype, seed)``.

Then:

* ``params`` and ``grads`` are dicts with the same keys and shapes (``"W"``, ``"b"``, ``"gamma"``,
  ...). A layer writes its gradients *into* ``grads[key]`` (``out=`` or ``[...] =``), never rebinds.
* ``forward(x, training=False)`` returns the output. Only when ``training`` is true does it cache,
  under named private attributes, exactly what ``backward`` needs; each call overwrites the cache.
* ``backward(grad_out)`` takes dL/dy ``(n, *out_shape)``, overwrites ``grads`` with dL/dparams
  and returns dL/dx ``(n, *in_shape)``. It never writes into ``grad_out``. It releases the cache
  once used (``x, self._x = self._x, None``; ``backward_params_only`` too), so that a trained
  layer keeps no batch; a second backward without a new forward then raises a RuntimeError.
* ``trainable = False`` freezes the layer: its gradients are left at zero and optimizers skip it.
* ``buffers`` holds non-trained state saved with the model (BatchNorm's running statistics),
  declared by ``buffer_specs()`` and reset by ``reset_buffers()``.
* ``config()`` returns JSON-able constructor arguments: ``type(layer)(**layer.config())`` is an
  equivalent unbuilt layer. With :func:`register_layer` this is all files and configs need.

A parametric layer declares its parameters in ``param_specs()``: ``{key: (shape, kind)}`` where
``kind`` is ``"weight"`` (penalized by L1/L2, pruned by masks) or ``"other"``
(biases, gains, slopes), and fills them in ``reset_parameters(rng)``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import checks

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
Shape = tuple[int, ...]


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


def as_shape(shape: Any, what: str = "shape") -> Shape:
    """``shape`` as a tuple of positive ints with at least one axis (an int is a 1-tuple)."""
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of positive integers, got {shape!r}") from None
    if not dims or any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1 for d in dims
    ):
        raise ValueError(f"{what} must be a non-empty tuple of positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


_ALLOCATE = [True]


def _with_descendants(layer: Layer) -> Iterator[Layer]:
    yield layer
    for child in layer.children():
        yield from _with_descendants(child)


@contextlib.contextmanager
def unallocated() -> Iterator[None]:
    """Construct layers without their stand-alone arrays (to read their shapes only: a file's
    declared sizes are checked before anything of that size is allocated)."""
    _ALLOCATE.append(False)
    try:
        yield
    finally:
        _ALLOCATE.pop()


def allocation_enabled() -> bool:
    return _ALLOCATE[-1]


def _guard_build(build):
    """Wrap a ``build`` method with the protocol's bookkeeping: validate the shape, make a second
    build with the same shape a no-op and one with another shape an error, and record
    ``in_shape``/``out_shape``. Every subclass's ``build`` is wrapped (see ``__init_subclass__``)."""

    @functools.wraps(build)
    def guarded(self: Layer, in_shape: Any) -> Shape:
        in_shape = as_shape(in_shape, f"{type(self).__name__} input shape")
        if self.out_shape is not None:
            if in_shape != self.in_shape:
                raise ValueError(
                    f"{type(self).__name__} was built for input shape {self.in_shape}; "
                    f"it cannot be built again for {in_shape}"
                )
            return self.out_shape
        try:
            out = as_shape(build(self, in_shape), f"{type(self).__name__} output shape")
        except BaseException:
            self.in_shape = self.out_shape = None
            raise
        self.in_shape, self.out_shape = in_shape, out
        return out

    guarded.__guarded__ = True  # type: ignore[attr-defined]
    return guarded


class Layer:
    """Base class of every layer. Subclasses override ``forward`` and ``backward``, and ``build``
    when the output shape differs from the input shape or parameters depend on it.

    Attributes
    ----------
    params : dict
        Parameter arrays (empty for parameter-free layers).
    grads : dict
        Gradient arrays with the same keys and shapes as ``params``.
    buffers : dict
        Non-trained state arrays (saved, not optimized).
    trainable : bool
        When False the layer's parameters are frozen.
    in_shape, out_shape : tuple of int or None
        Per-sample shapes, None until ``build``.
    in_features, out_features : int or None
        Last-axis widths when the layer fixes them, else None.
    integer_input : bool
        Class attribute; True for layers that take integer input (Embedding), so that models
        and trainers do not cast X to float for them.
    """

    in_features: int | None = None
    out_features: int | None = None
    in_shape: Shape | None = None  # class defaults: a subclass that skips __init__ still works
    out_shape: Shape | None = None
    integer_input: bool = False
    #: Dense's "auto" initializer looks through these layers for the activation that follows.
    init_transparent: bool = False
    #: The constructor argument a config may fill with the task's number of outputs (the last
    #: layer that has one gets it), e.g. ``"out_features"`` for Dense.
    output_size_argument: str | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.trainable: bool = True
        self.in_shape: Shape | None = None
        self.out_shape: Shape | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "__guarded__", False):
            cls.build = _guard_build(build)

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.out_shape is not None

    def build(self, in_shape: Shape) -> Shape:
        """Learn the input shape ``in_shape`` (no batch axis) and return the output shape."""
        self._check_last_axis(in_shape)
        return in_shape

    def default_in_shape(self) -> Shape | None:
        """The input shape this layer implies on its own (``(in_features,)`` when fixed), which a
        ``Sequential`` uses when no ``input_shape`` is given; None when the layer cannot tell."""
        return None if self.in_features is None else (self.in_features,)

    def _check_last_axis(self, in_shape: Shape) -> None:
        if self.in_features is not None and in_shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expected {self.in_features} features, got "
                f"{in_shape[-1]} (input shape {in_shape})"
            )

    def initialize(self, in_shape: Any, dtype: Any = "float64", seed: Any = 0) -> Shape:
        """Stand-alone use: build for ``in_shape``, allocate own arrays of ``dtype`` and draw the
        initial parameters from ``seed``; returns the output shape."""
        out = self.build(in_shape)
        self._allocate(dtype, checks.generator("seed", seed))
        return out

    # -- parameters -----------------------------------------------------------------------------
    def param_specs(self) -> dict[str, tuple[Shape, str]]:
        """``{key: (shape, kind)}``; kind is ``"weight"`` or ``"other"``. Empty by default."""
        return {}

    def buffer_specs(self) -> dict[str, Shape]:
        """``{key: shape}`` of the non-trained state arrays. Empty by default."""
        return {}

    def buffer_bounds(self) -> dict[str, tuple[float, bool]]:
        """``{key: (low, strict)}``: buffers whose values can only be ``> low`` (strict) or
        ``>= low`` (a variance, a scale); ``load_state_dict`` refuses others. Empty by default."""
        return {}

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Fill ``params`` in place with fresh initial values drawn from ``rng``."""

    def reset_buffers(self) -> None:
        """Reset non-trained state (running statistics) in place."""

    def set_rng(self, rng: np.random.Generator) -> None:
        """Receive the model's stream for randomness during training (dropout masks)."""

    def children(self) -> list[Layer]:
        """Sub-layers of a container (empty for an ordinary layer)."""
        return []

    def _allocate(self, dtype: Any, rng: np.random.Generator) -> None:
        """Give a stand-alone layer its own arrays and initialize them (a model that held this
        layer's state no longer does: it refuses to run, see ``FlatParameters._claim``)."""
        for layer in _with_descendants(self):
            layer._owner = None
        self.frozen_by_container = False  # on its own now, in no container (see containers.py)
        dt = as_float_dtype(dtype)
        specs = self.param_specs()
        self.bind(
            {k: np.empty(shape, dtype=dt) for k, (shape, _) in specs.items()},
            {k: np.zeros(shape, dtype=dt) for k, (shape, _) in specs.items()},
        )
        self._allocate_buffers(dt)
        self.reset_parameters(rng)

    def _allocate_buffers(self, dtype: np.dtype) -> None:
        """Fresh buffers of ``dtype`` from ``buffer_specs()``, reset. A layer that declares no
        specs but made its own ``buffers`` keeps them, cast to ``dtype``."""
        specs = self.buffer_specs()
        if not specs:
            self._set_dtype(np.dtype(dtype))
            return
        self.buffers = {k: np.zeros(shape, dtype=dtype) for k, shape in specs.items()}
        self.reset_buffers()

    def bind(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Adopt ``params``/``grads`` (views into a model's flat buffers) as this layer's storage."""
        self.params = params
        self.grads = grads
        dt = next(iter(params.values())).dtype if params else None
        for key, buf in self.buffers.items():
            if dt is not None and buf.dtype != dt:
                self.buffers[key] = buf.astype(dt)

    def _set_dtype(self, dtype: np.dtype) -> None:
        """Cast buffers (called by Sequential)."""
        for key, buf in self.buffers.items():
            if buf.dtype != dtype:
                self.buffers[key] = buf.astype(dtype)

    # -- computation ----------------------------------------------------------------------------
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

    # -- helpers for subclasses -----------------------------------------------------------------
    def _check_input(self, x: np.ndarray) -> None:
        """A batch ``(n, *in_shape)``: at least 2-D, and the last axis as the layer expects."""
        if x.ndim < 2:
            raise ValueError(
                f"{type(self).__name__} expects a batch of at least 2-D (n_samples, ...), "
                f"got an array of shape {x.shape}"
            )
        if self.in_features is not None and x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expected {self.in_features} features, got {x.shape[-1]}"
            )

    def _built_for(self, x: np.ndarray) -> None:
        """Build from ``x`` on first use, then check that ``x`` is ``(n, *in_shape)`` (layers
        whose whole per-sample shape matters: convolutions, pooling, reshapes)."""
        if self.out_shape is None:
            if x.ndim < 2:
                raise ValueError(f"{type(self).__name__} got an input of shape {x.shape}")
            self.build(x.shape[1:])
        if x.shape[1:] != self.in_shape:
            dims = ", ".join(map(str, self.in_shape))
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (n, {dims}), got {x.shape}"
            )

    def _unallocated(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__} has no parameters yet: put it in a Sequential, or call "
            "layer.initialize(in_shape) to use it on its own"
        )

    def _missing_cache(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__}.backward called without a preceding forward(x, training=True)"
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON values (used by save/load and configs)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


Layer.build = _guard_build(Layer.build)  # type: ignore[method-assign]
