"""Readers for the IDX format (MNIST, Fashion-MNIST) and the CIFAR-10 binary format.

Both validate structure (magic number, dimensions, byte counts) and raise :class:`DataError`
naming the file and what is wrong, never a bare struct or reshape traceback.
"""

import gzip
import math
import tarfile
import zlib

import numpy as np

from ..errors import DataError

# Images are 3-D (N, H, W), labels 1-D; a few more are allowed for other IDX data.
MAX_IDX_DIMS = 8


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(f"{path} is a truncated or corrupt gzip file ({e}); delete it and fetch it again") from None
    return raw


def read_idx(path):
    """The array stored in an IDX file (optionally gzip-compressed): uint8 images or labels."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise DataError(
            f"{path}: IDX header declares {ndim} dimensions (1 to {MAX_IDX_DIMS} expected); the file is corrupt"
        )
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # Python ints: a corrupt header cannot overflow the check
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header promises {expected} bytes of shape {shape}, the file holds "
            f"{len(raw) - header}; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path, array):
    """Write a uint8 array as IDX (gzip-compressed when path ends with .gz). Used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_batches(archive, members):
    """Images (N, 3, 32, 32) uint8 and labels (N,) from CIFAR-10 binary batch files in a tar.gz.

    The binary version is read record by record; the python (pickle) version is never opened.
    """
    images, labels = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = {m.name.split("/")[-1]: m for m in tar.getmembers()}
            for member in members:
                if member not in names:
                    raise DataError(f"{archive} has no {member}: is it the CIFAR-10 *binary* version?")
                raw = tar.extractfile(names[member]).read()
                if len(raw) % CIFAR_RECORD:
                    raise DataError(
                        f"{archive}:{member} holds {len(raw)} bytes, not a multiple of the "
                        f"{CIFAR_RECORD}-byte record; the file is corrupt"
                    )
                rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
                labels.append(rec[:, 0].astype(np.int64))
                images.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive} is not a readable tar.gz ({e}); delete it and fetch it again") from None
    return np.concatenate(images), np.concatenate(labels)
