"""2-D convolution on the CPU: im2col + GEMM (OpenBLAS through ``np.matmul``) + col2im.

Shapes (G = groups, Cg = C/G, Kg = K/G, P = OH*OW, R = Cg*KH*KW):
    x (N, C, H, W), w (K, Cg, KH, KW), b (K,) or None, out (N, K, OH, OW)
    columns (G, R, N*P): row r = (c, i, j) of group g, column n*P + p

The GEMM runs as one (batched, if G > 1) ``np.matmul`` with ``out=`` into workspace buffers, so a
training step allocates nothing. The copies around it (im2col, col2im, NCHW <-> (K, N*P)) are
``@njit(parallel=True)`` loops whose parallel axis writes disjoint memory.
"""
import numpy as np
from numba import njit, prange

from ..shapes import conv2d_output_size
from ..workspace import scratch


@njit(inline="always")
def _valid_range(out_len, in_len, stride, offset):
    """[lo, hi) of output positions o with 0 <= o * stride + offset < in_len."""
    lo = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    hi = 0
    if in_len - offset > 0:
        hi = (in_len - offset + stride - 1) // stride
    return lo, max(lo, min(hi, out_len))


@njit(parallel=True, cache=True)
def _im2col(cols, x, kernel, stride, padding, dilation, oh, ow):
    """cols (C*KH*KW, N*OH*OW) <- patches of x (N, C, H, W); zero where the patch hits padding.

    The inner loop covers only the in-bounds output columns (found once per row), so it has no
    branch and vectorises; the padding margins are zero-filled separately.
    """
    n_batch, channels, height, width = x.shape
    kh, kw = kernel
    p = oh * ow
    for task in prange(channels * kh * kw * n_batch):
        row = task // n_batch
        n = task % n_batch
        c = row // (kh * kw)
        i = (row // kw) % kh
        j = row % kw
        x_off = j * dilation[1] - padding[1]
        lo, hi = _valid_range(ow, width, stride[1], x_off)
        for oy in range(oh):
            iy = oy * stride[0] - padding[0] + i * dilation[0]
            col = n * p + oy * ow
            if iy < 0 or iy >= height:
                for ox in range(ow):
                    cols[row, col + ox] = 0
                continue
            for ox in range(lo):
                cols[row, col + ox] = 0
            for ox in range(lo, hi):
                cols[row, col + ox] = x[n, c, iy, ox * stride[1] + x_off]
            for ox in range(hi, ow):
                cols[row, col + ox] = 0


@njit(parallel=True, cache=True)
def _col2im(dx, dcols, kernel, stride, padding, dilation, oh, ow):
    """dx (N, C, H, W) = sum of the column gradients dcols (C*KH*KW, N*OH*OW) over every patch.

    The parallel axis is the (n, c) plane: all the += for one plane happen in one thread.
    """
    n_batch, channels, height, width = dx.shape
    kh, kw = kernel
    p = oh * ow
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = 0
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                x_off = j * dilation[1] - padding[1]
                lo, hi = _valid_range(ow, width, stride[1], x_off)
                for oy in range(oh):
                    iy = oy * stride[0] - padding[0] + i * dilation[0]
                    if iy < 0 or iy >= height:
                        continue
                    col = n * p + oy * ow
                    for ox in range(lo, hi):
                        dx[n, c, iy, ox * stride[1] + x_off] += dcols[row, col + ox]


@njit(parallel=True, cache=True)
def _kp_to_nchw(out, y, b, has_bias):
    """out (N, K, P) <- y (K, N*P) (+ bias b (K,)); out is the NCHW output viewed as (N, K, P)."""
    n_batch, k_out, p = out.shape
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        # Two loops rather than "bias = b[k] if has_bias else 0": the int 0 would type the sum
        # as float64.
        if has_bias:
            for q in range(p):
                out[n, k, q] = y[k, n * p + q] + b[k]
        else:
            for q in range(p):
                out[n, k, q] = y[k, n * p + q]


@njit(parallel=True, cache=True)
def _nchw_to_kp(y, dy):
    """y (K, N*P) <- dy (N, K, P) (the NCHW gradient viewed as (N, K, P))."""
    n_batch, k_out, p = dy.shape
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        for q in range(p):
            y[k, n * p + q] = dy[n, k, q]


@njit(parallel=True, cache=True)
def _add_row_sums(db, y):
    """db (K,) += sums of the rows of y (K, M), accumulated in float64 on purpose (long sums)."""
    for k in prange(y.shape[0]):
        acc = 0.0
        for m in range(y.shape[1]):
            acc += y[k, m]
        db[k] += acc


def _gemm(out, a, b):
    """out = a @ b for 2-D or batched 3-D operands (no allocation: OpenBLAS writes into out)."""
    if out.shape[0] == 1 and out.ndim == 3:
        np.matmul(a[0], b[0], out=out[0])
    else:
        np.matmul(a, b, out=out)


def _shapes(x, w, stride, padding, dilation, groups):
    n_batch, channels, height, width = x.shape
    k_out, cg, kh, kw = w.shape
    oh = conv2d_output_size(height, kh, stride[0], padding[0], dilation[0])
    ow = conv2d_output_size(width, kw, stride[1], padding[1], dilation[1])
    return n_batch, channels, k_out, cg * kh * kw, oh, ow


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    n_batch, channels, k_out, r, oh, ow = _shapes(x, w, stride, padding, dilation, groups)
    np_cols = n_batch * oh * ow
    cols = scratch("conv.cols", (channels * w.shape[2] * w.shape[3], np_cols), x.dtype)
    _im2col(cols, x, (w.shape[2], w.shape[3]), stride, padding, dilation, oh, ow)
    y = scratch("conv.y", (groups, k_out // groups, np_cols), x.dtype)
    _gemm(y, w.reshape(groups, k_out // groups, r), cols.reshape(groups, r, np_cols))
    has_bias = b is not None
    _kp_to_nchw(out.reshape(n_batch, k_out, oh * ow), y.reshape(k_out, np_cols),
                b if has_bias else w.reshape(-1), has_bias)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten (skipped if None); dw (K, C/groups, KH, KW) and db (K,) are
    accumulated (db skipped if None).
    """
    n_batch, channels, k_out, r, oh, ow = _shapes(x, w, stride, padding, dilation, groups)
    np_cols = n_batch * oh * ow
    kg = k_out // groups
    dy_kp = scratch("conv.dy", (k_out, np_cols), x.dtype)
    _nchw_to_kp(dy_kp, dy.reshape(n_batch, k_out, oh * ow))
    if db is not None:
        _add_row_sums(db, dy_kp)
    dy_g = dy_kp.reshape(groups, kg, np_cols)
    # The columns are recomputed rather than kept from the forward pass: it costs one cheap pass
    # over x and keeps one workspace for all layers instead of one per layer.
    cols = scratch("conv.cols", (channels * w.shape[2] * w.shape[3], np_cols), x.dtype)
    _im2col(cols, x, (w.shape[2], w.shape[3]), stride, padding, dilation, oh, ow)
    cols_g = cols.reshape(groups, r, np_cols)
    dw_tmp = scratch("conv.dw", (groups, kg, r), x.dtype)
    _gemm(dw_tmp, dy_g, cols_g.transpose(0, 2, 1))
    dw_flat = dw.reshape(groups, kg, r)
    dw_flat += dw_tmp
    if dx is not None:
        # dcols reuses the columns buffer: the columns are no longer needed.
        _gemm(cols_g, w.reshape(groups, kg, r).transpose(0, 2, 1), dy_g)
        _col2im(dx, cols, (w.shape[2], w.shape[3]), stride, padding, dilation, oh, ow)
