"""Data sets as uint8 arrays (N, C, H, W) + int64 labels, and their normalisation constants.

``load_dataset("fashion-mnist" | "mnist" | "cifar10" | "synthetic", ...)`` returns a
:class:`Dataset`. Images stay uint8 in memory; the loader normalises each batch as it gathers it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .idx import DataError, read_cifar_batches, read_idx
from .sources import locate, locate_all

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

NORMALISATION = {  # per-channel mean and std of the training images, scaled to [0, 1]
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

DATASET_NAMES = ("fashion-mnist", "mnist", "cifar10", "synthetic")


@dataclass
class Dataset:
    name: str
    train_images: np.ndarray  # (N, C, H, W) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple
    mean: tuple
    std: tuple
    source: dict = field(default_factory=dict)

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self):
        return len(self.classes)

    def validated(self):
        """self, after checking both splits (DataError naming the problem): training starts only
        on data that cannot fail later (an empty test split or test images of another size used
        to fail after a whole epoch)."""
        where = ", ".join(sorted(set(map(str, self.source.values())))) or self.name
        for split, images, labels in (
            ("training", self.train_images, self.train_labels),
            ("test", self.test_images, self.test_labels),
        ):
            if images.ndim != 4 or images.dtype != np.uint8:
                raise DataError(
                    f"{where}: {split} images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
                )
            if len(images) == 0:
                raise DataError(f"{where}: the {split} split is empty")
            if len(labels) != len(images):
                raise DataError(f"{where}: {len(images)} {split} images but {len(labels)} labels")
            if labels.min() < 0 or labels.max() >= self.num_classes:
                raise DataError(
                    f"{where}: {split} labels range from {labels.min()} to {labels.max()}, "
                    f"outside the {self.num_classes} classes"
                )
        if self.test_images.shape[1:] != self.train_images.shape[1:]:
            raise DataError(
                f"{where}: test images of shape {self.test_images.shape[1:]} differ from training images "
                f"of shape {self.train_images.shape[1:]}"
            )
        return self


def canonical_name(name: str) -> str:
    key = name.lower().replace("_", "-")
    aliases = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}
    key = aliases.get(key, key)
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASET_NAMES)}")
    return key


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    **synthetic_options,
) -> Dataset:
    """Load a data set by name (see module doc); ``synthetic_options`` go to :func:`synthetic`."""
    name = canonical_name(name)
    if name == "synthetic":
        return synthetic(**synthetic_options)
    if name == "cifar10":
        archive = locate(name, "cifar-10-binary.tar.gz", data_dir, download, progress)
        train = read_cifar_batches(archive, [f"data_batch_{i}.bin" for i in range(1, 6)])
        test = read_cifar_batches(archive, ["test_batch.bin"])
        paths = {"archive": str(archive)}
        classes = CIFAR_CLASSES
    else:
        paths = {f: str(p) for f, p in locate_all(name, data_dir, download, progress).items()}
        arrays = {f: read_idx(p) for f, p in paths.items()}
        train = _idx_pair(arrays, "train", paths)
        test = _idx_pair(arrays, "t10k", paths)
        classes = FASHION_CLASSES if name == "fashion-mnist" else tuple(str(i) for i in range(10))
    mean, std = NORMALISATION[name]
    return Dataset(name, train[0], train[1], test[0], test[1], classes, mean, std, paths).validated()


def _idx_pair(arrays, prefix, paths):
    images = arrays[f"{prefix}-images-idx3-ubyte.gz"]
    labels = arrays[f"{prefix}-labels-idx1-ubyte.gz"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{paths[f'{prefix}-images-idx3-ubyte.gz']}: {images.shape} images do not match {labels.shape} labels"
        )
    if labels.max(initial=0) > 9:
        raise DataError(f"{paths[f'{prefix}-labels-idx1-ubyte.gz']}: labels above 9; the file is corrupt")
    return images[:, None, :, :], labels.astype(np.int64)


# The synthetic set is built in memory as float32 before quantising: bound it well below RAM.
SYNTHETIC_MAX_BYTES = 1 << 30


def synthetic(train_size=2048, test_size=512, channels=1, size=28, num_classes=10, seed=0):
    """A deterministic, learnable data set of any shape: smooth class prototypes plus noise.

    Each class has a prototype made of a few random Gaussian blobs; an image is its class
    prototype, randomly shifted by up to 2 pixels, plus noise, quantised to uint8.
    """
    if min(train_size, test_size, channels, size, num_classes) < 1:
        raise ValueError("synthetic: sizes, channels and num_classes must be >= 1")
    if (train_size + test_size) * channels * size * size > SYNTHETIC_MAX_BYTES:
        raise ValueError(
            f"synthetic: {train_size} + {test_size} images of {channels}x{size}x{size} would take "
            f"{(train_size + test_size) * channels * size * size / 2**30:.1f} GiB (at most "
            f"{SYNTHETIC_MAX_BYTES / 2**30:.0f} GiB); use fewer images"
        )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    protos = np.zeros((num_classes, channels, size, size), np.float32)
    for k in range(num_classes):
        for c in range(channels):
            for _ in range(3):
                cy, cx = rng.uniform(0.2 * size, 0.8 * size, 2)
                r = rng.uniform(0.08 * size, 0.25 * size)
                protos[k, c] += rng.uniform(0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    protos /= protos.max(axis=(1, 2, 3), keepdims=True)

    def make(n):
        labels = rng.integers(0, num_classes, n).astype(np.int64)
        shifts = rng.integers(-2, 3, size=(n, 2))
        images = np.empty((n, channels, size, size), np.float32)
        for i in range(n):
            images[i] = np.roll(protos[labels[i]], tuple(shifts[i]), axis=(1, 2))
        images += rng.normal(0, 0.15, images.shape).astype(np.float32)
        return np.clip(images * 255, 0, 255).astype(np.uint8), labels

    train, test = make(train_size), make(test_size)
    classes = tuple(f"class{k}" for k in range(num_classes))
    return Dataset(
        "synthetic",
        train[0],
        train[1],
        test[0],
        test[1],
        classes,
        (0.25,) * channels,
        (0.3,) * channels,
        {"seed": seed},
    )


def subset(dataset: Dataset, classes=None, per_class=None) -> Dataset:
    """``dataset`` restricted to ``classes`` (indices into its classes, relabelled 0..k-1 in the
    order given) and to the first ``per_class`` training images of each class (the test set is
    kept whole for those classes). For transfer learning: pretrain on some classes, fine-tune on
    others from a few labelled images."""
    chosen = list(range(dataset.num_classes)) if classes is None else [int(c) for c in classes]
    bad = [c for c in chosen if not 0 <= c < dataset.num_classes]
    if bad or len(set(chosen)) != len(chosen) or not chosen:
        raise ValueError(
            f"classes must be distinct indices in 0..{dataset.num_classes - 1} of {dataset.name}, got {chosen}"
        )
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    relabel = np.full(dataset.num_classes, -1, np.int64)
    relabel[chosen] = np.arange(len(chosen))

    def keep(labels, limit):
        rows = [np.flatnonzero(labels == c)[:limit] for c in chosen]
        return np.sort(np.concatenate(rows))

    train = keep(dataset.train_labels, per_class)
    test = keep(dataset.test_labels, None)
    return Dataset(
        name=dataset.name,
        train_images=dataset.train_images[train],
        train_labels=relabel[dataset.train_labels[train]],
        test_images=dataset.test_images[test],
        test_labels=relabel[dataset.test_labels[test]],
        classes=tuple(dataset.classes[c] for c in chosen),
        mean=dataset.mean,
        std=dataset.std,
        source=dataset.source,
    )
