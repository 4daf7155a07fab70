"""The decoded-image cache: an image folder is decoded once, and later runs memory-map the result.

An entry lives in ``<user cache>/numbacnn/decoded/<key>/`` (images.npy, labels.npy, meta.json).
The key hashes the file list (paths, labels, sizes, modification times) and the preprocessing
(size, channels, whether bad images are skipped), so a changed, added or removed file, or another
--image-size, gives another entry. An entry is built in a temporary folder beside it and renamed
into place when complete: a crash or Ctrl-C leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from ..errors import DataError
from .decode import decode_files, grey_flags
from .sources import cache_dir

FORMAT_VERSION = 1

__all__ = ["cache_root", "decode_cached"]


def cache_root():
    return cache_dir() / "decoded"


def _stat(path):
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    return st.st_size, st.st_mtime_ns


def _key(paths, labels, size, channels, skip_bad):
    files = [[p, int(label), *_stat(p)] for p, label in zip(paths, labels)]
    text = json.dumps(
        {"version": FORMAT_VERSION, "size": size, "channels": channels, "skip_bad": skip_bad, "files": files}
    )
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _load(entry):
    """(images, labels, meta) of a complete entry, or None when it is missing or damaged."""
    try:
        with open(entry / "meta.json") as f:
            meta = json.load(f)
        images = np.load(entry / "images.npy", mmap_mode="c")  # copy-on-write: writable, never written back
        labels = np.load(entry / "labels.npy")
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels) or meta.get("count") != len(images):
        return None
    return images, labels, meta


def _bad_images_error(failures, total):
    more = f" ({len(failures) - 1} more of the {total} images are bad too)" if len(failures) > 1 else ""
    return DataError(f"{failures[0][1]}{more}; --skip-bad-images skips and counts them")


def _build(folder, paths, labels, size, channels, skip_bad, progress):
    """Decode into ``folder``; returns the meta dict."""
    failures = []
    if channels is None:  # 1 when every image is grey, else 3 (headers only: nothing decoded)
        flags, failures = grey_flags(paths, progress)
        if failures and not skip_bad:
            raise _bad_images_error(failures, len(paths))
        channels = 1 if all(f for f in flags if f is not None) else 3
    out_path = os.fspath(folder / "images.npy")
    out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.uint8, shape=(len(paths), channels, size, size))
    del out  # the decoders write through their own maps
    failures = sorted(set(failures) | set(decode_files(out_path, paths, size, channels, progress)))
    if failures and not skip_bad:
        raise _bad_images_error(failures, len(paths))
    keep = np.ones(len(paths), bool)
    keep[[i for i, _ in failures]] = False
    if failures:  # compact the good rows into a new file
        images = np.load(out_path, mmap_mode="r")
        kept = np.lib.format.open_memmap(
            os.fspath(folder / "kept.npy"), mode="w+", dtype=np.uint8, shape=(int(keep.sum()), *images.shape[1:])
        )
        kept[:] = images[keep]
        kept.flush()
        del images, kept
        os.replace(folder / "kept.npy", out_path)
    np.save(folder / "labels.npy", np.asarray(labels, np.int64)[keep])
    meta = {"count": int(keep.sum()), "channels": channels, "kept": np.flatnonzero(keep).tolist(), "bad": failures}
    with open(folder / "meta.json", "w") as f:
        json.dump(meta, f)
    return meta


def decode_cached(paths, labels, size, channels=None, skip_bad=False, progress=None):
    """(images uint8 (M, C, size, size) memory-mapped, labels (M,), kept indices (M,), bad
    [(index, message)]) for the image files ``paths`` with ``labels``; ``channels`` None picks 1
    when every image is grey, else 3. M < N only when ``skip_bad`` drops unreadable files."""
    root = cache_root()
    entry = root / _key(paths, labels, size, channels, skip_bad)
    loaded = _load(entry)
    if loaded is None and channels is not None:  # an entry whose channels were picked by its images
        auto = _load(root / _key(paths, labels, size, None, skip_bad))
        loaded = auto if auto is not None and auto[2].get("channels") == channels else None
    if loaded is None:
        shutil.rmtree(entry, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        partial = root / f".partial-{entry.name}-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            _build(partial, list(paths), labels, size, channels, skip_bad, progress)
            try:
                os.replace(partial, entry)
            except OSError:  # another process finished the same entry first
                pass
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        loaded = _load(entry)
        if loaded is None:
            raise DataError(f"the decoded-image cache {entry} could not be written or read back")
    images, labels, meta = loaded
    return images, labels, np.asarray(meta["kept"], np.int64), [tuple(f) for f in meta["bad"]]
