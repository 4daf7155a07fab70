"""What winograd_channels' passes share on their input side: the copy of an NCHW tensor into a
padded channels-last grid, and Winograd's input transform B' d B on vectors of channels.

Shapes: x (N, C, H, W); the grid xt (N, HP, WP, CP), CP the channels rounded up to whole vectors.
"""

from numba import njit, prange

from ..simd import LANES, vadd, vload, vstore, vsub


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def to_channels_last(xt, x, pad_h, pad_w):
    """xt (N, HP, WP, CP) = x (N, C, H, W) padded by (pad_h, pad_w), channels last, zero elsewhere.
    Written in order, read across the sample's planes (in L1): faster than the other way round."""
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    rows, cols, padded = xt.shape[1], xt.shape[2], xt.shape[3]
    zero = xt.dtype.type(0)
    for n in prange(x.shape[0]):
        planes = x[n].reshape(channels, height * width)
        for r in range(rows):
            iy = r - pad_h
            for q in range(cols):
                ix = q - pad_w
                pixel = xt[n, r, q]
                if 0 <= iy < height and 0 <= ix < width:
                    at = iy * width + ix
                    for c in range(channels):
                        pixel[c] = planes[c, at]
                    pixel[channels:] = zero
                else:
                    pixel[:padded] = zero


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def input_transform(v, at, plane, xt, base, row, col, channels):
    """v.flat[at + t plane + c] = (B' d B)[t] for c < channels (whole vectors), d the 4x4 inputs at
    xt.flat[base + i row + j col + c]. B as in winograd.py."""
    for cv in range(0, channels, LANES):
        b = base + cv
        d00, d01, d02, d03 = vload(xt, b), vload(xt, b + col), vload(xt, b + 2 * col), vload(xt, b + 3 * col)
        b += row
        d10, d11, d12, d13 = vload(xt, b), vload(xt, b + col), vload(xt, b + 2 * col), vload(xt, b + 3 * col)
        b += row
        d20, d21, d22, d23 = vload(xt, b), vload(xt, b + col), vload(xt, b + 2 * col), vload(xt, b + 3 * col)
        b += row
        d30, d31, d32, d33 = vload(xt, b), vload(xt, b + col), vload(xt, b + 2 * col), vload(xt, b + 3 * col)
        for i in range(4):  # row i of B' d, then times B
            if i == 0:
                e0, e1, e2, e3 = vsub(d00, d20), vsub(d01, d21), vsub(d02, d22), vsub(d03, d23)
            elif i == 1:
                e0, e1, e2, e3 = vadd(d10, d20), vadd(d11, d21), vadd(d12, d22), vadd(d13, d23)
            elif i == 2:
                e0, e1, e2, e3 = vsub(d20, d10), vsub(d21, d11), vsub(d22, d12), vsub(d23, d13)
            else:
                e0, e1, e2, e3 = vsub(d10, d30), vsub(d11, d31), vsub(d12, d32), vsub(d13, d33)
            t = at + 4 * i * plane + cv
            vstore(v, t, vsub(e0, e2))
            vstore(v, t + plane, vadd(e1, e2))
            vstore(v, t + 2 * plane, vsub(e2, e1))
            vstore(v, t + 3 * plane, vsub(e1, e3))


__all__ = ["input_transform", "to_channels_last"]
