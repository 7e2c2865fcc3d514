"""Weight initializers.

Protocol: an initializer is a function ``init(shape, rng, dtype) -> ndarray`` that draws a new array
of ``shape`` from the ``np.random.Generator`` ``rng`` (never NumPy's global state). For a Dense
weight ``W`` of shape ``(fan_in, fan_out)``:

=====================  =====================================================
name                   distribution
=====================  =====================================================
``zeros``              0
``small_normal``       N(0, 0.01^2)
``glorot_uniform``     U(-a, a),  a = sqrt(6 / (fan_in + fan_out))
``glorot_normal``      N(0, s^2), s = sqrt(2 / (fan_in + fan_out))
``he_uniform``         U(-a, a),  a = sqrt(6 / fan_in)
``he_normal``          N(0, s^2), s = sqrt(2 / fan_in)
``lecun_uniform``      U(-a, a),  a = sqrt(3 / fan_in)
``lecun_normal``       N(0, s^2), s = sqrt(1 / fan_in)
=====================  =====================================================

Any other shape is read the way the layers lay out their weights, outputs on the last axis:
``fan_out = shape[-1]`` and ``fan_in`` the product of the other axes (a Conv2D kernel
``(kh, kw, c, f)`` has ``fan_in = kh*kw*c``, ``fan_out = f``, the fans ``Conv2D`` uses); a 1-D
shape ``(n,)`` has ``fan_in = fan_out = n``. The normal initializers are not truncated.

``xavier_*`` and ``kaiming_*`` are aliases. :func:`get` turns a name into the function and names
the valid ones when it does not know the name. :func:`default_for_activation` gives the
activation-aware default used by ``Dense(init="auto")`` and ``Conv1D/Conv2D(init="auto")`` inside
a ``Sequential``: ``he_uniform`` when the next activation (looking through Dropout, BatchNorm,
LayerNorm, pooling and reshapes) is in the ReLU family -- ReLU, LeakyReLU, PReLU, ELU, GELU, SiLU
or a subclass of one -- and ``glorot_uniform`` otherwise (Sigmoid, Tanh, Softplus, Softmax,
Identity, another Dense, or nothing, as for the output layer or a layer on its own).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, np.dtype], np.ndarray]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)``: ``(prod(shape[:-1]), shape[-1])``, or ``(n, n)`` for ``(n,)``."""
    if len(shape) == 1:
        return shape[0], shape[0]
    return int(np.prod(shape[:-1])), shape[-1]


def zeros(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def small_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    return (0.01 * rng.standard_normal(shape)).astype(dtype, copy=False)


def _uniform(limit: float, shape, rng, dtype) -> np.ndarray:
    return rng.uniform(-limit, limit, size=shape).astype(dtype, copy=False)


def _normal(std: float, shape, rng, dtype) -> np.ndarray:
    return (std * rng.standard_normal(shape)).astype(dtype, copy=False)


def glorot_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    return _uniform(np.sqrt(6.0 / (fan_in + fan_out)), shape, rng, dtype)


def glorot_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, fan_out = _fans(shape)
    return _normal(np.sqrt(2.0 / (fan_in + fan_out)), shape, rng, dtype)


def he_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, _ = _fans(shape)
    return _uniform(np.sqrt(6.0 / fan_in), shape, rng, dtype)


def he_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, _ = _fans(shape)
    return _normal(np.sqrt(2.0 / fan_in), shape, rng, dtype)


def lecun_uniform(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, _ = _fans(shape)
    return _uniform(np.sqrt(3.0 / fan_in), shape, rng, dtype)


def lecun_normal(shape, rng, dtype=np.float32) -> np.ndarray:
    fan_in, _ = _fans(shape)
    return _normal(np.sqrt(1.0 / fan_in), shape, rng, dtype)


REGISTRY: dict[str, Initializer] = {
    "zeros": zeros,
    "small_normal": small_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
}

# Activations whose derivative is 1 on half the line: they halve the variance, He corrects for it.
_RELU_FAMILY = {"relu", "leakyrelu", "prelu", "elu", "gelu", "silu"}


def get(identifier: str | Initializer) -> Initializer:
    """Return the initializer named ``identifier`` (or ``identifier`` itself if callable)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in REGISTRY:
        return REGISTRY[identifier]
    raise ValueError(
        f"unknown initializer {identifier!r}; valid names: {', '.join(sorted(REGISTRY))}"
    )


def draw(
    identifier: str | Initializer,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    dtype: np.dtype,
    what: str,
) -> np.ndarray:
    """``get(identifier)(shape, rng, dtype)``, checked to be an array of exactly ``shape`` with
    finite values; ``what`` names the argument and the layer in the error ("init of Dense")."""
    init = get(identifier)
    name = getattr(init, "__name__", repr(init))
    w = init(shape, rng, dtype)
    if w is None:
        raise ValueError(f"{what} ({name}) returned None instead of an array of shape {shape}")
    w = np.asarray(w)
    if w.shape != tuple(shape):
        layout = " (a weight is (fan_in, fan_out))" if len(shape) == 2 else ""
        raise ValueError(
            f"{what} ({name}) returned shape {w.shape}, not the {tuple(shape)} asked for{layout}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{what} ({name}) returned non-finite values")
    return w


def default_for_activation(activation_name: str | None) -> str:
    """'he_uniform' for the ReLU family (ReLU, LeakyReLU, PReLU, ELU, GELU, SiLU; the class name,
    any case), 'glorot_uniform' for anything else (or None: no activation)."""
    if activation_name is not None and activation_name.lower() in _RELU_FAMILY:
        return "he_uniform"
    return "glorot_uniform"
