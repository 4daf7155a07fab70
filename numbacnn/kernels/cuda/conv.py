"""2-D convolution on CUDA: im2col into a reused workspace + the tiled GEMM of ``gemm.py``.

Shapes (G = groups, Cg = C/G, Kg = K/G, P = OH*OW, R = Cg*KH*KW):
    x (N, C, H, W), w (K, Cg, KH, KW), b (K,) or None, out (N, K, OH, OW)
    columns (N, G, R, P): row r = (c, i, j) of group g, column p = (oy, ox) of sample n

The columns are laid out per sample so that every GEMM reads and writes NCHW arrays directly:
out[n, g] = w[g] @ cols[n, g] (+ bias in the GEMM's epilogue), dcols[n, g] = w[g]^T @ dy[n, g].
The weight gradient is summed over samples without atomics: each sample's dy[n] @ cols[n]^T goes
to its own slice of a workspace and one thread per weight adds the slices in a fixed order, so
the result is deterministic. col2im is a gather, one thread per input element.
"""

from numba import cuda

from ..shapes import conv2d_output_size
from ..workspace import scratch
from .gemm import BIAS_NONE, BIAS_ROW, gemm
from .launch import device_empty, launch_1d, require_device, view
from .reduce import add_batch_sums, add_channel_sums


@cuda.jit
def _im2col(cols, x, kh, kw, sh, sw, ph, pw, dh, dw, ow):
    """cols (N, C*KH*KW, P) <- patches of x (N, C, H, W), zero where a patch hits padding."""
    n_batch, channels, height, width = x.shape
    rows, p_len = cols.shape[1], cols.shape[2]
    total = n_batch * rows * p_len
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        p = e % p_len
        row = (e // p_len) % rows
        n = e // (p_len * rows)
        c = row // (kh * kw)
        i = (row // kw) % kh
        j = row % kw
        iy = (p // ow) * sh - ph + i * dh
        ix = (p % ow) * sw - pw + j * dw
        if iy >= 0 and iy < height and ix >= 0 and ix < width:
            cols[n, row, p] = x[n, c, iy, ix]
        else:
            cols[n, row, p] = 0


@cuda.jit
def _col2im(dx, dcols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, zero):
    """dx (N, C, H, W) = sum over the patches that read each input element of dcols (N, C*KH*KW, P)."""
    n_batch, channels, height, width = dx.shape
    total = n_batch * channels * height * width
    for e in range(cuda.grid(1), total, cuda.gridsize(1)):
        ix = e % width
        iy = (e // width) % height
        c = (e // (width * height)) % channels
        n = e // (width * height * channels)
        acc = zero
        for i in range(kh):
            ty = iy + ph - i * dh
            if ty < 0 or ty % sh != 0 or ty // sh >= oh:
                continue
            oy = ty // sh
            for j in range(kw):
                tx = ix + pw - j * dw
                if tx < 0 or tx % sw != 0 or tx // sw >= ow:
                    continue
                acc += dcols[n, (c * kh + i) * kw + j, oy * ow + tx // sw]
        dx[n, c, iy, ix] = acc


def _geometry(x, w, stride, padding, dilation, groups):
    n_batch, channels, height, width = x.shape
    k_out, cg, kh, kw = w.shape
    oh = conv2d_output_size(height, kh, stride[0], padding[0], dilation[0])
    ow = conv2d_output_size(width, kw, stride[1], padding[1], dilation[1])
    hyper = (kh, kw, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1])
    return n_batch, channels, k_out, cg * kh * kw, oh, ow, hyper


def _columns(x, w, hyper, oh, ow):
    n_batch, channels = x.shape[:2]
    rows = channels * w.shape[2] * w.shape[3]
    cols = scratch("cuda.conv.cols", (n_batch, rows, oh * ow), x.dtype, device_empty)
    launch_1d(_im2col, cols.size, cols, x, *hyper, ow)
    return cols


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    require_device("conv2d_forward", out=out, x=x, w=w, b=b)
    n_batch, channels, k_out, r, oh, ow, hyper = _geometry(x, w, stride, padding, dilation, groups)
    p = oh * ow
    cols = _columns(x, w, hyper, oh, ow)
    gemm(
        view(out, n_batch, groups, k_out // groups, p),
        view(w, 1, groups, k_out // groups, r),
        view(cols, n_batch, groups, r, p),
        bias=b,
        bias_mode=BIAS_NONE if b is None else BIAS_ROW,
    )


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten; dw (K, C/groups, KH, KW) and db (K,) are accumulated. Each is
    skipped if None (a frozen weight gets no gradient computed).
    """
    require_device("conv2d_backward", dx=dx, dw=dw, db=db, dy=dy, x=x, w=w)
    n_batch, channels, k_out, r, oh, ow, hyper = _geometry(x, w, stride, padding, dilation, groups)
    p, kg = oh * ow, k_out // groups
    dy_g = view(dy, n_batch, groups, kg, p)
    if db is not None:
        add_channel_sums(db, view(dy, n_batch, k_out, p))
    rows = channels * w.shape[2] * w.shape[3]
    if dw is not None:
        cols = _columns(x, w, hyper, oh, ow)
        cols_g = view(cols, n_batch, groups, r, p)
        if n_batch == 1:
            gemm(view(dw, 1, groups, kg, r), dy_g, cols_g, trans_b=True, accumulate=True)
        else:
            per_sample = scratch("cuda.conv.dw", (n_batch, groups, kg, r), x.dtype, device_empty)
            gemm(per_sample, dy_g, cols_g, trans_b=True)
            add_batch_sums(view(dw, dw.size), view(per_sample, n_batch, dw.size))
    if dx is not None:
        # dcols reuses the columns buffer (no longer needed; without dw it was never filled).
        cols = scratch("cuda.conv.cols", (n_batch, rows, p), x.dtype, device_empty)
        cols_g = view(cols, n_batch, groups, r, p)
        gemm(cols_g, view(w, 1, groups, kg, r), dy_g, trans_a=True)
        launch_1d(_col2im, dx.size, dx, cols, *hyper, oh, ow, dx.dtype.type(0))
