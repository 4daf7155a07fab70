"""Image arrays from a .npz in Keras' ``mnist.npz`` layout (x_train, y_train, x_test, y_test) and
from a CSV in Kaggle's MNIST layout (a header row; the label, then the pixels of one image per
row), as uint8 (N, C, H, W) images and int64 labels. Every problem is a DataError naming the
file, and for a CSV the line."""

from __future__ import annotations

import csv
import math

import numpy as np

from ..errors import DataError
from ..formats.npz import read_npz

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Labels are class indices 0..K-1; a label this large is a broken file, not a data set (ImageNet-21k
# has about 22,000 classes). Refused before any per-class table is built.
MAX_CLASSES = 1_000_000
LUMA = np.asarray([0.299, 0.587, 0.114])  # RGB -> grey, as Pillow's "L" conversion

__all__ = ["LUMA", "MAX_CLASSES", "NPZ_KEYS", "read_csv_images", "read_npz_dataset", "to_nchw_uint8"]


def to_nchw_uint8(x, where):
    """Images (N, H, W), (N, H, W, C) or (N, C, H, W) (C in 1, 3, 4; alpha dropped), uint8 or
    numbers on 0..255 (or 0..1 floats), as uint8 (N, C, H, W)."""
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise DataError(f"{where}: images must be numbers, got {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        channels_last = x.shape[3] in (1, 3, 4) and (x.shape[1] not in (1, 3, 4) or x.shape[1] == x.shape[2])
        if channels_last:
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3, 4):
            raise DataError(f"{where}: images of shape {x.shape}: no axis of 1, 3 or 4 channels")
        if x.shape[1] == 4:
            x = x[:, :3]
    else:
        raise DataError(f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    values = x.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{where}: images hold NaN or infinite values")
    if x.dtype.kind == "f" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    low, high = values.min(initial=0), values.max(initial=0)
    if low < 0 or high > 255.5:
        raise DataError(f"{where}: pixel values range from {low:g} to {high:g}, outside 0..255 (or 0..1)")
    return np.ascontiguousarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def labels_of(y, where, count):
    """Integer labels (N,) from ``y`` ((N,) or (N, 1), integer-valued)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "uif":
        raise DataError(f"{where}: labels must be integers of shape (N,), got {y.dtype} {y.shape}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DataError(f"{where}: labels must be whole numbers")
    if len(y) != count:
        raise DataError(f"{where}: {count} images but {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: label {int(y.min())} is out of range (labels start at 0)")
    if len(y) and y.max() >= MAX_CLASSES:
        raise DataError(
            f"{where}: label {y.max():.0f} is out of range: labels are class indices 0..K-1, "
            f"with at most {MAX_CLASSES:,} classes"
        )
    return y.astype(np.int64)


def read_npz_dataset(path):
    """((x_train, y_train), (x_test, y_test)) of a Keras-layout .npz, images uint8 (N, C, H, W)."""
    # The checkpoint reader's checks: a member's claimed shape is compared with the bytes behind it
    # before anything of that size is allocated.
    arrays = read_npz(path, DataError, ".npz data set", keys=NPZ_KEYS)
    splits = []
    for split in ("train", "test"):
        images = to_nchw_uint8(arrays[f"x_{split}"], f"{path}: x_{split}")
        splits.append((images, labels_of(arrays[f"y_{split}"], f"{path}: y_{split}", len(images))))
    return tuple(splits)


def _first_bad_line(path, columns):
    """The DataError for the first row of ``path`` that is not ``columns`` numbers (cells as the
    csv module reads them: quoted or not)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for number, cells in enumerate(csv.reader(f), start=1):
            if number == 1 or not any(cell.strip() for cell in cells):
                continue
            if len(cells) != columns:
                return DataError(f"{path} line {number}: {len(cells)} cells, but the header has {columns}")
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    return DataError(f"{path} line {number}, column {column}: {cell.strip()[:20]!r} is not a number")
    return DataError(f"{path}: cannot be read as a table of numbers")


def _square(path, pixels):
    side = math.isqrt(pixels)
    if side * side == pixels:
        return 1, side
    side = math.isqrt(pixels // 3)
    if pixels % 3 == 0 and side * side * 3 == pixels:
        return 3, side
    raise DataError(f"{path}: {pixels} pixel columns are not a square image (H x W, or H x W x 3)")


def read_csv_images(path):
    """(images uint8 (N, C, S, S), labels) of a Kaggle-layout CSV: a header row, then per row the
    label and S x S (or S x S x 3, channels last) pixels on 0..255; cells quoted or not, as the
    csv module reads them."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, csv.Error):
        raise DataError(f"{path}: not a text CSV file") from None
    columns = len(header)
    if columns < 2:
        raise DataError(f"{path}: the header names {columns} column(s); expected a label and pixel columns")
    channels, side = _square(path, columns - 1)
    try:
        # Cells as the csv module reads them (RFC 4180: "1" is 1), parsed in C.
        table = np.loadtxt(
            path, delimiter=",", quotechar='"', skiprows=1, dtype=np.float32, ndmin=2, encoding="utf-8-sig"
        )
    except (ValueError, UnicodeDecodeError):
        raise _first_bad_line(path, columns) from None
    if table.shape[0] == 0:
        raise DataError(f"{path}: no rows of images after the header")
    if table.shape[1] != columns:
        raise _first_bad_line(path, columns)
    labels = labels_of(table[:, 0], path, len(table))
    images = table[:, 1:].reshape(len(table), side, side, channels)
    return to_nchw_uint8(images if channels == 3 else images[..., 0], path), labels
