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
import math
import os
import struct
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..errors import CheckpointError
from .atomic import atomic_write
from .checkpoint import load_checkpoint, require_finite
from .npz import check_weight_file

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

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)

    return atomic_write(path, write, suffix=".safetensors")


def load_safetensors(path: str | os.PathLike) -> tuple[OrderedDict[str, np.ndarray], dict]:
    """({name: array}, metadata) from ``path``; CheckpointError naming what is wrong otherwise.

    The whole header is checked before any tensor is made: a JSON object without repeated keys,
    ``__metadata__`` a {str: str} map, every entry a known dtype, a shape of sizes and integer
    offsets whose span is exactly the shape's bytes, and the entries' spans tiling the data with
    no gap and no overlap. Nothing is allocated beyond the file's own bytes.
    """
    check_weight_file(path, "weights")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise CheckpointError(f"{path} is not a safetensors file (only {len(blob)} bytes)")
    (size,) = struct.unpack("<Q", blob[:8])
    if size > min(_MAX_HEADER, len(blob) - 8):
        raise CheckpointError(f"{path} is not a safetensors file, or is truncated (header of {size} bytes)")
    header, metadata = _header(path, blob[8 : 8 + size])
    data = memoryview(blob)[8 + size :]
    entries = sorted(((_entry(path, name, entry), name) for name, entry in header.items()), key=lambda e: e[0][2])
    position = 0
    for (dtype, shape, (begin, end)), name in entries:
        expected = math.prod(shape) * np.dtype(dtype).itemsize
        if end - begin != expected:
            raise CheckpointError(
                f"{path}: tensor '{name}' has shape {list(shape)} of {np.dtype(dtype).name} ({expected} bytes) "
                f"but data_offsets [{begin}, {end}] span {end - begin} bytes"
            )
        if begin != position:
            problem = "overlaps the tensor before it" if begin < position else "leaves a gap before it"
            raise CheckpointError(f"{path}: tensor '{name}' at offset {begin} {problem} (expected offset {position})")
        position = end
    if position != len(data):
        raise CheckpointError(
            f"{path}: the header describes {position} bytes of tensor data but the file holds {len(data)} "
            f"(truncated or corrupt)"
        )
    tensors = OrderedDict()
    for (dtype, shape, (begin, end)), name in entries:
        array = np.frombuffer(data[begin:end], dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
        tensors[name] = array.astype(dtype)  # native byte order, an array that owns its memory
    return tensors, metadata


def _header(path, raw):
    """(entries {name: entry}, metadata {str: str}) of a safetensors header, checked."""

    def no_repeats(pairs):
        mapping = dict(pairs)
        if len(mapping) < len(pairs):  # one pass: a header may hold very many keys
            seen = set()
            repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise CheckpointError(f"{path}: the header names '{repeated}' more than once")
        return mapping

    try:
        header = json.loads(raw.decode(), object_pairs_hook=no_repeats)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: the header's __metadata__ must map strings to strings, got {metadata!r:.80}")
    return header, metadata


def _entry(path, name, entry):
    """(numpy dtype, shape tuple, (begin, end)) of one header entry, checked: integers only (a
    float such as 1e400, or a bool, is not an offset or a size)."""

    def is_count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    ok = isinstance(entry, dict) and entry.get("dtype") in _DTYPES
    shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
    ok = ok and isinstance(shape, list) and all(is_count(s) for s in shape)
    ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(is_count(v) for v in offsets)
    if not ok or offsets[1] < offsets[0]:
        raise CheckpointError(f"{path}: tensor '{name}' has a malformed header entry: {entry!r:.200}")
    return _DTYPES[entry["dtype"]], tuple(shape), (offsets[0], offsets[1])


def load_state(path) -> dict:
    """The model state dict in ``path``: a ``.safetensors`` weights file or a ``.npz`` numbacnn
    checkpoint. CheckpointError if it is missing, unreadable or holds a NaN or infinite tensor;
    ValueError for any other kind of file."""
    if str(path).endswith(".safetensors"):
        tensors = load_safetensors(path)[0]
        require_finite(path, tensors)
        return tensors
    if str(path).endswith(".npz"):
        return load_checkpoint(path)[0]
    raise ValueError(f"{path} should be a .safetensors weights file or a .npz numbacnn checkpoint")
