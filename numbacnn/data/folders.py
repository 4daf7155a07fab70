"""Image folders as labelled file lists: ``PATH/train/<class>/*`` with ``PATH/test/<class>/*``, or
``PATH/<class>/*`` split by :func:`stratified_split`. Classes are the subfolder names, sorted;
files are found in each class folder and below it, by extension, in sorted order."""

from __future__ import annotations

import os
import stat

import numpy as np

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp")

__all__ = ["IMAGE_EXTENSIONS", "file_problem", "image_files", "scan_folder", "stratified_split"]

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))  # fmt: skip


def file_problem(path):
    """None when ``path`` is a regular file (after symbolic links), else why it cannot be read as
    an image: a message naming it. Only regular files are opened: a FIFO would block the reader
    forever, a device would stream without end."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:  # a dangling link, a loop of links, no permission
        return f"{path}: cannot read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"{path}: {kind}, not an image file (only regular files are read)"


def _subfolders(path):
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise DataError(f"cannot read the folder {path}: {e.strerror or e}") from None


def image_files(folder):
    """Every image file under ``folder`` (any depth, hidden entries skipped), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS) and f[0] != "."]
    return sorted(found)


def _class_files(split_dir, classes):
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(os.path.join(split_dir, name))
        if not files:
            raise DataError(
                f"{os.path.join(split_dir, name)}: the class folder holds no images "
                f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)})"
            )
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, np.int64)


def scan_folder(path):
    """(classes, (train paths, labels), (test paths, labels) or None) of the image folder ``path``;
    DataError for a missing folder, no class folders, an empty class or test classes that differ."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such folder")
    train_dir, test_dir = os.path.join(path, "train"), os.path.join(path, "test")
    split = os.path.isdir(train_dir)
    classes = _subfolders(train_dir if split else path)
    if not classes:
        layout = f"{path}/<class>/*.png (or {path}/train/<class>/* and {path}/test/<class>/*)"
        if image_files(path):
            raise DataError(f"{path}: images but no class folders; lay them out as {layout}")
        raise DataError(f"{path}: no images; an image folder is laid out as {layout}")
    train = _class_files(train_dir if split else path, classes)
    if not (split and os.path.isdir(test_dir)):
        return tuple(classes), train, None
    test_classes = _subfolders(test_dir)
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise DataError(
            f"{path}: the test split's classes differ from the training split's"
            + (f"; only in train: {', '.join(only_train)}" if only_train else "")
            + (f"; only in test: {', '.join(only_test)}" if only_test else "")
        )
    return tuple(classes), train, _class_files(test_dir, classes)


def stratified_split(labels, fraction, seed):
    """(train indices, test indices), sorted: about ``fraction`` of each class, chosen with a
    seeded generator, goes to the test split (at least one image of each class stays in training);
    DataError when no image is left for testing."""
    if not 0 < fraction < 1:
        raise DataError(f"--val-split must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = min(int(round(len(rows) * fraction)), len(rows) - 1)
        test.append(rng.permutation(rows)[:count])
    test = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    if len(test) == 0:
        raise DataError(
            f"--val-split {fraction} of {len(labels)} images leaves no test images; give more images, "
            "a larger --val-split, or a test split"
        )
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test
