"""Shared fixtures: explicit generators only (never NumPy's global state).

BLAS is pinned to one thread for the whole suite: the matrices here are small, so threads only
add contention on a shared machine, and one thread makes float results independent of timing.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

threadpool_limits(limits=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def standalone(layer, in_shape, dtype="float64", seed=0):
    """Build a layer on its own with its own float64 arrays (outside a Sequential)."""
    if hasattr(layer, "initialize"):
        layer.initialize(in_shape, dtype=dtype, seed=seed)
    else:
        layer.build(in_shape)
        layer._allocate(dtype, np.random.default_rng(seed))
    return layer


def finite_difference_check(layer, x, mask=None, wrt_input=True, eps=1e-6, seed=1):
    """Largest relative error between a layer's backward and central differences of
    ``L = sum(forward(x) * R)`` (R fixed, random), over every parameter and, optionally, ``x``.

    Returns ``{name: relative error}``; ``"x"`` for the input."""
    kw = {} if mask is None else {"mask": mask}
    out = layer.forward(x, training=True, **kw)
    R = np.random.default_rng(seed).standard_normal(out.shape)
    dx = layer.backward(R)

    def loss():
        return float((layer.forward(x, **kw) * R).sum())

    def numeric(arr):
        num = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            num[idx] = (up - down) / (2 * eps)
        return num

    def rel(a, n):
        # Floor 1e-4: a gradient that is zero in exact arithmetic (attention's key bias) still
        # reads as ~1e-10 of round-off in the central difference.
        return float(np.abs(a - n).max() / max(np.abs(n).max(), 1e-4))

    errors = {k: rel(layer.grads[k], numeric(p)) for k, p in layer.params.items()}
    if wrt_input:
        errors["x"] = rel(dx, numeric(x))
    return errors
