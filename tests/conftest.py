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
