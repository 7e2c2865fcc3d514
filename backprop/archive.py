"""The archive under every model and checkpoint file: a JSON header and arrays, one ``.npz``.

File layout (an uncompressed zip, readable by ``np.load(path, allow_pickle=False)``)::

    __header__.npy      uint8 bytes of a UTF-8 JSON object:
                        {"format": "backprop", "version": 1, "kind": "Sequential",
                         "config": {...}, "metadata": {...},
                         "arrays": {"0.W": {"dtype": "<f4", "shape": [64, 128]}, ...}}
    0.W.npy, 0.b.npy, ...   one member per declared array

Reading never unpickles and checks before it reads: the header's size is bounded, its version
must be one this library writes, every declared array must be present with exactly the declared
dtype and shape (read from the member's own ``.npy`` header) and a byte count that matches, and
only then is any data read (the zip's own layout is checked first by :mod:`backprop.filecheck`).
Anything else raises :class:`ModelFileError` naming the file and the problem.

Writes are atomic: a temporary file in the target's folder (mode 0666 less the umask, as
``open`` makes), flushed to disk, then ``os.replace``.
What the header's ``kind`` and ``config`` mean is :mod:`backprop.io`'s business.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import filecheck

FORMAT = "backprop"
VERSION = 1
HEADER = "__header__"
MAX_HEADER_BYTES = 16 * 2**20
ALLOWED_DTYPES = {"<f4", "<f8", "<i8", "<i4", "|u1", "|b1", "<u8"}


class ModelFileError(ValueError):
    """A model or checkpoint file that is malformed, truncated, or of an unknown version."""


def write_archive(path: str | os.PathLike, header: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write ``header`` (JSON) and ``arrays`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for name, arr in arrays.items():
        if name == HEADER or not name or "\\" in name or name.startswith("/") or ".." in name:
            raise ValueError(f"invalid array name {name!r}")
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise ValueError(f"array {name!r} has dtype {arr.dtype}, not one a model file holds")
    header = {
        **header,
        "format": FORMAT,
        "version": VERSION,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
    }
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, arr in [(HEADER, blob), *arrays.items()]:
                    with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path``, opened for writing with the mode of the file it replaces,
    else 0666 less the umask (what ``open`` gives; ``tempfile.mkstemp``'s 0600 would make every
    saved file private)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o666)
        except FileExistsError:
            continue
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:  # no file to replace (or one we may not read): keep open()'s mode
            pass
        return fd, str(tmp)
    raise FileExistsError(f"no free temporary name beside {path}")


_BINARY = getattr(os, "O_BINARY", 0)


def _member_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str):
    """(dtype, shape, data offset) of one ``.npy`` member, reading only its header."""
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise ModelFileError(
                f"{where}: member {info.filename} is not a valid array: {exc}"
            ) from None
        offset = f.tell()
    if fortran:
        raise ModelFileError(f"{where}: member {info.filename} is Fortran-ordered")
    return dtype, tuple(shape), offset


def read_archive(
    path: str | os.PathLike,
    expect: Callable[[dict[str, Any]], dict[str, tuple[str, tuple[int, ...]]] | None] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(header, arrays)`` from a file written by :func:`write_archive`, checking everything
    that can be checked before any array data is read. ``expect(header)`` may return the
    ``{name: (dtype, shape)}`` the caller requires; a difference is an error."""
    path = Path(path)
    where = str(path)
    if path.is_dir():
        raise ModelFileError(f"{where}: is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with open(path, "rb") as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
            raise ModelFileError(
                f"{where}: not a backprop model file (not a valid .npz archive, or truncated: "
                f"{exc})"
            ) from None
        with z:
            try:
                filecheck.check_zip_layout(z, f, os.fstat(f.fileno()).st_size, where)
                return _read_checked(z, where, expect)
            except (zipfile.BadZipFile, EOFError, OSError, struct.error) as exc:
                raise ModelFileError(f"{where}: corrupt or truncated archive ({exc})") from None
            except NotImplementedError as exc:  # a zip feature zipfile lacks (never written here)
                raise ModelFileError(f"{where}: unsupported zip archive ({exc})") from None


def _read_checked(z: zipfile.ZipFile, where: str, expect):
    members = {info.filename: info for info in z.infolist()}
    info = members.get(f"{HEADER}.npy")
    if info is None:
        raise ModelFileError(f"{where}: no {HEADER} member; not a backprop model file")
    if info.file_size > MAX_HEADER_BYTES:
        raise ModelFileError(f"{where}: header of {info.file_size} bytes is implausibly large")
    dtype, shape, offset = _member_header(z, info, where)  # its own .npy header, read first
    if dtype != np.uint8 or len(shape) != 1:
        raise ModelFileError(f"{where}: header must be 1-D uint8, got {dtype} {shape}")
    if offset + shape[0] != info.file_size:  # else NumPy would allocate what it declares
        raise ModelFileError(
            f"{where}: header declares {shape[0]} bytes, its member holds {info.file_size - offset}"
        )
    with z.open(info) as f:
        blob = np.lib.format.read_array(f, allow_pickle=False)
    try:
        text = blob.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{where}: header is not valid JSON ({exc})") from None
    header = filecheck.parse_json(text, where)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: header does not say format {FORMAT!r}")
    version = header.get("version")
    if version != VERSION:
        raise ModelFileError(
            f"{where}: file format version {version!r} is not supported "
            f"(this backprop reads version {VERSION})"
        )
    declared = header.get("arrays")
    if not isinstance(declared, dict):
        raise ModelFileError(f"{where}: header has no 'arrays' table")
    specs: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, spec in declared.items():
        ok = isinstance(spec, dict) and isinstance(spec.get("shape"), list)
        ok = ok and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec["shape"]
        )
        if not ok or not isinstance(spec.get("dtype"), str) or spec["dtype"] not in ALLOWED_DTYPES:
            raise ModelFileError(f"{where}: array {name!r} has a malformed declaration {spec!r}")
        specs[name] = (spec["dtype"], tuple(spec["shape"]))
    if expect is not None:
        wanted = expect(header)
        if wanted is not None and wanted != specs:
            diff = sorted(set(wanted).symmetric_difference(specs)) or [
                f"{k}: declared {specs[k]}, expected {wanted[k]}"
                for k in wanted
                if specs[k] != wanted[k]
            ]
            raise ModelFileError(f"{where}: arrays do not match the architecture: {diff}")
    extra = sorted(set(members) - {f"{n}.npy" for n in specs} - {f"{HEADER}.npy"})
    if extra:
        raise ModelFileError(f"{where}: undeclared members {extra}")
    offsets = {}
    for name, (dtype, shape) in specs.items():
        info = members.get(f"{name}.npy")
        if info is None:
            raise ModelFileError(f"{where}: declared array {name!r} is missing")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            # stored members only: a declared size can never exceed the bytes on disk
            raise ModelFileError(f"{where}: member {info.filename} is compressed; not written here")
        got_dtype, got_shape, offset = _member_header(z, info, where)
        if got_dtype.str != dtype or got_shape != shape:
            raise ModelFileError(
                f"{where}: array {name!r} is {got_dtype.str} {got_shape}, "
                f"but the header declares {dtype} {shape}"
            )
        need = offset + math.prod(shape) * np.dtype(dtype).itemsize  # exact: no overflow
        if info.file_size != need:
            raise ModelFileError(
                f"{where}: array {name!r} holds {info.file_size - offset} data bytes, "
                f"its shape {shape} needs {need - offset}"
            )
        offsets[name] = info
    arrays = {}
    for name, info in offsets.items():
        with z.open(info) as f:
            arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    return header, arrays


__all__ = ["ModelFileError", "read_archive", "write_archive"]
