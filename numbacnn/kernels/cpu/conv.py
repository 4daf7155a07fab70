"""2-D convolution on the CPU: im2col + GEMM (OpenBLAS through ``np.matmul``) + col2im.

Shapes (G = groups, Cg = C/G, Kg = K/G, P = OH*OW, R = Cg*KH*KW):
    x (N, C, H, W), w (K, Cg, KH, KW), b (K,) or None, out (N, K, OH, OW)
    columns (G, R, N*P): row r = (c, i, j) of group g, column n*P + p

Six paths, chosen per call from the shapes:
  * 1x1, stride 1, no padding, groups 1: per-sample GEMMs straight on the NCHW planes in one
    thread pool (conv_pointwise.py); with a stride, the same on a copy of every stride-th pixel;
  * stride 1, dilation 1, groups 1, output planes of >= 100 positions: direct convolution on
    explicit vectors, forward and both gradients, no im2col and no library GEMM (conv_simd.py);
  * the same layers with smaller planes (7x7, 8x8): vectorised over output channels instead, so
    no padding column is wasted, forward and both gradients (conv_chanvec.py);
  * groups 1, dilation 1: one thread pool over chunks of samples, pixel-major columns and a
    single-threaded GEMM per chunk (conv_pool.py);
  * stride 1: im2col/col2im on "wide" columns over whole padded rows (conv_wide.py), where each
    copy is one long run;
  * otherwise: im2col/col2im row by row (below).
The GEMM runs as one (batched, if G > 1) ``np.matmul`` with ``out=`` into workspace buffers, so a
training step allocates nothing. The copies around it are ``@njit(parallel=True)`` loops whose
parallel axis writes disjoint memory.
"""

import os
import sys

import numpy as np
from numba import njit, prange

from ..shapes import conv2d_output_size
from ..workspace import scratch
from . import conv_chanvec, conv_pointwise, conv_pool, conv_simd
from .conv_wide import col2im_wide, im2col_wide, nchw_to_wide, wide_to_nchw

# Stride-1 layers use the "wide" columns of conv_wide.py (whole padded rows: long copies instead
# of short ones) unless the wasted GEMM columns would cost more than the copies save: padded
# width Wp at most this many times the output width OW.
WIDE_MAX_RATIO = 1.5


@njit(parallel=True, cache=True)
def _pad(xp, x, ph, pw):
    """xp (N, C, >= H + 2 ph, W + 2 pw) <- x with a zero border (and zeros in any rows below it,
    such as the extra row of the wide path), so im2col needs no bounds checks."""
    n_batch, channels, height, width = x.shape
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for iy in range(xp.shape[2]):
            for ix in range(xp.shape[3]):
                xp[n, c, iy, ix] = 0
        for iy in range(height):
            for ix in range(width):
                xp[n, c, iy + ph, ix + pw] = x[n, c, iy, ix]


@njit(parallel=True, cache=True)
def _im2col(cols, xp, kernel, stride, dilation, oh, ow):
    """cols (C*KH*KW, N*OH*OW) <- patches of the padded input xp (N, C, Hp, Wp).

    With stride 1 along W each output row is a contiguous run of an input row: a branch-free copy
    that vectorises, where bounds-checking every tap on the unpadded input does not (NOTES entry 3).
    """
    n_batch, channels = xp.shape[0], xp.shape[1]
    kh, kw = kernel
    sh, sw = stride
    p = oh * ow
    for task in prange(channels * kh * kw * n_batch):
        row = task // n_batch
        n = task % n_batch
        c = row // (kh * kw)
        i = (row // kw) % kh
        x0 = (row % kw) * dilation[1]
        for oy in range(oh):
            src = xp[n, c, oy * sh + i * dilation[0]]
            dst = cols[row, n * p + oy * ow : n * p + oy * ow + ow]
            if sw == 1:
                for ox in range(ow):
                    dst[ox] = src[x0 + ox]
            else:
                for ox in range(ow):
                    dst[ox] = src[x0 + ox * sw]


@njit(parallel=True, cache=True)
def _col2im(dx, dxp, dcols, kernel, stride, dilation, oh, ow):
    """dx (N, C, H, W) = sum of the column gradients dcols (C*KH*KW, N*OH*OW) over every patch.

    Sums go into the padded plane dxp (no bounds checks), whose interior is then copied to dx.
    The parallel axis is the (n, c) plane: all the += for one plane happen in one thread.
    """
    n_batch, channels, height, width = dx.shape
    ph = (dxp.shape[2] - height) // 2
    pw = (dxp.shape[3] - width) // 2
    kh, kw = kernel
    sh, sw = stride
    p = oh * ow
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        for iy in range(dxp.shape[2]):
            for ix in range(dxp.shape[3]):
                dxp[n, c, iy, ix] = 0
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                x0 = j * dilation[1]
                for oy in range(oh):
                    dst = dxp[n, c, oy * sh + i * dilation[0]]
                    src = dcols[row, n * p + oy * ow : n * p + oy * ow + ow]
                    if sw == 1:
                        for ox in range(ow):
                            dst[x0 + ox] += src[ox]
                    else:
                        for ox in range(ow):
                            dst[x0 + ox * sw] += src[ox]
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = dxp[n, c, iy + ph, ix + pw]


def _columns(x, w, stride, padding, dilation, oh, ow):
    """The im2col matrix of x for weights w, in the 'conv.cols' workspace."""
    n_batch, channels, height, width = x.shape
    xp = scratch("conv.xpad", (n_batch, channels, height + 2 * padding[0], width + 2 * padding[1]), x.dtype)
    _pad(xp, x, padding[0], padding[1])
    cols = scratch("conv.cols", (channels * w.shape[2] * w.shape[3], n_batch * oh * ow), x.dtype)
    _im2col(cols, xp, (w.shape[2], w.shape[3]), stride, dilation, oh, ow)
    return cols


@njit(parallel=True, cache=True)
def _kp_to_nchw(out, y, b, has_bias):
    """out (N, K, P) <- y (K, N*P) (+ bias b (K,)); out is the NCHW output viewed as (N, K, P).

    conv_wide.wide_to_nchw does the same for Wp = OW, row by row; one run per plane is faster on
    short rows (benchmarks/NOTES.md, entry 14), so this layout keeps its own.
    """
    n_batch, k_out, p = out.shape
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        # Views and range() indices: an offset index (y[k, n * p + q]) keeps the loop scalar.
        src = y[k, n * p : (n + 1) * p]
        dst = out[n, k]
        # Two loops rather than "bias = b[k] if has_bias else 0": the int 0 would type the sum
        # as float64.
        if has_bias:
            for q in range(p):
                dst[q] = src[q] + b[k]
        else:
            for q in range(p):
                dst[q] = src[q]


@njit(parallel=True, cache=True)
def _nchw_to_kp(y, dy):
    """y (K, N*P) <- dy (N, K, P) (the NCHW gradient viewed as (N, K, P))."""
    n_batch, k_out, p = dy.shape
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        dst = y[k, n * p : (n + 1) * p]
        src = dy[n, k]
        for q in range(p):
            dst[q] = src[q]


@njit(parallel=True, cache=True)
def _add_row_sums(db, y):
    """db (K,) += sums of the rows of y (K, M), accumulated in float64 on purpose (long sums)."""
    for k in prange(y.shape[0]):
        acc = 0.0
        for m in range(y.shape[1]):
            acc += y[k, m]
        db[k] += acc


def _strided_pointwise(w, stride, padding, dilation, groups):
    """A 1x1 layer with a stride and no padding (ResNet's projection shortcuts): the stride-1
    convolution of the input's every stride-th pixel."""
    return (
        w.shape[2] == w.shape[3] == 1
        and tuple(stride) != (1, 1)
        and tuple(padding) == (0, 0)
        and tuple(dilation) == (1, 1)
        and groups == 1
    )


def _subsampled(x, stride, name):
    """x[:, :, ::sh, ::sw] as a C-contiguous copy in workspace ``name``."""
    sub = x[:, :, :: stride[0], :: stride[1]]
    out = scratch(name, sub.shape, x.dtype)
    np.copyto(out, sub)
    return out


def _wide_width(x, stride, padding, ow):
    """The padded width Wp when the wide-column path applies, else 0."""
    wp = x.shape[3] + 2 * padding[1]
    return wp if tuple(stride) == (1, 1) and wp <= WIDE_MAX_RATIO * ow else 0


def _padded_planes(x, padding):
    """x zero-padded, with the extra row the wide runs need, in the 'conv.xpad' workspace."""
    n_batch, channels, height, width = x.shape
    xp = scratch("conv.xpad", (n_batch, channels, height + 2 * padding[0] + 1, width + 2 * padding[1]), x.dtype)
    _pad(xp, x, padding[0], padding[1])
    return xp


def _wide_columns(x, w, padding, dilation, oh):
    """The wide im2col matrix (C*KH*KW, N*OH*Wp) of x, in the 'conv.cols' workspace."""
    n_batch, channels = x.shape[:2]
    xp = _padded_planes(x, padding)
    cols = scratch("conv.cols", (channels * w.shape[2] * w.shape[3], n_batch * oh * xp.shape[3]), x.dtype)
    im2col_wide(cols, xp, w.shape[2], w.shape[3], dilation[0], dilation[1], oh)
    return cols


def _columns_for(x, w, stride, padding, dilation, oh, ow, wide):
    """The im2col matrix for this layer's path: wide (stride 1) or row by row."""
    if wide:
        return _wide_columns(x, w, padding, dilation, oh)
    return _columns(x, w, stride, padding, dilation, oh, ow)


def _gemm(out, a, b):
    """out = a @ b for 2-D or batched 3-D operands (no allocation: OpenBLAS writes into out)."""
    if out.shape[0] == 1 and out.ndim == 3:
        np.matmul(a[0], b[0], out=out[0])
    else:
        np.matmul(a, b, out=out)


_reported = set()


def _report(direction, implementation, x, w, stride, padding):
    """With NUMBACNN_VERBOSE=1, name on stderr the implementation a layer runs, once per layer
    shape and direction."""
    if os.environ.get("NUMBACNN_VERBOSE", "0").strip() in ("", "0"):
        return
    key = (direction, implementation, x.shape[1:], w.shape, tuple(stride), tuple(padding), x.dtype.str)
    if key not in _reported:
        _reported.add(key)
        print(
            f"numbacnn: conv2d {direction} of x {tuple(x.shape[1:])}, w {tuple(w.shape)}, stride "
            f"{tuple(stride)}, padding {tuple(padding)}, {x.dtype}: {implementation}",
            file=sys.stderr,
        )


def _shapes(x, w, stride, padding, dilation, groups):
    n_batch, channels, height, width = x.shape
    k_out, cg, kh, kw = w.shape
    oh = conv2d_output_size(height, kh, stride[0], padding[0], dilation[0])
    ow = conv2d_output_size(width, kw, stride[1], padding[1], dilation[1])
    return n_batch, channels, k_out, cg * kh * kw, oh, ow


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    n_batch, channels, k_out, r, oh, ow = _shapes(x, w, stride, padding, dilation, groups)
    wide = _wide_width(x, stride, padding, ow)
    if conv_pointwise.usable(x, w, stride, padding, groups):
        _report("forward", "conv_pointwise", x, w, stride, padding)
        conv_pointwise.conv2d_forward(out, x, w, b)
        return
    if _strided_pointwise(w, stride, padding, dilation, groups):
        _report("forward", "subsample", x, w, stride, padding)
        conv2d_forward(out, _subsampled(x, stride, "conv.sub_x"), w, b, (1, 1), padding, dilation, groups)
        return
    if conv_simd.usable(x, w, stride, padding, dilation, groups):
        _report("forward", "conv_simd", x, w, stride, padding)
        conv_simd.conv2d_forward(out, x, w, b, padding)
        return
    if conv_chanvec.usable(x, w, stride, padding, dilation, groups):
        _report("forward", "conv_chanvec", x, w, stride, padding)
        conv_chanvec.conv2d_forward(out, x, w, b, padding)
        return
    has_bias = b is not None
    bias = b if has_bias else w.reshape(-1)
    if conv_pool.usable(x, groups, dilation):
        _report("forward", "conv_pool", x, w, stride, padding)
        conv_pool.conv2d_forward(out, x, w, b, stride, padding)
        return
    _report("forward", "im2col_wide" if wide else "im2col", x, w, stride, padding)
    np_cols = n_batch * oh * (wide or ow)
    cols = _columns_for(x, w, stride, padding, dilation, oh, ow, wide)
    y = scratch("conv.y", (groups, k_out // groups, np_cols), x.dtype)
    _gemm(y, w.reshape(groups, k_out // groups, r), cols.reshape(groups, r, np_cols))
    if wide:
        wide_to_nchw(out, y.reshape(k_out, np_cols), bias, has_bias)
    else:
        _kp_to_nchw(out.reshape(n_batch, k_out, oh * ow), y.reshape(k_out, np_cols), bias, has_bias)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten; dw (K, C/groups, KH, KW) and db (K,) are accumulated. Each is
    skipped if None (a frozen weight gets no gradient computed: its GEMM is not run).
    """
    n_batch, channels, k_out, r, oh, ow = _shapes(x, w, stride, padding, dilation, groups)
    if dx is None and dw is None:
        if db is not None:
            db += dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(db.dtype)
        return
    if conv_pointwise.usable(x, w, stride, padding, groups):
        _report("backward", "conv_pointwise", x, w, stride, padding)
        conv_pointwise.conv2d_backward(dx, dw, db, dy, x, w)
        return
    if _strided_pointwise(w, stride, padding, dilation, groups):
        # The gradient reaches only the pixels the forward read; the others get zeros.
        _report("backward", "subsample", x, w, stride, padding)
        sub = _subsampled(x, stride, "conv.sub_x")
        d_sub = None if dx is None else scratch("conv.sub_dx", sub.shape, x.dtype)
        conv2d_backward(d_sub, dw, db, dy, sub, w, (1, 1), padding, dilation, groups)
        if dx is not None:
            dx[...] = 0
            dx[:, :, :: stride[0], :: stride[1]] = d_sub
        return
    if conv_simd.usable(x, w, stride, padding, dilation, groups):
        _report("backward", "conv_simd", x, w, stride, padding)
        conv_simd.conv2d_backward(dx, dw, db, dy, x, w, padding)
        return
    if conv_chanvec.usable(x, w, stride, padding, dilation, groups):
        _report("backward", "conv_chanvec", x, w, stride, padding)
        conv_chanvec.conv2d_backward(dx, dw, db, dy, x, w, padding)
        return
    wide = _wide_width(x, stride, padding, ow)
    if conv_pool.usable(x, groups, dilation):
        _report("backward", "conv_pool", x, w, stride, padding)
        conv_pool.conv2d_backward(dx, dw, db, dy, x, w, stride, padding)
        return
    _report("backward", "im2col_wide" if wide else "im2col", x, w, stride, padding)
    np_cols = n_batch * oh * (wide or ow)
    kg = k_out // groups
    dy_kp = scratch("conv.dy", (k_out, np_cols), x.dtype)
    if wide:
        nchw_to_wide(dy_kp, dy)
    else:
        _nchw_to_kp(dy_kp, dy.reshape(n_batch, k_out, oh * ow))
    if db is not None:
        _add_row_sums(db, dy_kp)  # the wide layout's wasted columns hold zeros
    dy_g = dy_kp.reshape(groups, kg, np_cols)
    # The columns are recomputed rather than kept from the forward pass: it costs one cheap pass
    # over x and keeps one workspace for all layers instead of one per layer.
    cols = _columns_for(x, w, stride, padding, dilation, oh, ow, wide)
    cols_g = cols.reshape(groups, r, np_cols)
    if dw is not None:
        dw_tmp = scratch("conv.dw", (groups, kg, r), x.dtype)
        _gemm(dw_tmp, dy_g, cols_g.transpose(0, 2, 1))
        dw_flat = dw.reshape(groups, kg, r)
        dw_flat += dw_tmp
    if dx is not None:
        # dcols reuses the columns buffer: the columns are no longer needed.
        _gemm(cols_g, w.reshape(groups, kg, r).transpose(0, 2, 1), dy_g)
        # The padded input is no longer needed either: it becomes the padded gradient plane.
        dxp = scratch(
            "conv.xpad",
            (n_batch, channels, dx.shape[2] + 2 * padding[0] + (1 if wide else 0), dx.shape[3] + 2 * padding[1]),
            x.dtype,
        )
        if wide:
            col2im_wide(dx, dxp, cols, w.shape[2], w.shape[3], dilation[0], dilation[1], oh)
        else:
            _col2im(dx, dxp, cols, (w.shape[2], w.shape[3]), stride, dilation, oh, ow)
