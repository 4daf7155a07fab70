"""Image reading (numbacnn.data.images): every PNG filter, colour type and bit depth; PGM/PPM; .npy;
sizes checked from the header before decoding; truncated and hostile files refused, never a hang."""

import struct
import time
import zlib

import numpy as np
import pytest

from numbacnn.data.images import read_image, read_npy, read_png, read_pnm
from numbacnn.errors import ImageError


# ------------------------------------------------------------------ a small PNG writer for tests
def _chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filter_row(kind, line, prev, bpp):
    """PNG filter ``kind`` applied to one row of bytes (ints), the inverse of what readers undo."""
    out = []
    for i, x in enumerate(line):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = a
        elif kind == 2:
            pred = b
        elif kind == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - pred) & 0xFF)
    return out


def png_bytes(rows, width, height, depth, color, filters, palette=None, interlace=0, bpp=1):
    """A PNG from packed rows (H, row_bytes) uint8, filter filters[y % len] on row y."""
    raw = bytearray()
    prev = [0] * rows.shape[1]
    for y in range(height):
        line = [int(v) for v in rows[y]]
        kind = filters[y % len(filters)]
        raw.append(kind)
        raw.extend(_filter_row(kind, line, prev, bpp))
        prev = line
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))
    if palette is not None:
        out += _chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    return out + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")


def _write(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    return str(path)


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_every_filter_type_rgb(tmp_path, kind, rng):
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = _write(tmp_path, "a.png", png_bytes(img.reshape(5, -1), 7, 5, 8, 2, [kind], bpp=3))
    np.testing.assert_array_equal(read_png(path), img.transpose(2, 0, 1).astype(np.float32))


def test_mixed_filters_grey_alpha_and_rgba(tmp_path, rng):
    for color, ch in ((4, 2), (6, 4)):
        img = rng.integers(0, 256, (6, 4, ch), dtype=np.uint8)
        path = _write(tmp_path, f"c{color}.png", png_bytes(img.reshape(6, -1), 4, 6, 8, color, [0, 1, 2, 3, 4], bpp=ch))
        np.testing.assert_array_equal(read_png(path), img.transpose(2, 0, 1))


@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
def test_every_grey_bit_depth(tmp_path, depth, rng):
    h, w = 3, 11
    top = (1 << depth) - 1
    values = rng.integers(0, top + 1, (h, w))
    if depth == 16:
        rows = values.astype(">u2").view(np.uint8).reshape(h, -1)
        bpp = 2
    elif depth == 8:
        rows, bpp = values.astype(np.uint8), 1
    else:
        bits = ((values[..., None] >> np.arange(depth - 1, -1, -1)) & 1).reshape(h, -1).astype(np.uint8)
        rows, bpp = np.packbits(bits, axis=1), 1
    path = _write(tmp_path, "g.png", png_bytes(rows, w, h, depth, 0, [4, 1, 3], bpp=bpp))
    np.testing.assert_allclose(read_png(path)[0], values * 255.0 / top, rtol=1e-6)


def test_sixteen_bit_rgb_and_palette(tmp_path, rng):
    values = rng.integers(0, 65536, (2, 3, 3))
    rows = values.astype(">u2").view(np.uint8).reshape(2, -1)
    path = _write(tmp_path, "rgb16.png", png_bytes(rows, 3, 2, 16, 2, [1, 4], bpp=6))
    np.testing.assert_allclose(read_png(path), values.transpose(2, 0, 1) * 255.0 / 65535, rtol=1e-6)
    palette = rng.integers(0, 256, (4, 3))
    index = rng.integers(0, 4, (3, 5))
    bits = ((index[..., None] >> np.array([1, 0])) & 1).reshape(3, -1).astype(np.uint8)
    path = _write(tmp_path, "pal.png", png_bytes(np.packbits(bits, axis=1), 5, 3, 2, 3, [0], palette=palette))
    np.testing.assert_array_equal(read_png(path), palette[index].transpose(2, 0, 1))


def test_agrees_with_pillow_on_its_own_files(tmp_path, rng):
    Image = pytest.importorskip("PIL.Image")
    for mode in ("L", "RGB", "RGBA", "LA", "1", "P"):
        img = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)).convert(mode)
        path = str(tmp_path / f"{mode}.png")
        img.save(path)
        want = np.asarray(img.convert("RGBA" if "A" in mode else ("L" if mode in ("L", "1") else "RGB")))
        got = read_png(path)
        if mode == "LA":
            want = np.asarray(img)
        want = want[..., None] if want.ndim == 2 else want
        np.testing.assert_array_equal(got, want.transpose(2, 0, 1).astype(np.float32), err_msg=mode)


def test_size_is_checked_from_the_header_before_decoding(tmp_path):
    """A small file declaring 20000x20000 is refused at once (it took 98 s and 2.4 GB before);
    one declaring 100000x100000 with no expected size is refused too (it was a MemoryError)."""
    small = png_bytes(np.zeros((1, 1), np.uint8), 1, 1, 8, 0, [0])
    one_by_one = struct.pack(">II", 1, 1)
    start = time.perf_counter()
    big = _write(tmp_path, "big.png", small.replace(one_by_one, struct.pack(">II", 20000, 20000), 1))
    with pytest.raises(ImageError, match="20000x20000 pixels.*expects 28x28"):
        read_image(big, (1, 28, 28))
    huge = _write(tmp_path, "huge.png", small.replace(one_by_one, struct.pack(">II", 100000, 100000), 1))
    with pytest.raises(ImageError, match="more than this reader decodes"):
        read_png(huge)
    assert time.perf_counter() - start < 5


def test_decompression_bomb_inflates_only_the_declared_size(tmp_path):
    """50 MB of zeros behind a 4x4 header: the reader inflates the 20 bytes the image needs."""
    payload = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0))
    payload += _chunk(b"IDAT", zlib.compress(b"\x00" * 50_000_000)) + _chunk(b"IEND", b"")
    start = time.perf_counter()
    img = read_png(_write(tmp_path, "bomb.png", payload))
    assert img.shape == (1, 4, 4) and not img.any()
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("cut", [0, 5, 8, 20, 33, 40, -13, -1])
def test_truncated_png_is_a_clear_error(tmp_path, cut, rng):
    img = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    full = png_bytes(img, 4, 4, 8, 0, [4])
    with pytest.raises(ImageError):
        read_png(_write(tmp_path, "t.png", full[:cut]))


def test_interlaced_and_bad_headers(tmp_path):
    rows = np.zeros((2, 2), np.uint8)
    with pytest.raises(ImageError, match="interlaced"):
        read_png(_write(tmp_path, "i.png", png_bytes(rows, 2, 2, 8, 0, [0], interlace=1)))
    with pytest.raises(ImageError, match="bit depth 3"):
        read_png(_write(tmp_path, "d.png", png_bytes(rows, 2, 2, 3, 0, [0])))
    bad_filter = png_bytes(rows, 2, 2, 8, 0, [0])
    with pytest.raises(ImageError, match="filter type 7"):
        raw = zlib.compress(b"\x07\x00\x00\x00\x00\x00")
        start = bad_filter.index(b"IDAT") - 4
        read_png(_write(tmp_path, "f.png", bad_filter[:start] + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")))


# ------------------------------------------------------------------ PGM / PPM
@pytest.mark.parametrize("payload", [b"", b"P5", b"P5\n28 28", b"P5\n# only a comment", b"P5\n28 28\n255"])
def test_empty_or_header_only_pgm_fails_fast(tmp_path, payload):
    """These hung forever at 100% CPU before (the header loop never ended at end of file)."""
    start = time.perf_counter()
    with pytest.raises(ImageError):
        read_pnm(_write(tmp_path, "e.pgm", payload))
    assert time.perf_counter() - start < 2


def test_pgm_ppm_8_and_16_bit(tmp_path, rng):
    grey = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    path = _write(tmp_path, "g.pgm", b"P5\n# made by a test\n4 3\n255\n" + grey.tobytes())
    np.testing.assert_array_equal(read_pnm(path)[0], grey)
    rgb = rng.integers(0, 1024, (2, 2, 3))
    path = _write(tmp_path, "c.ppm", b"P6 2 2 1023\n" + rgb.astype(">u2").tobytes())
    np.testing.assert_allclose(read_pnm(path), rgb.transpose(2, 0, 1) * 255 / 1023, rtol=1e-6)
    with pytest.raises(ImageError, match="expects 28x28"):
        read_pnm(_write(tmp_path, "big.pgm", b"P5 100000 100000 255\n"), (28, 28))
    with pytest.raises(ImageError, match="truncated"):
        read_pnm(_write(tmp_path, "short.pgm", b"P5 4 3 255\n" + b"\0" * 5))


# ------------------------------------------------------------------ npy and layout
def test_npy_shape_checked_before_load_and_layouts(tmp_path, rng):
    path = str(tmp_path / "x.npy")
    np.save(path, rng.integers(0, 256, (28, 28)).astype(np.uint8))
    assert read_image(path, (1, 28, 28)).shape == (1, 28, 28)
    with pytest.raises(ImageError, match="expects"):
        read_npy(path, (3, 32, 32))
    np.save(path, np.array(["a", "b"]))
    with pytest.raises(ImageError, match="not numbers"):
        read_npy(path)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    png = _write(tmp_path, "rgb.png", png_bytes(rgb.reshape(5, -1), 6, 5, 8, 2, [0], bpp=3))
    np.testing.assert_allclose(read_image(png, (1, 5, 6))[0], rgb.mean(axis=2), rtol=1e-6)
    assert read_image(png, (3, 5, 6)).dtype == np.float32
    with pytest.raises(ImageError, match="unsupported image type"):
        read_image(str(tmp_path / "x.jpg"), (1, 28, 28))
    with pytest.raises(ImageError, match="cannot read"):
        read_image(str(tmp_path / "missing.png"), (1, 28, 28))
