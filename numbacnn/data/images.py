"""Reading single images for ``numbacnn predict`` (and scripts): PNG, binary PGM/PPM and .npy.

Every reader checks the size its header declares against the size the caller expects *before*
decoding, bounds every read (a truncated file, a header that never ends or a decompression bomb
is an :class:`~numbacnn.errors.ImageError` naming the file, never a hang or a MemoryError), and
returns pixels as float32 (C, H, W) on the 0..255 scale the training data uses.

PNG: every colour type (grey, RGB, palette, grey+alpha, RGBA), every bit depth the format allows
(1, 2, 4, 8, 16), the five filter types; interlaced (Adam7) files are refused with a clear error.
"""

import os
import struct
import zlib

import numpy as np

from ..errors import ImageError
from .folders import file_problem

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The largest image any reader decodes when the caller names no expected size.
MAX_PIXELS = 1 << 24

# colour type -> (channels, allowed bit depths)
_PNG_COLOR = {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8)), 4: (2, (8, 16)), 6: (4, (8, 16))}

__all__ = ["MAX_PIXELS", "read_image", "read_npy", "read_png", "read_pnm", "to_layout"]


def read_image(path, shape=None):
    """Pixels of the image file ``path`` as float32 (C, H, W), values 0..255 (.npy: as stored).

    ``shape``: the (C, H, W) the caller needs; the file's declared size is checked against it
    before decoding, and grey/colour are converted (RGB -> grey by the mean, grey -> RGB by
    repetition; alpha dropped).
    """
    path = os.fspath(path)
    lower = path.lower()
    if not lower.endswith((".npy", ".pgm", ".ppm", ".pnm", ".png")):
        raise ImageError(f"{path}: unsupported image type (use .png, .pgm/.ppm or .npy)")
    problem = file_problem(path)
    if problem is not None:
        raise ImageError(problem)
    expected_hw = None if shape is None else tuple(int(s) for s in shape[1:])
    if lower.endswith(".npy"):
        img = read_npy(path, shape)
    elif lower.endswith(".png"):
        img = read_png(path, expected_hw)
    else:
        img = read_pnm(path, expected_hw)
    return img if shape is None else to_layout(img, shape, path)


def to_layout(img, shape, path="image"):
    """``img`` (H, W), (C, H, W) or (H, W, C) as float32 (C, H, W) = ``shape``."""
    c, h, w = shape
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[None]
    elif img.ndim == 3 and img.shape[-1] in (1, 2, 3, 4) and img.shape[0] not in (1, 3):
        img = np.moveaxis(img, -1, 0)
    if img.ndim != 3:
        raise ImageError(f"{path}: expected an image of 2 or 3 dimensions, got shape {img.shape}")
    if img.shape[0] in (2, 4):  # drop alpha
        img = img[:-1]
    if img.shape[0] == 3 and c == 1:
        img = img.mean(axis=0, keepdims=True)
    elif img.shape[0] == 1 and c == 3:
        img = np.repeat(img, 3, axis=0)
    if img.shape != (c, h, w):
        raise ImageError(f"{path}: image of shape {img.shape}, the model expects {(c, h, w)}")
    return np.ascontiguousarray(img, dtype=np.float32)


def _check_size(path, width, height, expected_hw):
    if width < 1 or height < 1:
        raise ImageError(f"{path}: the header declares an empty image ({width}x{height})")
    if expected_hw is not None and (height, width) != tuple(expected_hw):
        raise ImageError(
            f"{path}: image of {width}x{height} pixels (width x height), the model expects "
            f"{expected_hw[1]}x{expected_hw[0]}"
        )
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{path}: the header declares {width}x{height} pixels, more than this reader decodes ({MAX_PIXELS})"
        )


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageError(f"cannot read {path}: {e.strerror or e}") from None


# ----------------------------------------------------------------------------------------- npy
def read_npy(path, shape=None):
    """A numeric .npy array (no pickle); with ``shape`` its size is checked from the header first."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )(f)
            stored_shape, _, dtype = header
            if dtype.kind not in "uif" or dtype.hasobject:
                raise ImageError(f"{path}: .npy holds {dtype}, not numbers")
            if shape is not None and int(np.prod(stored_shape)) != int(np.prod(shape)):
                raise ImageError(f"{path}: array of shape {tuple(stored_shape)}, the model expects {tuple(shape)}")
        return np.load(path, allow_pickle=False)
    except ImageError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise ImageError(f"{path}: not a readable .npy file ({e})") from None


# ----------------------------------------------------------------------------------------- PNM
def read_pnm(path, expected_hw=None):
    """Binary PGM (P5) or PPM (P6), 8 or 16 bits: (C, H, W) float32 on 0..255."""
    data = _read_file(path)
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if pos >= len(data):
            missing = ("magic number", "width", "height", "maxval")[len(tokens)]
            raise ImageError(f"{path}: the PGM/PPM header ends before its {missing}")
        if data[pos : pos + 1] == b"#":
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace() and pos - start < 16:
            pos += 1
        tokens.append(data[start:pos])
    channels = {b"P5": 1, b"P6": 3}.get(tokens[0])
    if channels is None:
        raise ImageError(f"{path}: not a binary PGM (P5) or PPM (P6) file (magic {tokens[0][:8]!r})")
    try:
        width, height, maxval = (int(t) for t in tokens[1:])
    except ValueError:
        raise ImageError(f"{path}: PGM/PPM header sizes are not numbers: {b' '.join(tokens[1:])!r}") from None
    if not 0 < maxval < 65536:
        raise ImageError(f"{path}: maxval {maxval} outside 1..65535")
    _check_size(path, width, height, expected_hw)
    pos += 1  # the single whitespace after maxval
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
    count = width * height * channels
    if len(data) - pos < count * dtype.itemsize:
        raise ImageError(
            f"{path}: truncated: {width}x{height}x{channels} pixels need "
            f"{count * dtype.itemsize} bytes, the file holds {max(len(data) - pos, 0)}"
        )
    pixels = np.frombuffer(data, dtype, count=count, offset=pos).astype(np.float32)
    if maxval != 255:
        pixels *= np.float32(255.0 / maxval)
    return pixels.reshape(height, width, channels).transpose(2, 0, 1)


# ----------------------------------------------------------------------------------------- PNG
def read_png(path, expected_hw=None):
    """A non-interlaced PNG of any colour type and bit depth: (C, H, W) float32 on 0..255
    (C = 1 grey, 2 grey+alpha, 3 RGB or palette, 4 RGBA)."""
    data = _read_file(path)
    if data[:8] != PNG_SIGNATURE:
        raise ImageError(f"{path}: not a PNG file")
    header, palette, idat = None, None, []
    pos = 8
    while True:
        if pos + 8 > len(data):
            raise ImageError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise ImageError(f"{path}: truncated PNG (chunk {kind!r} needs {length} bytes)")
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            if length != 13:
                raise ImageError(f"{path}: corrupt PNG header (IHDR of {length} bytes)")
            header = struct.unpack(">IIBBBBB", chunk)
            _check_header(path, header, expected_hw)
        elif header is None:
            raise ImageError(f"{path}: corrupt PNG (first chunk is {kind!r}, not IHDR)")
        elif kind == b"PLTE":
            palette = np.frombuffer(chunk, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, color, _, _, _ = header
    channels = _PNG_COLOR[color][0]
    bits_per_pixel = channels * depth
    row_bytes = (width * bits_per_pixel + 7) // 8
    expected = height * (row_bytes + 1)
    raw = _inflate(path, b"".join(idat), expected)
    rows = _unfilter(path, raw, height, row_bytes, max(1, bits_per_pixel // 8))
    samples = _unpack(rows, width, channels, depth)  # (H, W, channels) ints
    if color == 3:
        if palette is None:
            raise ImageError(f"{path}: palette PNG without a PLTE chunk")
        if samples.max(initial=0) >= len(palette):
            raise ImageError(f"{path}: palette index beyond the {len(palette)}-entry PLTE")
        return palette[samples[..., 0]].astype(np.float32).transpose(2, 0, 1)
    pixels = samples.astype(np.float32)
    if depth != 8:
        pixels *= np.float32(255.0 / ((1 << depth) - 1))
    return pixels.transpose(2, 0, 1)


def _check_header(path, header, expected_hw):
    width, height, depth, color, compression, filter_method, interlace = header
    if color not in _PNG_COLOR:
        raise ImageError(f"{path}: unknown PNG colour type {color}")
    if depth not in _PNG_COLOR[color][1]:
        raise ImageError(f"{path}: bit depth {depth} is not valid for PNG colour type {color}")
    if compression != 0 or filter_method != 0:
        raise ImageError(f"{path}: unknown PNG compression/filter method ({compression}, {filter_method})")
    if interlace:
        raise ImageError(f"{path}: interlaced (Adam7) PNGs are not supported; save it without interlacing")
    _check_size(path, width, height, expected_hw)


def _inflate(path, compressed, expected):
    """zlib-decompress at most ``expected`` bytes (a bomb stops there) and require exactly that."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected)
    except zlib.error as e:
        raise ImageError(f"{path}: corrupt PNG image data ({e})") from None
    if len(raw) != expected:
        raise ImageError(f"{path}: truncated PNG image data ({len(raw)} of {expected} bytes)")
    return raw


def _unfilter(path, raw, height, row_bytes, bpp):
    """Undo the per-row PNG filters (0 none, 1 sub, 2 up, 3 average, 4 Paeth): (H, row_bytes) uint8."""
    lines = np.frombuffer(raw, np.uint8).reshape(height, row_bytes + 1)
    out = np.zeros((height, row_bytes), np.uint8)
    prev = np.zeros(row_bytes, np.int32)
    for y in range(height):
        kind, line = lines[y, 0], lines[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        elif kind in (1, 3, 4):
            cur = np.zeros(row_bytes, np.int32)
            for i in range(row_bytes):
                a = cur[i - bpp] if i >= bpp else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + prev[i]) >> 1
                else:
                    b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (line[i] + pred) & 0xFF
        else:
            raise ImageError(f"{path}: corrupt PNG (row {y} has filter type {kind})")
        out[y] = cur
        prev = cur
    return out


def _unpack(rows, width, channels, depth):
    """Rows of packed samples -> (H, W, channels) integers."""
    height = rows.shape[0]
    if depth == 8:
        return rows[:, : width * channels].reshape(height, width, channels)
    if depth == 16:
        wide = rows[:, : width * channels * 2].reshape(height, -1, 2).astype(np.uint16)
        return ((wide[..., 0] << 8) | wide[..., 1]).reshape(height, width, channels)
    bits = np.unpackbits(rows, axis=1)[:, : width * depth].reshape(height, width, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    return (bits * weights).sum(axis=2, dtype=np.uint8).reshape(height, width, 1)
