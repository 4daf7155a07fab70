"""Decoding image files through Pillow (the optional extra ``numbacnn[images]``), one image or many
in parallel, into uint8 (C, S, S) arrays: the one preprocessing that training on a folder and
``numbacnn predict`` share.

Preprocessing: the file is decoded, converted to grey (Pillow's "L": ITU-R 601 luma) or RGB
(alpha dropped, palettes expanded), and resized to S x S with Pillow's bilinear filter (which
averages over the source pixels when shrinking). Images that are not square are stretched.

Many files are decoded by forked worker processes on Linux (Pillow's per-image work holds the
GIL), each writing its chunk straight into the caller's memory-mapped .npy, so nothing is copied
back; elsewhere they are decoded in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from ..errors import DataError
from .folders import file_problem
from .images import MAX_PIXELS

PILLOW_HINT = "reading image files needs Pillow: pip install 'numbacnn[images]'"
# Below this many files the workers' start-up costs more than it saves.
PARALLEL_MIN_FILES = 2000
CHUNK_FILES = 500
_GREY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N", "La")

__all__ = ["PILLOW_HINT", "decode_files", "decode_image", "grey_flags", "pillow"]


def pillow():
    """The ``PIL.Image`` module, or DataError naming the pip command."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(PILLOW_HINT) from None
    return Image


def _is_grey(image):
    if image.mode in _GREY_MODES:
        return True
    if image.mode == "P":
        palette = np.asarray(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
        return bool(np.all(palette[:, 0] == palette[:, 1]) and np.all(palette[:, 1] == palette[:, 2]))
    return False


def _why(error):
    if type(error).__name__ == "UnidentifiedImageError":  # its message repeats the path
        return "not an image format Pillow recognises"
    return str(error).strip() or type(error).__name__


def _unreadable(path, error):
    return f"{path}: cannot read the image ({_why(error)})"


def decode_image(path, size, channels):
    """The image file at ``path`` as uint8 (channels, size, size); DataError naming the file."""
    image_module = pillow()
    problem = file_problem(path)
    if problem is not None:
        raise DataError(problem)
    try:
        with image_module.open(path) as image:
            if image.size[0] * image.size[1] > MAX_PIXELS:
                raise DataError(f"{path}: {image.size[0]}x{image.size[1]} pixels, more than this reader decodes")
            return _convert(image_module, image, size, channels)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, image_module.DecompressionBombError) as e:
        raise DataError(_unreadable(path, e)) from None


def _convert(image_module, image, size, channels):
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit and float greys: Pillow's "L" conversion clips them, so scale to 8 bits here.
        pixels = np.asarray(image, dtype=np.float64)
        pixels = pixels / 257.0 if image.mode.startswith("I;16") or pixels.max(initial=0) > 255 else pixels
        image = image_module.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), image_module.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _scan_chunk(paths):
    """[(grey or None, error message or None)] for each file: header only, no decoding."""
    image_module = pillow()
    results = []
    for path in paths:
        problem = file_problem(path)
        if problem is not None:
            results.append((None, problem))
            continue
        try:
            with image_module.open(path) as image:
                results.append((_is_grey(image), None))
        except (OSError, ValueError, SyntaxError, EOFError, image_module.DecompressionBombError) as e:
            results.append((None, _unreadable(path, e)))
    return results


def _decode_chunk(out_path, start, paths, size, channels):
    """Decode ``paths`` into rows start.. of the .npy at ``out_path``; [(row, message)] of failures."""
    out = np.load(out_path, mmap_mode="r+")
    failures = []
    for row, path in enumerate(paths, start):
        try:
            out[row] = decode_image(path, size, channels)
        except DataError as e:
            failures.append((row, str(e)))
    out.flush()
    return failures


def _ignore_interrupts():
    # Ctrl-C reaches the whole process group; the parent alone handles it (and cleans up).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(workers):
    # Forked workers: "spawn" and "forkserver" re-run the caller's main module, which breaks any
    # script without an ``if __name__ == "__main__"`` guard. The workers only run Pillow and NumPy.
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_interrupts)


def _run_chunks(function, chunks, counts, progress, label):
    """Results of ``function(*chunk)`` for each chunk (in order), in worker processes when there
    are many files; ``progress(label, done, total)`` after each chunk (``counts``: its files)."""
    # Without fork (Windows, macOS) the files are decoded in this process.
    forkable = "fork" in multiprocessing.get_all_start_methods() and sys.platform.startswith("linux")
    workers = min(os.cpu_count() or 1, len(chunks)) if forkable else 1
    done, total, results = 0, sum(counts), [None] * len(chunks)
    if total < PARALLEL_MIN_FILES or workers < 2:
        for i, chunk in enumerate(chunks):
            results[i] = function(*chunk)
            done += counts[i]
            if progress:
                progress(label, done, total)
        return results
    with _pool(workers) as pool:
        futures = {pool.submit(function, *chunk): i for i, chunk in enumerate(chunks)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                done += counts[i]
                if progress:
                    progress(label, done, total)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def grey_flags(paths, progress=None):
    """(grey, failures): for each file whether Pillow reads it as grey (None when unreadable), and
    [(index, message)] for the files it cannot open."""
    chunks = [(paths[i : i + CHUNK_FILES],) for i in range(0, len(paths), CHUNK_FILES)]
    counts = [len(c[0]) for c in chunks]
    flags, failures = [], []
    for chunk_results in _run_chunks(_scan_chunk, chunks, counts, progress, f"scanning {len(paths)} images"):
        for grey, message in chunk_results:
            if message is not None:
                failures.append((len(flags), message))
            flags.append(grey)
    return flags, failures


def decode_files(out_path, paths, size, channels, progress=None):
    """Decode every file of ``paths`` into the uint8 .npy (N, channels, size, size) at
    ``out_path`` (created by the caller); returns [(index, message)] of the unreadable ones."""
    chunks = [(out_path, i, paths[i : i + CHUNK_FILES], size, channels) for i in range(0, len(paths), CHUNK_FILES)]
    counts = [len(c[2]) for c in chunks]
    results = _run_chunks(_decode_chunk, chunks, counts, progress, f"decoding {len(paths)} images")
    return sorted(f for chunk in results for f in chunk)
