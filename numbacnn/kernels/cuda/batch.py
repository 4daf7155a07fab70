"""Building a training batch on CUDA: twin of ``kernels/cpu/batch.py``, one thread per output
element (the data set's images must already be on the device)."""

import functools

import numpy as np
from numba import cuda

from .. import shared_math
from .launch import launch_1d, require_device

_math = shared_math.compiled("cuda", cuda.jit(device=True))
_erased_value = _math.erased_value


@functools.cache
def _no_erasing():
    """An empty (0, 5) device array: 'erase nothing', made once (no device allocation per batch)."""
    return cuda.to_device(np.zeros((0, 5), np.int64))


@cuda.jit
def _gather(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase, erase_seed):
    batch, channels, height, width = out.shape
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x, y = e % width, (e // width) % height
        plane = e // (width * height)
        b, c = plane // channels, plane % channels
        src = indices[b]
        if c == 0 and x == 0 and y == 0:
            labels_out[b] = labels[src]
        if erase.shape[0] > 0 and erase[b, 0] <= y < erase[b, 1] and erase[b, 2] <= x < erase[b, 3]:
            value = _erased_value(erase_seed, erase[b, 4], c, y, x, channels, height, width)
            out[b, c, y, x] = value * scale[c] + shift[c]
            continue
        sy = y + offsets[b, 0] - pad
        sx = (width - 1 - x if flips[b] else x) + offsets[b, 1] - pad
        if sy < 0 or sy >= height or sx < 0 or sx >= width:
            out[b, c, y, x] = shift[c]
        else:
            out[b, c, y, x] = images[src, c, sy, sx] * scale[c] + shift[c]


def gather_batch(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase=None, erase_seed=0):
    """out (B, C, H, W) <- images[indices] scaled and shifted per channel, cropped at offsets - pad
    and mirrored where flips, random pixels in the rectangles erase (B, 5) when given;
    labels_out (B,) <- labels[indices]."""
    arrays = dict(out=out, labels_out=labels_out, images=images, labels=labels, indices=indices)
    require_device("gather_batch", scale=scale, shift=shift, offsets=offsets, flips=flips, **arrays)
    if erase is None:
        erase = _no_erasing()
    else:
        require_device("gather_batch", erase=erase)
    launch_1d(
        _gather, out.size, out, labels_out, images, labels, indices, scale, shift, offsets, flips, int(pad), erase,
        int(erase_seed),
    )  # fmt: skip
