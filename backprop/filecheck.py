"""Checks on files that may come from anyone: the zip container, array sizes, the JSON header.

:mod:`backprop.io` reads model and checkpoint files; this module decides what it may trust.
Every check here runs before any array data is read, and every refusal is a
:class:`~backprop.archive.ModelFileError` that names the file.

The container (:func:`check_zip_layout`): a zip's directory is written by whoever wrote the file,
so its sizes prove nothing by themselves. Each member's local header is found at its declared
offset, and its data must end inside the file (``offset + header + size <= file length``) without
overlapping another member; names may not repeat. A stored member therefore can never promise
more bytes than the file holds, whatever its directory entry and ``.npy`` header agree to say.

The header (:func:`parse_json`): integers longer than :data:`MAX_INT_DIGITS` digits are refused
while parsing, before Python builds them.

Schemas for the header's contents live in :mod:`backprop.schemas`.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_INT_DIGITS = 40  # 2**128 has 39 digits: enough for any random-generator state
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip local file header (30 bytes)
LOCAL_MAGIC = b"PK\x03\x04"


def _error(where: str, message: str) -> Exception:
    from .archive import ModelFileError  # archive imports this module

    return ModelFileError(f"{where}: {message}")


# -- the container ---------------------------------------------------------------------------
def check_zip_layout(z: zipfile.ZipFile, f: Any, file_size: int, where: str) -> None:
    """Refuse repeated member names, encrypted members, and members whose data would lie (even
    partly) outside the file's real ``file_size`` bytes or overlap another member. ``f`` is the
    open file."""
    infos = z.infolist()
    repeated = sorted(n for n, k in Counter(i.filename for i in infos).items() if k > 1)
    if repeated:
        raise _error(where, f"members {repeated} appear more than once")
    spans = []
    for info in infos:
        if info.flag_bits & 0x1:  # zipfile would ask for a password (a RuntimeError)
            raise _error(where, f"member {info.filename} is encrypted")
        start = info.header_offset
        if not 0 <= start <= file_size - LOCAL_HEADER.size:
            raise _error(where, f"member {info.filename} starts outside the file")
        f.seek(start)
        fields = LOCAL_HEADER.unpack(f.read(LOCAL_HEADER.size))
        if fields[0] != LOCAL_MAGIC:
            raise _error(where, f"member {info.filename} has no local header at its offset")
        end = start + LOCAL_HEADER.size + fields[10] + fields[11] + info.compress_size
        if end > file_size:
            raise _error(
                where,
                f"member {info.filename} declares {info.compress_size} bytes, more than the "
                f"file's {file_size} bytes hold",
            )
        spans.append((start, end, info.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise _error(where, f"members {name} and {other} overlap")


DEFLATE_MAX_RATIO = 1032  # no valid deflate stream expands more than this


def _npy_need(f: Any, where: str, member: str) -> tuple[int, int]:
    """(header bytes, data bytes) an ``.npy`` stream's own header declares."""
    import numpy as np

    try:
        version = np.lib.format.read_magic(f)
        read = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = read(f)
    except ValueError as exc:
        raise _error(where, f"{member} is not a valid array: {exc}") from None
    count = 1
    for d in shape:
        count *= d
    return f.tell(), count * dtype.itemsize


def check_array_file(path: Any) -> None:
    """Before ``np.load`` reads a data file (``.npy`` or ``.npz``): every array must fit in the
    bytes the file really holds (a compressed member in what its compressed bytes can inflate
    to), so a forged header never makes NumPy allocate more than a small multiple of the file."""
    where = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if where.lower().endswith(".npy"):
            head, need = _npy_need(f, where, "the file")
            if head + need > size:
                raise _error(where, f"declares {need} bytes of data but holds {size - head}")
            return
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, NotImplementedError) as exc:
            raise _error(where, f"not a valid .npz archive ({exc})") from None
        with z, _unsupported_zip(where):
            check_zip_layout(z, f, size, where)
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                room = info.compress_size
                if info.compress_type != zipfile.ZIP_STORED:
                    room *= DEFLATE_MAX_RATIO
                with z.open(info) as member:
                    head, need = _npy_need(member, where, info.filename)
                if head + need > min(room, info.file_size):
                    raise _error(
                        where, f"{info.filename} declares {need} bytes of data it cannot hold"
                    )


@contextmanager
def _unsupported_zip(where: str) -> Iterator[None]:
    """zipfile's NotImplementedError (encryption, an unknown compression method) as a
    ModelFileError naming the file."""
    try:
        yield
    except NotImplementedError as exc:
        raise _error(where, f"unsupported zip archive ({exc})") from None


# -- the JSON header ---------------------------------------------------------------------------
def parse_json(text: str, where: str) -> Any:
    """``json.loads`` that refuses integers of more than :data:`MAX_INT_DIGITS` digits."""

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise _error(where, f"header holds an integer of {len(digits)} digits")
        return int(digits)

    try:
        return json.loads(text, parse_int=parse_int)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        if type(exc).__name__ == "ModelFileError":
            raise
        raise _error(where, f"header is not valid JSON ({exc})") from None


@contextmanager
def owner_refusals(where: str) -> Iterator[None]:
    """Turn the ``KeyError``/``TypeError``/``ValueError`` an object's ``load_state_dict`` raises
    for a value from a file into a ModelFileError that names the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if type(exc).__name__ == "ModelFileError":
            raise
        raise _error(where, f"state the configured objects refuse: {exc!r}") from None


def check_fits(arrays: dict[str, tuple[str, tuple[int, ...]]], file_size: int, where: str) -> None:
    """Refuse an architecture whose ``{name: (dtype, shape)}`` arrays need more bytes than the
    whole file holds: they are stored in it, so such a file cannot be what it claims."""
    import numpy as np

    need = 0
    for dtype, shape in arrays.values():
        count = 1
        for d in shape:
            count *= d
        need += count * np.dtype(dtype).itemsize
    if need > file_size:
        raise _error(
            where, f"its model needs {need} bytes of parameters; the file holds {file_size}"
        )
