"""The MNIST-style .npz loaders on damaged and wrong files: errors that name the file and what is
wrong, never advice to unpickle."""

from __future__ import annotations

import numpy as np
import pytest

from backprop.app import datasets


def _arrays(**over):
    arrays = {
        "X_train": np.zeros((6, 784), np.uint8),
        "y_train": np.arange(6, dtype=np.uint8),
        "X_test": np.zeros((3, 784), np.uint8),
        "y_test": np.arange(3, dtype=np.uint8),
    }
    arrays.update(over)
    return arrays


def test_a_valid_file_loads_with_train_and_test_apart(tmp_path):
    np.savez(tmp_path / "m.npz", **_arrays())
    X, y, Xt, yt = datasets.load_mnist(tmp_path / "m.npz")
    assert X.shape == (6, 784) and Xt.shape == (3, 784) and X.dtype == np.uint8
    assert y.tolist() == list(range(6)) and yt.tolist() == list(range(3))


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_file_names_itself(tmp_path, cut):
    np.savez(tmp_path / "full.npz", **_arrays())
    raw = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(ValueError, match=r"mnist\.npz.*(damaged|truncated)") as info:
        datasets.load_mnist(tmp_path / "mnist.npz")
    assert "allow_pickle" not in str(info.value)


def test_a_file_of_junk_is_not_answered_with_unpickling_advice(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"not an archive at all " * 20)
    with pytest.raises(ValueError, match=r"mnist\.npz is not a readable \.npz") as info:
        datasets.load_fashion_mnist(tmp_path / "mnist.npz")
    assert "allow_pickle" not in str(info.value) and "unsafely" not in str(info.value)


def test_object_arrays_are_refused_with_the_file_named(tmp_path):
    np.savez(tmp_path / "o.npz", **_arrays(y_test=np.array([1, "a"], dtype=object)))
    with pytest.raises(ValueError, match=r"o\.npz.*never unpickled"):
        datasets.load_npz_dataset(tmp_path / "o.npz")


def test_a_single_npy_array_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"a\.npy holds a single array"):
        datasets.load_npz_dataset(tmp_path / "a.npy")


@pytest.mark.parametrize(
    "over, words",
    [
        ({"y_train": np.array([0, 1, 2, 3, 4, 12], np.uint8)}, "y_train holds label 12"),
        ({"y_test": np.arange(3, dtype=np.int64)}, "y_test has dtype int64"),
        ({"X_train": np.zeros((6, 784), np.float32)}, "X_train has dtype float32"),
        ({"X_test": np.zeros((3, 28), np.uint8), "X_train": np.zeros((6, 28), np.uint8)}, "784"),
    ],
)
def test_mnist_loaders_check_what_the_arrays_must_be(tmp_path, over, words):
    np.savez(tmp_path / "m.npz", **_arrays(**over))
    with pytest.raises(ValueError, match=words):
        datasets.load_mnist(tmp_path / "m.npz")


@pytest.mark.parametrize("damage", ["truncate", "junk"])
def test_read_idx_names_a_damaged_gzip_file(tmp_path, damage):
    import gzip

    header = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big")
    packed = gzip.compress(header + bytes(range(10)))
    (tmp_path / "ok.gz").write_bytes(packed)
    assert datasets.read_idx(tmp_path / "ok.gz").tolist() == list(range(10))
    bad = packed[:-5] if damage == "truncate" else b"garbage" * 5
    (tmp_path / "labels-idx1-ubyte.gz").write_bytes(bad)
    with pytest.raises(ValueError, match=r"labels-idx1-ubyte\.gz: damaged or truncated gzip"):
        datasets.read_idx(tmp_path / "labels-idx1-ubyte.gz")
