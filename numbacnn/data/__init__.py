"""Data sets (Fashion-MNIST, MNIST, CIFAR-10 binary, synthetic, and a user's own image folders,
.npz and CSV files) and batching."""

from .datasets import DATASET_NAMES, Dataset, canonical_name, load_dataset, subset, synthetic
from .idx import DataError, read_idx, write_idx
from .loader import DataLoader
from .own import dataset_key, export_images, is_own_dataset, load_own
from .sources import SPECS, availability, cache_dir, find_local, locate, search_dirs

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "DataLoader",
    "Dataset",
    "SPECS",
    "availability",
    "cache_dir",
    "canonical_name",
    "dataset_key",
    "export_images",
    "is_own_dataset",
    "find_local",
    "load_dataset",
    "load_own",
    "locate",
    "read_idx",
    "search_dirs",
    "subset",
    "synthetic",
    "write_idx",
]
