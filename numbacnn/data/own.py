"""A user's own data as a :class:`Dataset`: an image folder, a Keras-layout .npz or a Kaggle-layout
CSV (see folders.py and arrays.py for the layouts).

Preprocessing is recorded in the Dataset (and so in every checkpoint trained on it): image size
and channels in its image shape, and the per-channel mean and std computed from the training
images. Class names are the folder names; for arrays, the labels "0" .. "K-1".
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError
from .arrays import LUMA, read_npz_dataset
from .datasets import DATASET_NAMES, Dataset, canonical_name
from .decode import pillow
from .decoded_cache import csv_cached, decode_cached
from .folders import file_problem, scan_folder, stratified_split

__all__ = ["dataset_key", "export_images", "is_own_dataset", "load_own", "normalisation"]


def is_own_dataset(value):
    """Whether the --dataset value names a path (a folder, .npz or .csv) rather than a data set name."""
    value = os.fspath(value)
    return os.path.exists(value) or value.lower().endswith((".npz", ".csv")) or os.sep in value


def dataset_key(value):
    """The canonical name of a named data set, or the absolute path of a user's data set;
    ValueError for neither."""
    try:
        return canonical_name(value)
    except ValueError:
        if is_own_dataset(value):
            return os.path.abspath(os.fspath(value))
        raise ValueError(
            f"unknown data set {value!r}; give one of {', '.join(DATASET_NAMES)}, "
            "or the path of an image folder, a .npz or a .csv file"
        ) from None


def normalisation(images, chunk=4096):
    """Per-channel (mean, std) of uint8 images (N, C, H, W) scaled to [0, 1], in float64 chunks."""
    channels = images.shape[1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk], np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        squares += np.square(block).sum(axis=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0))
    return tuple(round(float(m), 6) for m in mean), tuple(round(max(float(s), 1e-3), 6) for s in std)


def _resize(images, size):
    """uint8 (N, C, H, W) -> (N, C, size, size) with Pillow's bilinear filter (as image folders)."""
    if images.shape[2] == images.shape[3] == size:
        return images
    image_module = pillow()
    out = np.empty((len(images), images.shape[1], size, size), np.uint8)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            resized = image_module.fromarray(plane, "L").resize((size, size), image_module.Resampling.BILINEAR)
            out[i, c] = np.asarray(resized)
    return out


def _with_channels(images, channels):
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 1:  # RGB -> grey by luma, as Pillow converts image files
        grey = np.tensordot(images.astype(np.float64), LUMA, axes=([1], [0]))
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[:, None]
    return np.ascontiguousarray(np.repeat(images, 3, axis=1))


def _prepare(images, image_size, channels, where):
    if images.shape[2] != images.shape[3] and image_size is None:
        raise DataError(
            f"{where}: images of {images.shape[2]}x{images.shape[3]}; give --image-size to make them square"
        )
    images = _resize(images, image_size) if image_size else images
    return _with_channels(images, channels)


def _check_labels(train_labels, test_labels, where):
    classes = int(train_labels.max()) + 1
    if classes > len(train_labels):
        raise DataError(
            f"{where}: training label {classes - 1} means {classes:,} classes, more than the "
            f"{len(train_labels):,} training images: labels must be class indices 0..K-1"
        )
    if len(test_labels) and test_labels.max() >= classes:
        raise DataError(
            f"{where}: test label {int(test_labels.max())} is out of range: the training labels are 0..{classes - 1}"
        )
    return tuple(str(k) for k in range(classes))


def _check_file(path):
    """DataError unless ``path`` is a regular file (a FIFO named data.csv would block the reader)."""
    problem = file_problem(path)
    if problem is not None:
        raise DataError(problem)


def _from_arrays(path, options, progress):
    if path.lower().endswith(".npz"):
        (x_train, y_train), (x_test, y_test) = read_npz_dataset(path)
        source = {"npz": path}
    else:
        x_train, y_train = csv_cached(path, progress)
        source = {"csv": path}
        if options.get("test_data"):
            _check_file(options["test_data"])
            x_test, y_test = csv_cached(options["test_data"], progress)
            source["test_csv"] = options["test_data"]
        else:
            train, test = stratified_split(y_train, options.get("val_split") or 0.1, options.get("seed", 0))
            x_test, y_test = x_train[test], y_train[test]
            x_train, y_train = x_train[train], y_train[train]
    if len(x_train) == 0:
        raise DataError(f"{path}: no training images")
    size, channels = options.get("image_size"), options.get("channels")
    x_train = _prepare(x_train, size, channels, path)
    x_test = _prepare(x_test, size, channels, path)
    classes = _check_labels(y_train, y_test, path)
    return x_train, y_train, x_test, y_test, classes, source


def _from_folder(path, options, progress):
    classes, (paths, labels), test = scan_folder(path)
    if test is None:
        train_rows, test_rows = stratified_split(labels, options.get("val_split") or 0.1, options.get("seed", 0))
    else:
        train_rows = np.arange(len(paths))
        test_rows = np.arange(len(paths), len(paths) + len(test[0]))
        paths, labels = paths + test[0], np.concatenate([labels, test[1]])
    images, labels, kept, bad = decode_cached(
        paths, labels, options["image_size"], options.get("channels"), bool(options.get("skip_bad_images")), progress
    )
    # Rows of the kept images: the split's rows among the files, mapped past the skipped ones.
    position = np.full(len(paths), -1)
    position[kept] = np.arange(len(kept))
    train_rows, test_rows = position[train_rows], position[test_rows]
    train_rows, test_rows = train_rows[train_rows >= 0], test_rows[test_rows >= 0]
    for label, name in enumerate(classes):
        if not np.any(labels[train_rows] == label):
            raise DataError(f"{path}: class {name!r} has no readable training images")

    def rows(r):  # contiguous rows stay memory-mapped views
        return images[r[0] : r[-1] + 1] if len(r) and r[-1] - r[0] + 1 == len(r) else images[r]

    source = {"folder": path, "bad_images": len(bad)}
    return rows(train_rows), labels[train_rows], rows(test_rows), labels[test_rows], classes, source


def load_own(path, progress=None, **options):
    """The data set at ``path`` (folder, .npz or .csv). Options: image_size (required for folders,
    optional for arrays: resized when given), channels (1 or 3; None: a folder's images decide,
    arrays keep theirs), val_split (0.1), test_data (a CSV's test file), skip_bad_images, seed."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        parts = _from_folder(path, options, progress)
    elif not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    elif path.lower().endswith((".npz", ".csv")):
        _check_file(path)
        parts = _from_arrays(path, options, progress)
    else:
        raise DataError(f"{path}: not a data set (give an image folder, a .npz or a .csv file)")
    x_train, y_train, x_test, y_test, classes, source = parts
    mean, std = normalisation(x_train)
    return Dataset(path, x_train, y_train, x_test, y_test, classes, mean, std, source).validated()


def _folder_name(name):
    safe = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in str(name)).strip(" .")
    return safe or "class"


def export_images(dataset, folder, per_class=None, splits=("train", "test")):
    """Write ``dataset``'s images as PNG files in ``folder/<split>/<class>/<index>.png`` (the image
    folder layout ``--dataset`` reads), at most ``per_class`` per class and split. Returns the
    number of files written."""
    image_module = pillow()
    written = 0
    for split in splits:
        images, labels = getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")
        for label, name in enumerate(dataset.classes):
            target = os.path.join(folder, split, _folder_name(name))
            os.makedirs(target, exist_ok=True)
            for index in np.flatnonzero(labels == label)[:per_class]:
                image = images[index]
                mode, pixels = ("L", image[0]) if image.shape[0] == 1 else ("RGB", image.transpose(1, 2, 0))
                image_module.fromarray(np.ascontiguousarray(pixels), mode).save(os.path.join(target, f"{index}.png"))
                written += 1
    return written
