"""2-D convolution in NumPy: im2col by one strided slice per tap, one ``np.matmul`` per group.

Shapes (G = groups, Cg = C/G, Kg = K/G, P = N*OH*OW, R = Cg*KH*KW):
    x (N, C, H, W), w (K, Cg, KH, KW), b (K,) or None, out (N, K, OH, OW)
    columns (C, KH, KW, N, OH, OW), viewed as (G, R, P) for the GEMM
"""

import numpy as np

from ..shapes import conv2d_output_size


def _taps(kh, kw, stride, dilation, oh, ow):
    """(i, j, rows, cols): for each tap, the slices of the padded input it reads."""
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilation[0], j * dilation[1]
            rows = slice(y0, y0 + stride[0] * (oh - 1) + 1, stride[0])
            cols = slice(x0, x0 + stride[1] * (ow - 1) + 1, stride[1])
            yield i, j, rows, cols


def _geometry(x, w, stride, padding, dilation):
    kh, kw = w.shape[2], w.shape[3]
    oh = conv2d_output_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    ow = conv2d_output_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    return kh, kw, oh, ow


def _columns(x, kh, kw, stride, padding, dilation, oh, ow):
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]), x.dtype)
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd] = x
    cols = np.empty((c, kh, kw, n, oh, ow), x.dtype)
    for i, j, rows, cs in _taps(kh, kw, stride, dilation, oh, ow):
        cols[:, i, j] = xp[:, :, rows, cs].transpose(1, 0, 2, 3)
    return cols


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    kh, kw, oh, ow = _geometry(x, w, stride, padding, dilation)
    n, k = x.shape[0], w.shape[0]
    cols = _columns(x, kh, kw, stride, padding, dilation, oh, ow).reshape(groups, -1, n * oh * ow)
    y = np.matmul(w.reshape(groups, k // groups, -1), cols)  # (G, Kg, P)
    out[...] = y.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)
    if b is not None:
        out += b.reshape(1, k, 1, 1)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW): dx (N, C, H, W) overwritten, dw and
    db accumulated; each skipped if None."""
    kh, kw, oh, ow = _geometry(x, w, stride, padding, dilation)
    n, c, h, wd = x.shape
    k = w.shape[0]
    if db is not None:
        db += dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(db.dtype)
    if dx is None and dw is None:
        return
    dy_g = dy.transpose(1, 0, 2, 3).reshape(groups, k // groups, n * oh * ow)
    w_g = w.reshape(groups, k // groups, -1)
    if dw is not None:
        cols = _columns(x, kh, kw, stride, padding, dilation, oh, ow).reshape(groups, -1, n * oh * ow)
        dw += np.matmul(dy_g, cols.transpose(0, 2, 1)).reshape(dw.shape)
    if dx is not None:
        dcols = np.matmul(w_g.transpose(0, 2, 1), dy_g).reshape(c, kh, kw, n, oh, ow)
        dxp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]), x.dtype)
        for i, j, rows, cs in _taps(kh, kw, stride, dilation, oh, ow):
            dxp[:, :, rows, cs] += dcols[:, i, j].transpose(1, 0, 2, 3)
        dx[...] = dxp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]
