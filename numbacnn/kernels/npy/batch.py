"""Building a training batch in NumPy: twin of ``kernels/cpu/batch.py``."""

import numpy as np

from .elementwise import hash_bits_at


def gather_batch(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad, erase=None, erase_seed=0):
    """out (B, C, H, W) <- images[indices] scaled and shifted per channel, cropped at offsets - pad
    and mirrored where flips, random pixels in the rectangles erase (B, 5) when given;
    labels_out (B,) <- labels[indices]."""
    batch, channels, height, width = out.shape
    labels_out[:] = labels[indices]
    scale, shift = scale.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    rows, cols = np.arange(height), np.arange(width)
    for b in range(batch):
        sy = rows + offsets[b, 0] - pad
        sx = (width - 1 - cols if flips[b] else cols) + offsets[b, 1] - pad
        inside = ((sy >= 0) & (sy < height))[:, None] & ((sx >= 0) & (sx < width))[None, :]
        image = images[indices[b]][:, np.clip(sy, 0, height - 1)][:, :, np.clip(sx, 0, width - 1)]
        out[b] = np.where(inside, image * scale + shift, shift)
        if erase is not None and erase[b, 1] > erase[b, 0] and erase[b, 3] > erase[b, 2]:
            y0, y1, x0, x1, position = (int(v) for v in erase[b])
            c, y, x = np.meshgrid(np.arange(channels), np.arange(y0, y1), np.arange(x0, x1), indexing="ij")
            index = ((position * channels + c) * height + y) * width + x
            values = hash_bits_at(erase_seed, index).astype(np.float32) * np.float32(255.0 / 16777216.0)
            out[b, :, y0:y1, x0:x1] = values * scale + shift
