"""Image data sets stored as plain ``.npz`` files (MNIST, Fashion-MNIST) and an IDX reader.

The files are made once by ``python scripts/fetch_data.py mnist|fashion-mnist`` and hold four
arrays, loaded with ``allow_pickle=False``::

    X_train (60000, 784) uint8    y_train (60000,) uint8
    X_test  (10000, 784) uint8    y_test  (10000,) uint8

Pixels stay uint8 (0..255) on disk; divide by 255 for inputs in [0, 1]. The default folder is
``$BACKPROP_DATA`` or ``./data``.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

KEYS = ("X_train", "y_train", "X_test", "y_test")
FETCH_HINT = "python scripts/fetch_data.py {name} (in a checkout of the repository)"


def data_dir() -> Path:
    return Path(os.environ.get("BACKPROP_DATA", "data"))


def relative_note(opts: dict) -> str:
    """For a data file that was not found: where a relative ``path`` was looked for (the working
    directory, not the config's folder), or "" for an absolute path."""
    path = opts.get("path") or ""
    if not path and opts.get("source") in ("mnist", "fashion_mnist"):
        path = str(data_dir())  # the default data/NAME.npz, or $BACKPROP_DATA
    if not path or Path(path).is_absolute():
        return ""
    return f" (a relative path is read from the working directory {Path.cwd()})"


def load_npz_dataset(path: str | os.PathLike) -> tuple[np.ndarray, ...]:
    """``(X_train, y_train, X_test, y_test)`` from an ``.npz`` with those four arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        # np.load's own messages name no file, and for a damaged file suggest allow_pickle.
        raise ValueError(
            f"{path} is not a readable .npz data set ({type(exc).__name__}): damaged or "
            "truncated? Make it again; it is never unpickled"
        ) from exc
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not an .npz with {list(KEYS)}")
    with f:
        missing = [k for k in KEYS if k not in f.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; expected {list(KEYS)}")
        try:
            arrays = tuple(f[k] for k in KEYS)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValueError(
                f"{path}: an array cannot be read (damaged file, or object arrays, which are "
                f"never unpickled): {type(exc).__name__}: {exc}"
            ) from exc
    X_train, y_train, X_test, y_test = arrays
    for name, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(f"{path}: {name} arrays have shapes {X.shape} and {y.shape}")
    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"{path}: train has {X_train.shape[1]} features, test {X_test.shape[1]}")
    return arrays


def _load_named(name: str, filename: str, path: str | os.PathLike | None):
    path = Path(path) if path is not None else data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} not found at {path}; create it with: {FETCH_HINT.format(name=name)}"
        )
    arrays = load_npz_dataset(path)
    for key, a in zip(KEYS, arrays, strict=True):
        if a.dtype != np.uint8:
            raise ValueError(f"{path}: {key} has dtype {a.dtype}, expected uint8 ({name})")
    for key, X in (("X_train", arrays[0]), ("X_test", arrays[2])):
        if X.shape[1] != 784:
            raise ValueError(f"{path}: {key} has {X.shape[1]} columns, expected 784 (28x28)")
    for key, y in (("y_train", arrays[1]), ("y_test", arrays[3])):
        if y.size and y.max() > 9:
            raise ValueError(f"{path}: {key} holds label {int(y.max())}, expected 0..9 ({name})")
    return arrays


def load_mnist(path: str | os.PathLike | None = None) -> tuple[np.ndarray, ...]:
    """MNIST, 60,000 training and 10,000 test images of 28x28 handwritten digits."""
    return _load_named("mnist", "mnist.npz", path)


def load_fashion_mnist(path: str | os.PathLike | None = None) -> tuple[np.ndarray, ...]:
    """Fashion-MNIST, 60,000 training and 10,000 test images of 28x28 clothing items."""
    return _load_named("fashion-mnist", "fashion-mnist.npz", path)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped): a big-endian header ``0 0 type ndim``, one uint32
    size per dimension, then the data. Only unsigned-byte data (type 0x08) is accepted; the
    declared size must match the bytes present."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # errors that name no file
        raise ValueError(f"{path}: damaged or truncated gzip file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{raw[2]:02x} unsupported (only unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: header declares {size} bytes of data, file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def adding_problem(
    n_samples: int, length: int, rng: np.random.Generator, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015).

    ``X`` ``(n_samples, length, 2)``: channel 0 holds values uniform in [0, 1), channel 1 marks
    exactly two steps with 1, one drawn in the first half of the sequence and one in the second.
    ``y`` ``(n_samples,)`` is the sum of the two marked values. Always predicting 1 gives the
    baseline mean squared error ``Var(u1 + u2) = 2/12 = 0.167``: a network beats it only by
    carrying the first marked value across at least ``length / 2`` steps.
    """
    if length < 2:
        raise ValueError(f"length must be at least 2, got {length!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples!r}")
    X = np.zeros((n_samples, length, 2), dtype=dtype)
    X[:, :, 0] = rng.random((n_samples, length))
    half = length // 2
    first = rng.integers(0, half, size=n_samples)
    second = rng.integers(half, length, size=n_samples)
    rows = np.arange(n_samples)
    X[rows, first, 1] = 1
    X[rows, second, 1] = 1
    y = (X[rows, first, 0] + X[rows, second, 0]).astype(dtype)
    return X, y
