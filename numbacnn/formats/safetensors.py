"""Weight files that travel: safetensors, read and written here without the ``safetensors`` package.

The format (https://huggingface.co/docs/safetensors) is 8 bytes of little-endian header length, a
JSON header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``
padded with spaces to a multiple of 8 bytes, then the raw little-endian C-order tensor bytes, one
after the other. Writing it takes a few lines; owning them means the one thing that goes silently
wrong elsewhere cannot here: every array is made C-contiguous before its bytes are written.

Keys are the state dict's (PyTorch's names), so ``torch.nn.Module.load_state_dict`` and Hugging
Face tools read the file as written by PyTorch. Dtypes are kept.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..errors import CheckpointError

__all__ = ["load_safetensors", "load_state", "save_safetensors"]

_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
# A header this large is not a weight file's (the reference reader refuses above 100 MB).
_MAX_HEADER = 100 * 1024 * 1024


def save_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: dict | None = None):
    """Write ``tensors`` ({name: array}) to ``path`` atomically; ``metadata`` is a {str: str} map."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        # asarray(order="C") keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
        array = np.asarray(value, order="C")
        if array.dtype not in _NAMES:
            raise TypeError(f"safetensors: '{name}' holds {array.dtype}, which the format cannot store")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {
            "dtype": _NAMES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".weights-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for raw in chunks:
                f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_safetensors(path: str | os.PathLike) -> tuple[OrderedDict[str, np.ndarray], dict]:
    """({name: array}, metadata) from ``path``; CheckpointError naming what is wrong otherwise."""
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise CheckpointError(f"{path} is not a safetensors file (only {len(blob)} bytes)")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > min(_MAX_HEADER, len(blob) - 8):
        raise CheckpointError(f"{path} is not a safetensors file, or is truncated (header of {size} bytes)")
    try:
        header = json.loads(blob[8 : 8 + size].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(blob)[8 + size :]
    tensors = OrderedDict()
    for name, entry in sorted(header.items(), key=lambda item: _begin(path, item)):
        dtype, shape, (begin, end) = _entry(path, name, entry)
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if end - begin != expected or end > len(data):
            raise CheckpointError(
                f"{path}: tensor '{name}' needs {expected} bytes at {begin}..{end}, "
                f"but the file holds {len(data)} bytes of data (truncated or corrupt)"
            )
        array = np.frombuffer(data[begin:end], dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
        tensors[name] = array.astype(dtype)  # native byte order, an array that owns its memory
    return tensors, dict(metadata)


def _begin(path, item):
    name, entry = item
    return _entry(path, name, entry)[2][0]


def _entry(path, name, entry):
    """(numpy dtype, shape tuple, (begin, end)) of one header entry, checked."""
    try:
        dtype = _DTYPES[entry["dtype"]]
        shape = tuple(int(s) for s in entry["shape"])
        begin, end = (int(v) for v in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: tensor '{name}' has a malformed header entry: {entry!r}") from None
    if any(s < 0 for s in shape) or begin < 0 or end < begin:
        raise CheckpointError(f"{path}: tensor '{name}' has a malformed header entry: {entry!r}")
    return dtype, shape, (begin, end)


def load_state(path) -> dict:
    """The model state dict in ``path``: a ``.safetensors`` weights file or a ``.npz`` numbacnn
    checkpoint (CheckpointError if unreadable; ValueError for any other kind of file)."""
    from .checkpoint import load_checkpoint

    if str(path).endswith(".safetensors"):
        return load_safetensors(path)[0]
    if str(path).endswith(".npz"):
        return load_checkpoint(path)[0]
    raise ValueError(f"{path} should be a .safetensors weights file or a .npz numbacnn checkpoint")
