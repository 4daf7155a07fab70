"""The data movement of a stride-1 convolution on "wide" columns: whole padded rows.

With stride 1, output pixel (oy, ox) of tap (i, j) reads padded input (oy + i*dh, ox + j*dw).
If the output is computed for every column of the padded width Wp instead of only the OW valid
ones, the patch of tap (i, j) for one sample is one contiguous run of the padded plane:

    cols[row, n*Pw : (n+1)*Pw] = xp[n, c].flat[i*dh*Wp + j*dw : ... + Pw]     Pw = OH * Wp

so im2col becomes one long copy per (row, sample) and col2im one long add, instead of OH short
runs of OW values (10 for LeNet's conv2: per-run overhead was most of the time). The price is
Wp - OW wasted output columns per row in the GEMMs; the layout copies drop them, and backward
feeds zeros there (``nchw_to_wide``), so they add nothing to dW or dx. A run can spill
(KW-1)*dw values past the plane's end, so padded planes get one extra zero row (conv._pad
zeros every row of the buffer it is given).

Shapes: x (N, C, H, W); xp (N, C, Hp + 1, Wp) with Hp = H + 2 ph, Wp = W + 2 pw;
cols (C*KH*KW, N*Pw); y and dy_wide (K, N*Pw); out and dy (N, K, OH, OW).
"""

from numba import njit, prange


@njit(parallel=True, cache=True)
def im2col_wide(cols, xp, kh, kw, dh, dw, oh):
    """cols (C*KH*KW, N*OH*Wp) <- one contiguous run of the padded plane per (row, sample)."""
    n_batch, channels, hp1, wp = xp.shape
    run = oh * wp
    flat = xp.reshape(n_batch * channels, hp1 * wp)
    for task in prange(channels * kh * kw * n_batch):
        row = task // n_batch
        n = task % n_batch
        c = row // (kh * kw)
        start = ((row // kw) % kh) * dh * wp + (row % kw) * dw
        # Views, then a loop over range(): numba then knows the indices are in bounds and not
        # negative, and the copy vectorises (an offset index "base + q" kept it scalar).
        src = flat[n * channels + c, start : start + run]
        dst = cols[row, n * run : (n + 1) * run]
        for q in range(run):
            dst[q] = src[q]


@njit(parallel=True, cache=True)
def col2im_wide(dx, dxp, dcols, kh, kw, dh, dw, oh):
    """dx (N, C, H, W) = sum over taps of the column gradients, one long add per (tap, sample),
    into the padded plane dxp (N, C, Hp + 1, Wp), whose interior is then copied to dx."""
    n_batch, channels, height, width = dx.shape
    hp1, wp = dxp.shape[2], dxp.shape[3]
    ph = (hp1 - 1 - height) // 2
    pw = (wp - width) // 2
    run = oh * wp
    flat = dxp.reshape(n_batch * channels, hp1 * wp)
    for plane in prange(n_batch * channels):
        n = plane // channels
        c = plane % channels
        acc = flat[plane]
        for q in range(hp1 * wp):
            acc[q] = 0
        for i in range(kh):
            for j in range(kw):
                start = i * dh * wp + j * dw
                src = dcols[(c * kh + i) * kw + j, n * run : (n + 1) * run]
                dst = acc[start : start + run]
                for q in range(run):
                    dst[q] += src[q]
        for iy in range(height):
            for ix in range(width):
                dx[n, c, iy, ix] = dxp[n, c, iy + ph, ix + pw]


@njit(parallel=True, cache=True)
def wide_to_nchw(out, y, b, has_bias):
    """out (N, K, OH, OW) <- the valid columns of y (K, N*OH*Wp) (+ bias b (K,))."""
    n_batch, k_out, oh, ow = out.shape
    wp = y.shape[1] // (n_batch * oh)
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        for oy in range(oh):
            src = y[k, (n * oh + oy) * wp : (n * oh + oy) * wp + ow]
            dst = out[n, k, oy]
            # Two loops rather than "bias = b[k] if has_bias else 0": the int 0 would type the
            # sum as float64.
            if has_bias:
                for ox in range(ow):
                    dst[ox] = src[ox] + b[k]
            else:
                for ox in range(ow):
                    dst[ox] = src[ox]


@njit(parallel=True, cache=True)
def nchw_to_wide(dy_wide, dy):
    """dy_wide (K, N*OH*Wp) <- dy (N, K, OH, OW), zeros in the Wp - OW wasted columns of a row."""
    n_batch, k_out, oh, ow = dy.shape
    wp = dy_wide.shape[1] // (n_batch * oh)
    for plane in prange(n_batch * k_out):
        n = plane // k_out
        k = plane % k_out
        for oy in range(oh):
            dst = dy_wide[k, (n * oh + oy) * wp : (n * oh + oy + 1) * wp]
            src = dy[n, k, oy]
            for ox in range(ow):
                dst[ox] = src[ox]
            for ox in range(ow, wp):
                dst[ox] = 0
