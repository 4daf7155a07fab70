"""Building a training batch on CUDA: twin of ``kernels/cpu/batch.py``, one thread per output
element (the data set's images must already be on the device)."""

from numba import cuda

from .launch import launch_1d, require_device


@cuda.jit
def _gather(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad):
    batch, channels, height, width = out.shape
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        x, y = e % width, (e // width) % height
        plane = e // (width * height)
        b, c = plane // channels, plane % channels
        src = indices[b]
        if c == 0 and x == 0 and y == 0:
            labels_out[b] = labels[src]
        sy = y + offsets[b, 0] - pad
        sx = (width - 1 - x if flips[b] else x) + offsets[b, 1] - pad
        if sy < 0 or sy >= height or sx < 0 or sx >= width:
            out[b, c, y, x] = shift[c]
        else:
            out[b, c, y, x] = images[src, c, sy, sx] * scale[c] + shift[c]


def gather_batch(out, labels_out, images, labels, indices, scale, shift, offsets, flips, pad):
    """out (B, C, H, W) <- images[indices] scaled and shifted per channel, cropped at offsets - pad
    and mirrored where flips; labels_out (B,) <- labels[indices]."""
    arrays = dict(out=out, labels_out=labels_out, images=images, labels=labels, indices=indices)
    require_device("gather_batch", scale=scale, shift=shift, offsets=offsets, flips=flips, **arrays)
    launch_1d(_gather, out.size, out, labels_out, images, labels, indices, scale, shift, offsets, flips, int(pad))
