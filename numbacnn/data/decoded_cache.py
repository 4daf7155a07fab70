"""The decoded-image cache: an image folder is decoded once, and a CSV parsed once; later runs
memory-map the result.

An entry lives in ``<user cache>/numbacnn/decoded/<key>/`` (images.npy, labels.npy, meta.json).
The key hashes the file list (paths, labels, sizes, modification times) and the preprocessing
(size, channels, whether bad images are skipped), so a changed, added or removed file, or another
--image-size, gives another entry; a CSV's key is its path, size and modification time. An
entry is built in a temporary folder beside it and renamed
into place when complete: a crash or Ctrl-C leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from ..errors import DataError
from .arrays import read_csv_images
from .decode import decode_files, grey_flags
from .folders import file_problem
from .sources import cache_dir

FORMAT_VERSION = 1

__all__ = ["cache_root", "csv_cached", "decode_cached"]


def cache_root():
    return cache_dir() / "decoded"


def _stat(path, skip_bad):
    """(size, mtime) of a regular file; (None, None) for one that cannot be read when ``skip_bad``
    (the decoder then counts it), else DataError naming it."""
    problem = file_problem(path)
    if problem is None:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    if skip_bad:
        return None, None
    raise DataError(f"{problem}; --skip-bad-images skips and counts such files")


def _key(paths, labels, size, channels, skip_bad):
    files = [[p, int(label), *_stat(p, skip_bad)] for p, label in zip(paths, labels)]
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


def _entry(key, build):
    """(images, labels, meta) of the cache entry ``key``, first built by ``build(folder)`` (which
    writes images.npy, labels.npy and meta.json there) when it is missing or damaged. A build goes
    into a temporary folder renamed into place when complete: nothing is ever half-written."""
    root = cache_root()
    entry = root / key
    loaded = _load(entry)
    if loaded is not None:
        return loaded
    shutil.rmtree(entry, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".partial-{key}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        build(partial)
        try:
            os.replace(partial, entry)
        except OSError:  # another process finished the same entry first
            pass
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    loaded = _load(entry)
    if loaded is None:
        raise DataError(f"the decoded-image cache {entry} could not be written or read back")
    return loaded


def decode_cached(paths, labels, size, channels=None, skip_bad=False, progress=None):
    """(images uint8 (M, C, size, size) memory-mapped, labels (M,), kept indices (M,), bad
    [(index, message)]) for the image files ``paths`` with ``labels``; ``channels`` None picks 1
    when every image is grey, else 3. M < N only when ``skip_bad`` drops unreadable files."""
    key = _key(paths, labels, size, channels, skip_bad)
    loaded = _load(cache_root() / key)
    if loaded is None and channels is not None:  # an entry whose channels were picked by its images
        auto = _load(cache_root() / _key(paths, labels, size, None, skip_bad))
        loaded = auto if auto is not None and auto[2].get("channels") == channels else None
    if loaded is None:
        loaded = _entry(key, lambda folder: _build(folder, list(paths), labels, size, channels, skip_bad, progress))
    images, labels, meta = loaded
    return images, labels, np.asarray(meta["kept"], np.int64), [tuple(f) for f in meta["bad"]]


def _parse_csv(folder, path):
    images, labels = read_csv_images(path)
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    with open(folder / "meta.json", "w") as f:
        json.dump({"count": len(images), "csv": path}, f)


def csv_cached(path, progress=None):
    """(images uint8 (N, C, S, S) memory-mapped, labels (N,)) of the Kaggle-layout CSV at ``path``
    (arrays.read_csv_images), parsed once: later runs map the arrays, keyed by the file's path,
    size and modification time. ``progress(label, done, total)`` before and after a parse."""
    path = os.path.abspath(path)
    st = os.stat(path)
    text = json.dumps({"version": FORMAT_VERSION, "csv": path, "size": st.st_size, "mtime": st.st_mtime_ns})

    def build(folder):
        label = f"parsing {os.path.basename(path)} ({st.st_size / 1e6:.0f} MB, once: later runs read the cache)"
        if progress:
            progress(label, 0, 1)
        _parse_csv(folder, path)
        if progress:
            progress(label, 1, 1)

    images, labels, _ = _entry("csv-" + hashlib.sha256(text.encode()).hexdigest()[:40], build)
    return images, labels
