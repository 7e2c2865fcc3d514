"""Shared fixtures: explicit generators only (never NumPy's global state)."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
