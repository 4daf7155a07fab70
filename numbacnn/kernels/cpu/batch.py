"""Building a training batch on the CPU: gather, normalise and augment in one pass.

Shapes: images (N, C, H, W) uint8, labels (N,) int64; out (B, C, H, W) float, labels_out (B,),
indices (B,), scale and shift (C,), offsets (B, 2) in [0, 2 pad], flips (B,) bool.
"""

from numba import njit, prange


@njit(parallel=True, cache=True)
def gather_batch(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad):
    """out[b] = images[indices[b]] * scale + shift (per channel), shifted by offsets[b] - pad
    (shift alone outside the image: a zero pixel after normalisation), mirrored where flips[b];
    labels_out[b] = labels[indices[b]]."""
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
