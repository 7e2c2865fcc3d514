"""keep_freed_memory: after it, a loop that allocates and frees the arrays of a "step" stops
faulting pages in again at every round (glibc only). Each case runs in a fresh interpreter, so
the allocator settings of this test process do not matter and are not changed."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp

ROUNDS = """
import json, resource, sys
import numpy as np
from backprop.memory import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # arrays of 4, 8, 12 and 16 MB, freed at the end like a training step's
    arrays = [np.ones(2**20 * k, np.float32) for k in (1, 2, 3, 4)]
    del arrays
for _ in range(3):
    step()
before = faults()
for _ in range(10):
    step()
print(json.dumps({"took": took, "faults": (faults() - before) / 10}))
"""


def rounds(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_kept_memory_is_not_faulted_in_again():
    default, kept = rounds("default"), rounds("keep")
    if kept["took"] is False:
        pytest.skip("not glibc: keep_freed_memory changes nothing here")
    assert kept["took"] is True
    assert default["faults"] > 1000  # 40 MB per round go back to the kernel by default
    assert kept["faults"] < 0.05 * default["faults"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep": -1}, "keep must be a byte count >= 0, got -1"),
        ({"keep": 1.5}, "keep must be a byte count"),
        ({"mmap_max": 2**26}, r"mmap_max must be at most 33554432 \(glibc's limit\), got 67108864"),
        # mallopt takes a C int: 4 GiB wrapped to 0 (trim every freed byte, the opposite)
        ({"keep": 2**32}, r"keep must be at most 2147483647 \(mallopt takes a C int\)"),
    ],
)
def test_bad_sizes_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.keep_freed_memory(**kwargs)


def test_numpy_integer_sizes_are_taken(monkeypatch):
    """A size computed with NumPy (``np.int64``) is a byte count too: it was refused with
    "keep must be a byte count >= 0, got 1048576", which names a perfectly good value. (No C
    library is found here, so this process's allocator is left as it is.)"""
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    assert bp.keep_freed_memory(keep=np.int64(256 * 2**20), mmap_max=np.int32(2**20)) is False
    with pytest.raises(ValueError, match="keep must be a byte count"):
        bp.keep_freed_memory(keep=np.True_)
