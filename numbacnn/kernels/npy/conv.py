"""2-D convolution in NumPy: im2col by one strided slice per tap, then stacked ``np.matmul``s
(one small GEMM per sample and group) that write straight into NCHW arrays.

Shapes (G = groups, Cg = C/G, Kg = K/G, P = OH*OW, R = Cg*KH*KW):
    x (N, C, H, W), w (K, Cg, KH, KW), b (K,) or None, out (N, K, OH, OW)
    columns (N, C, KH, KW, OH, OW), viewed as (N, G, R, P) for the GEMMs
"""

import numpy as np

from ..shapes import conv2d_output_size
from ..workspace import scratch


def _taps(kh, kw, stride, dilation, oh, ow):
    """(i, j, rows, cols): for each tap, the slices of the padded input it reads."""
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilation[0], j * dilation[1]
            rows = slice(y0, y0 + stride[0] * (oh - 1) + 1, stride[0])
            cols = slice(x0, x0 + stride[1] * (ow - 1) + 1, stride[1])
            yield i, j, rows, cols


def _padded(x, padding):
    """x inside a zero border, in the 'npy.pad' workspace (reused memory: a fresh array would
    fault its pages in again at every call)."""
    ph, pw = padding
    if (ph, pw) == (0, 0):
        return x
    n, c, h, w = x.shape
    xp = scratch("npy.pad", (n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, :ph], xp[:, :, ph + h :] = 0, 0
    xp[:, :, ph : ph + h, :pw], xp[:, :, ph : ph + h, pw + w :] = 0, 0
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def _columns(x, kh, kw, stride, padding, dilation, oh, ow):
    """The patches (N, C, KH, KW, OH, OW) of x, in the 'npy.cols' workspace."""
    xp = _padded(x, tuple(padding))
    cols = scratch("npy.cols", x.shape[:2] + (kh, kw, oh, ow), x.dtype)
    for i, j, rows, cs in _taps(kh, kw, stride, dilation, oh, ow):
        cols[:, :, i, j] = xp[:, :, rows, cs]
    return cols


def _sizes(x, w, stride, padding, dilation):
    kh, kw = w.shape[2], w.shape[3]
    oh = conv2d_output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    ow = conv2d_output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    return kh, kw, oh, ow


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    kh, kw, oh, ow = _sizes(x, w, stride, padding, dilation)
    n, k = x.shape[0], w.shape[0]
    cols = _columns(x, kh, kw, stride, padding, dilation, oh, ow).reshape(n, groups, -1, oh * ow)
    np.matmul(w.reshape(groups, k // groups, -1), cols, out=out.reshape(n, groups, k // groups, oh * ow))
    if b is not None:
        out += b.reshape(1, k, 1, 1)


def _transposed_padding(w, stride, padding, dilation):
    """The padding of dy that makes dx a stride-1 convolution of dy with the flipped weights, or
    None where that does not apply (strides, or padding wider than the dilated kernel)."""
    if tuple(stride) != (1, 1):
        return None
    pads = tuple(d * (k - 1) - p for k, p, d in zip(w.shape[2:], padding, dilation))
    return pads if min(pads) >= 0 else None


def _input_grad(dx, dy, w, stride, padding, dilation, groups):
    n, c, h, wd = dx.shape
    k, cg, kh, kw = w.shape
    kg = k // groups
    oh, ow = dy.shape[2], dy.shape[3]
    pads = _transposed_padding(w, stride, padding, dilation)
    if pads is not None:
        # dx[n, c] = sum over k, i, j of dy[n, k] shifted by the tap, times w[k, c, i, j]: a
        # forward convolution of dy with w flipped and its channel axes swapped.
        w_t = w[:, :, ::-1, ::-1].reshape(groups, kg, cg, kh * kw).transpose(0, 2, 1, 3).reshape(groups, cg, -1)
        cols = _columns(dy, kh, kw, (1, 1), pads, dilation, h, wd).reshape(n, groups, -1, h * wd)
        np.matmul(w_t, cols, out=dx.reshape(n, groups, cg, h * wd))
        return
    # Otherwise: column gradients, summed back onto the padded input tap by tap (col2im).
    dcols = scratch("npy.cols", (n, groups, cg * kh * kw, oh * ow), dx.dtype)
    np.matmul(w.reshape(groups, kg, -1).transpose(0, 2, 1), dy.reshape(n, groups, kg, oh * ow), out=dcols)
    dcols = dcols.reshape(n, c, kh, kw, oh, ow)
    dxp = scratch("npy.pad", (n, c, h + 2 * padding[0], wd + 2 * padding[1]), dx.dtype)
    dxp[...] = 0
    for i, j, rows, cs in _taps(kh, kw, stride, dilation, oh, ow):
        dxp[:, :, rows, cs] += dcols[:, :, i, j]
    dx[...] = dxp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW): dx (N, C, H, W) overwritten, dw and
    db accumulated; each skipped if None."""
    kh, kw, oh, ow = _sizes(x, w, stride, padding, dilation)
    n, k = x.shape[0], w.shape[0]
    if db is not None:
        db += dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(db.dtype)
    if dw is not None:
        cols = _columns(x, kh, kw, stride, padding, dilation, oh, ow).reshape(n, groups, -1, oh * ow)
        per_sample = np.matmul(dy.reshape(n, groups, k // groups, oh * ow), cols.transpose(0, 1, 3, 2))
        dw += per_sample.sum(axis=0, dtype=np.float64).reshape(dw.shape).astype(dw.dtype)
    if dx is not None:
        _input_grad(dx, dy, w, stride, padding, dilation, groups)
