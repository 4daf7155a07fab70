"""Building a training batch on the CPU: gather, normalise and augment in one pass.

Shapes: images (N, C, H, W) uint8, labels (N,) int64; out (B, C, H, W) float, labels_out (B,),
indices (B,), scale and shift (C,), offsets (B, 2) in [0, 2 pad], flips (B,) bool; erase (B, 5)
int64 rows (y0, y1, x0, x1, position) or None: random erasing of out's rectangle [y0, y1) x
[x0, x1) (empty when y0 == y1), its pixels drawn from ``erase_seed`` and the image's position in
its global batch (``shared_math.erased_value``).
"""

import numpy as np
from numba import njit, prange

from .. import shared_math

_math = shared_math.compiled("cpu", njit(inline="always"))
_erased_value = _math.erased_value
_NO_ERASING = np.zeros((0, 5), np.int64)


@njit(parallel=True, cache=True)
def _gather(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase, erase_seed):
    batch, channels, height, width = out.shape
    for b in prange(batch):
        src = indices[b]
        labels_out[b] = labels[src]
        dy = offsets[b, 0] - pad
        dx = offsets[b, 1] - pad
        for c in range(channels):
            for y in range(height):
                sy = y + dy
                for x in range(width):
                    sx = (width - 1 - x if flips[b] else x) + dx
                    if sy < 0 or sy >= height or sx < 0 or sx >= width:
                        out[b, c, y, x] = shift[c]
                    else:
                        out[b, c, y, x] = images[src, c, sy, sx] * scale[c] + shift[c]
        if erase.shape[0] > 0:
            y0, y1, x0, x1, position = erase[b, 0], erase[b, 1], erase[b, 2], erase[b, 3], erase[b, 4]
            for c in range(channels):
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        value = _erased_value(erase_seed, position, c, y, x, channels, height, width)
                        out[b, c, y, x] = value * scale[c] + shift[c]


def gather_batch(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase=None, erase_seed=0):
    """out[b] = images[indices[b]] * scale + shift (per channel), shifted by offsets[b] - pad
    (shift alone outside the image: a zero pixel after normalisation), mirrored where flips[b],
    then random pixels in the rectangle erase[b] (when given); labels_out[b] = labels[indices[b]]."""
    erase = _NO_ERASING if erase is None else erase
    _gather(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase, int(erase_seed))
