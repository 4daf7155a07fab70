"""A validating .npz reader: every size, flag and header is checked before anything is allocated
or trusted, so a malformed or hostile file is one error naming what is wrong and where (a
CheckpointError for checkpoints, a DataError for data sets: the caller names the class).

``numpy.load`` trusts a member's claimed shape before it looks at the bytes behind it (a header
claiming 2^34 floats over 192 KB asks for 64 GiB) and lets zipfile's own exceptions through. Here:

* the zip directory entries: no encryption or patched-data flags, stored or deflated only, each
  member's data inside the file, no name twice;
* each member's claimed size against its compressed bytes (equal when stored, at most deflate's
  greatest expansion when deflated), so no allocation outgrows what the file can back;
* each ``.npy`` header: its shape and dtype must need exactly the bytes the member holds, numbers
  only (no pickled objects);
* the CRC of every member, read to its end.
"""

from __future__ import annotations

import ast
import math
import os
import struct
import zipfile
import zlib

import numpy as np

from ..errors import CheckpointError

__all__ = ["check_weight_file", "read_npz"]


class _Invalid(Exception):
    """What is wrong with the file; read_npz raises it again as the caller's error class."""


# Deflate expands at most 1032:1 (RFC 1951: a 258-byte match in 2 bits); plus slack for tiny members.
_MAX_DEFLATE_RATIO = 1032
_SLACK = 1024
_UNSUPPORTED_FLAGS = {0x1: "encrypted", 0x20: "compressed patched data", 0x40: "strongly encrypted"}
_MAX_NPY_HEADER = 65536
# What zipfile and zlib raise on a damaged archive that the checks above did not catch first.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)
_READ_ERRORS += (NotImplementedError, RuntimeError, struct.error, UnicodeDecodeError, OverflowError)


def check_weight_file(path, what="checkpoint"):
    """CheckpointError unless ``path`` names an existing regular file (not a folder)."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a {what} file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{what} not found: {path}")


def read_npz(path, error=CheckpointError, what="numbacnn checkpoint", keys=None) -> dict[str, np.ndarray]:
    """{member name without .npy: array} from the .npz at ``path``, every part checked first;
    ``error`` (named ``what`` in its messages) for anything wrong. With ``keys``, only those
    members are read, and a missing one is an error naming what the file holds."""
    if error is CheckpointError:
        check_weight_file(path)
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise _Invalid(f"{path} holds a single array (.npy), not a {what} (.npz)")
        with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
            infos = archive.infolist()
            _check_directory(path, infos, file_size)
            if keys is not None:
                infos = _wanted(path, infos, keys, what)
            return {info.filename[:-4]: _read_member(path, archive, info, what) for info in infos}
    except _Invalid as e:
        raise error(str(e)) from None
    except _READ_ERRORS as e:
        raise error(f"{path} is not a readable {what} (corrupt or truncated: {e})") from None


def _wanted(path, infos, keys, what):
    """The members named ``keys`` (in that order), or _Invalid naming the missing ones."""
    by_name = {info.filename[:-4]: info for info in infos}
    missing = [k for k in keys if k not in by_name]
    if missing:
        raise _Invalid(
            f"{path}: no array {', '.join(missing)}; a {what} holds {', '.join(keys)} "
            f"(this one holds {', '.join(by_name) or 'nothing'})"
        )
    return [by_name[k] for k in keys]


def _check_directory(path, infos, file_size):
    names = set()
    for info in infos:
        where = f"{path}: member '{info.filename}'"
        if info.filename in names:
            raise _Invalid(f"{where} appears twice in the zip directory")
        names.add(info.filename)
        if not info.filename.endswith(".npy"):
            raise _Invalid(f"{where} is not a .npy array")
        for bit, meaning in _UNSUPPORTED_FLAGS.items():
            if info.flag_bits & bit:
                raise _Invalid(f"{where} is marked {meaning} (flag 0x{bit:x}), which numbacnn does not read")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(f"{where} uses compression method {info.compress_type} (only stored or deflated)")
        if info.header_offset + info.compress_size > file_size:
            raise _Invalid(
                f"{where}: its {info.compress_size} bytes at offset {info.header_offset} run past the end "
                f"of the {file_size}-byte file (truncated or corrupt)"
            )
        limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else (
            info.compress_size * _MAX_DEFLATE_RATIO + _SLACK
        )  # fmt: skip
        if info.file_size > limit:
            raise _Invalid(f"{where} claims {info.file_size} bytes from {info.compress_size} stored bytes (corrupt)")


def _read_member(path, archive, info, what):
    where = f"{path}: array '{info.filename[:-4]}'"
    with archive.open(info) as member:
        dtype, shape, fortran, header_size = _npy_header(where, member, what)
        count = math.prod(shape)
        needed = count * dtype.itemsize
        present = info.file_size - header_size
        if needed != present:
            raise _Invalid(
                f"{where} claims shape {shape} of {dtype} ({needed} bytes) but holds {present} bytes (corrupt)"
            )
        data = member.read(needed)
        if len(data) != needed or member.read(1):
            raise _Invalid(f"{where}: {len(data)} bytes where {needed} were expected (truncated)")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="))


def _npy_header(where, member, what):
    """(dtype, shape, fortran_order, bytes before the data) of a .npy stream, checked."""
    prefix = member.read(8)
    if len(prefix) < 8 or prefix[:6] != b"\x93NUMPY":
        raise _Invalid(f"{where} is not a .npy array (bad magic)")
    major = prefix[6]
    if major == 1:
        size_bytes, fmt = 2, "<H"
    elif major in (2, 3):
        size_bytes, fmt = 4, "<I"
    else:
        raise _Invalid(f"{where}: .npy format version {major} is not supported")
    raw = member.read(size_bytes)
    if len(raw) < size_bytes:
        raise _Invalid(f"{where}: truncated .npy header")
    (length,) = struct.unpack(fmt, raw)
    if length > _MAX_NPY_HEADER:
        raise _Invalid(f"{where}: a .npy header of {length} bytes (corrupt)")
    text = member.read(length)
    try:
        header = ast.literal_eval(text.decode("latin1" if major < 3 else "utf8"))
        descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
        dtype = np.dtype(descr) if isinstance(descr, str) else None
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise _Invalid(f"{where}: malformed .npy header") from None
    if dtype is None or dtype.hasobject or dtype.kind not in "biuf":
        raise _Invalid(f"{where} holds {descr!r}, not numbers (the file is corrupt or not a {what})")
    if not isinstance(fortran, bool) or not isinstance(shape, tuple):
        raise _Invalid(f"{where}: malformed .npy header")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise _Invalid(f"{where}: shape {shape!r} is not a tuple of sizes")
    return dtype, shape, fortran, 8 + size_bytes + length
