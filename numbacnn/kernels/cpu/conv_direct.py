"""Direct stride-1 convolution for layers with few taps (C*KH*KW <= DIRECT_MAX_TAPS), such as
LeNet-5's first layer (1x5x5) or a ResNet stem on gray images (1x3x3). Forward always; backward
when no input gradient is wanted (a first layer), which is where these layers sit.

There im2col is the wrong trade: the column matrix is C*KH*KW times the input (25x for LeNet's
conv1, 20 MB at batch 256) and the GEMM that reads it is thin (K=6 rows, 25 deep), so the layer
is bound by moving columns through memory. Here each output plane is accumulated tap by tap from
the padded input plane, which stays in L1/L2, on the "wide" rows of conv_wide.py: every tap is one
long multiply-add over OH*Wp values, written with views and range() indices so it vectorises.

Shapes: xp (N, C, Hp + 1, Wp) padded planes (conv._padded_planes); w (K, C, KH, KW);
y_wide (N, K, OH*Wp); dy_wide (K, N*OH*Wp) as conv_wide.nchw_to_wide writes it;
out and dy (N, K, OH, OW); dw (K, C, KH, KW).
"""

import numpy as np
from numba import njit, prange

# Up to this many taps the direct loops beat im2col + GEMM; a 3x3x3 stem (27 taps) gained nothing
# (benchmarks/NOTES.md, entry 10).
DIRECT_MAX_TAPS = 25


@njit(parallel=True, cache=True)
def forward(out, y_wide, xp, w, b, has_bias, dh, dw):
    """out (N, K, OH, OW) = conv(xp, w) (+ b), via the wide rows y_wide (N, K, OH*Wp)."""
    n_batch, channels, hp1, wp = xp.shape
    k_out, _, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    run = oh * wp
    planes = xp.reshape(n_batch, channels, hp1 * wp)
    for task in prange(n_batch * k_out):
        n = task // k_out
        k = task % k_out
        acc = y_wide[n, k]
        # Two loops rather than "b[k] if has_bias else 0": the int 0 would type acc as float64.
        if has_bias:
            for q in range(run):
                acc[q] = b[k]
        else:
            for q in range(run):
                acc[q] = 0
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    weight = w[k, c, i, j]
                    start = i * dh * wp + j * dw
                    src = planes[n, c, start : start + run]
                    for q in range(run):
                        acc[q] += weight * src[q]
        for oy in range(oh):
            row = acc[oy * wp : oy * wp + ow]
            dst = out[n, k, oy]
            for ox in range(ow):
                dst[ox] = row[ox]


@njit(parallel=True, cache=True, fastmath={"reassoc"})
def weight_and_bias_grad(dw, db, has_bias, dy_wide, xp, dh, dwx):
    """dw (K, C, KH, KW) += sum over samples and pixels of dy * input patch; db (K,) += sums of dy.

    One task per output channel, so every sum has one owner (deterministic). Samples are the
    outer loop, so one sample's gradient row and input planes stay in L1 for all taps; each tap
    is a float64 dot product over a long run, allowed to reassociate so that it vectorises.
    """
    n_batch, channels, hp1, wp = xp.shape
    k_out, _, kh, kw = dw.shape
    run = dy_wide.shape[1] // n_batch
    planes = xp.reshape(n_batch, channels, hp1 * wp)
    for k in prange(k_out):
        sums = np.zeros(channels * kh * kw)
        bias_sum = 0.0
        for n in range(n_batch):
            g = dy_wide[k, n * run : (n + 1) * run]
            for c in range(channels):
                for i in range(kh):
                    for j in range(kw):
                        start = i * dh * wp + j * dwx
                        src = planes[n, c, start : start + run]
                        acc = 0.0
                        for q in range(run):
                            acc += g[q] * src[q]
                        sums[(c * kh + i) * kw + j] += acc
            if has_bias:
                for q in range(run):
                    bias_sum += g[q]
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    dw[k, c, i, j] += sums[(c * kh + i) * kw + j]
        if has_bias:
            db[k] += bias_sum
