"""winograd_channels' weight gradient: F(2x2, 3x3) backwards, vectorised over output channels.

The forward is Y = A' [U . V] A per tile, summed over input channels, with U = G g G'. So
dU[t] (C x K) = sum over tiles of V[t]' dM[t], with V = B' d B the transformed input tile (as the
forward makes it) and dM = A dY A' the 2x2 output gradient of the tile spread over its 16
positions; then dw[k, c] += G' dU[:, c, k] G. That is 16 matrix products reducing over tiles:
16/36 of the direct weight gradient's products.

* x is copied into a padded channels-last grid as the forward does, dy into one cut to whole tiles
  (zero past the plane's edge, so that the odd planes' spare outputs add nothing);
* the tiles are cut into chunks of FOLD_PRODUCTS (the weight gradients' one fold rule): a chunk's
  products are summed in float32, in blocks of tiles whose V and dM stay in the L2 cache, on the
  GEMM tile (6 input channels x 2 vectors of output channels, V's columns broadcast in place);
* the chunks' sums are added in float64, in order, and transformed by G into dw.
A chunk is a task: the result does not depend on the thread count.
Shapes: x (N, C, H, W), dy (N, K, OH, OW), dw (K, C, 3, 3) accumulated.
"""

import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..microkernel import FOLD_PRODUCTS, ROWS, gemm_6x2v_strided
from ..simd import LANES, vadd, vload, vsplat, vstore, vsub
from .winograd_channels_input import input_transform, to_channels_last

# Floats of a block's V and dM together (the accumulated sums of the chunk stay in L2 beside them).
WGRAD_FLOATS = 1 << 17


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _output_gradient_transform(m, at, plane, dyt, base, row, k_out):
    """m.flat[at + t plane + k] = (A dY A')[t] for every channel k (whole vectors), dY the tile's 2x2
    output gradients at dyt.flat[base + i row + j K + k]. A's rows: (1, 0), (1, 1), (1, -1), (0, -1)."""
    zero = vsplat(dyt.dtype.type(0))
    for kv in range(0, k_out, LANES):
        b = base + kv
        y00, y01, y10, y11 = vload(dyt, b), vload(dyt, b + k_out), vload(dyt, b + row), vload(dyt, b + row + k_out)
        for i in range(4):  # row i of A dY, then times A'
            if i == 0:
                r0, r1 = y00, y01
            elif i == 1:
                r0, r1 = vadd(y00, y10), vadd(y01, y11)
            elif i == 2:
                r0, r1 = vsub(y00, y10), vsub(y01, y11)
            else:
                r0, r1 = vsub(zero, y10), vsub(zero, y11)
            s = at + 4 * i * plane + kv
            vstore(m, s, r0)
            vstore(m, s + plane, vadd(r0, r1))
            vstore(m, s + 2 * plane, vsub(r0, r1))
            vstore(m, s + 3 * plane, vsub(zero, r1))


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _chunk_sums(sums, xt, dyt, top, left, th, tw, per_block, vbuf, mbuf):
    """sums (chunks, 16, C6, K) = per chunk of FOLD_PRODUCTS tiles, sum over its tiles of V[t]' dM[t]
    (float32), from the padded channels-last x, xt (N, 2 TH + 2, 2 TW + 2, CP), and dy channels
    last, dyt (N, >= top + 2 TH, >= left + 2 TW, K): dy[n, k, r, q] at dyt[n, top + r, left + q, k],
    zero past the plane; rows past C are left unused. Worker scratch: vbuf (W, 16, per_block, VS),
    VS >= C6; mbuf (W, 16, per_block, K)."""
    n_batch, k_out = dyt.shape[0], dyt.shape[3]
    cp, c6, vs = xt.shape[3], sums.shape[2], vbuf.shape[3]
    in_col, in_row = cp, xt.shape[2] * cp
    in_plane = xt.shape[1] * in_row
    out_row = dyt.shape[2] * k_out
    out_plane = dyt.shape[1] * out_row
    tiles, chunks, workers = n_batch * th * tw, sums.shape[0], vbuf.shape[0]
    v_plane, m_plane = per_block * vs, per_block * k_out
    zero = sums.dtype.type(0)
    for worker in prange(workers):
        v, m = vbuf[worker].reshape(-1), mbuf[worker].reshape(-1)
        for chunk in range(worker * chunks // workers, (worker + 1) * chunks // workers):
            acc = sums[chunk].reshape(-1)
            end = min(tiles, (chunk + 1) * FOLD_PRODUCTS)
            for b0 in range(chunk * FOLD_PRODUCTS, end, per_block):
                count = min(per_block, end - b0)
                for j in range(count):
                    tile = b0 + j
                    n, ty, tx = tile // (th * tw), (tile // tw) % th, tile % tw
                    base = n * in_plane + 2 * ty * in_row + 2 * tx * in_col
                    input_transform(v, j * vs, v_plane, xt, base, in_row, in_col, cp)
                    base = n * out_plane + (top + 2 * ty) * out_row + (left + 2 * tx) * k_out
                    _output_gradient_transform(m, j * k_out, m_plane, dyt, base, out_row, k_out)
                for t in range(16):  # dU[t] (6 input channels x 2 vectors of output channels) over tiles
                    for c0 in range(0, c6, ROWS):
                        for k0 in range(0, k_out, 2 * LANES):
                            gemm_6x2v_strided(
                                acc, (t * c6 + c0) * k_out + k0, k_out, v, t * v_plane + c0, 1, vs,
                                m, t * m_plane + k0, k_out, count, zero, b0 > chunk * FOLD_PRODUCTS,
                            )  # fmt: skip


@njit(inline="always")
def _g_transposed(d0, d1, d2, d3):
    """G' (d0, d1, d2, d3)': G's columns (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1)."""
    return d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3


@njit(parallel=True, cache=True)
def _fold(dw, sums, du):
    """dw (K, C, 3, 3) += G' dU G, dU[t] the chunks' sums (chunks, 16, C6, K) added in float64 in
    order (du (C, K, 16) float64 scratch; rows of sums read along K)."""
    k_out, channels = dw.shape[0], dw.shape[1]
    for c in prange(channels):
        d = du[c]
        d[:] = 0.0
        for chunk in range(sums.shape[0]):
            for t in range(16):
                row = sums[chunk, t, c]
                for k in range(k_out):
                    d[k, t] += row[k]
        for k in range(k_out):
            # dU G, row by row (4 x 3), then G' times each of its columns.
            q0 = _g_transposed(d[k, 0], d[k, 1], d[k, 2], d[k, 3])
            q1 = _g_transposed(d[k, 4], d[k, 5], d[k, 6], d[k, 7])
            q2 = _g_transposed(d[k, 8], d[k, 9], d[k, 10], d[k, 11])
            q3 = _g_transposed(d[k, 12], d[k, 13], d[k, 14], d[k, 15])
            for b in range(3):
                w0, w1, w2 = _g_transposed(q0[b], q1[b], q2[b], q3[b])
                dw[k, c, 0, b] += w0
                dw[k, c, 1, b] += w1
                dw[k, c, 2, b] += w2


def weight_grad(dw, dy, x, padding, dy_grid=None, offset=(0, 0)):
    """dw (K, C, 3, 3) += the weight gradient of the stride-1 3x3 convolution of x (N, C, H, W),
    padding ``padding``, given dy (N, K, OH, OW); or dy read from ``dy_grid``, a channels-last grid
    that holds it at ``offset``, zero around it (the input gradient's, when it ran first)."""
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    cp = -(-channels // LANES) * LANES
    c6 = -(-channels // ROWS) * ROWS
    vs = -(-max(cp, c6) // LANES) * LANES
    xt = scratch("winograd_channels.wx", (n_batch, 2 * th + 2, 2 * tw + 2, cp), x.dtype)
    to_channels_last(xt, x, padding[0], padding[1])
    if dy_grid is None:
        dy_grid = scratch("winograd_channels.dy", (n_batch, 2 * th, 2 * tw, k_out), x.dtype)
        to_channels_last(dy_grid, np.ascontiguousarray(dy), 0, 0)
    tiles = n_batch * th * tw
    chunks = -(-tiles // FOLD_PRODUCTS)
    per_block = max(1, min(FOLD_PRODUCTS, WGRAD_FLOATS // (16 * (vs + k_out))))
    workers, vbuf = worker_scratch("winograd_channels.wv", chunks, (16, per_block, vs), x.dtype)
    mbuf = scratch("winograd_channels.wm", (workers, 16, per_block, k_out), x.dtype)
    sums = scratch("winograd_channels.sums", (chunks, 16, c6, k_out), x.dtype)
    _chunk_sums(sums, xt, dy_grid, offset[0], offset[1], th, tw, per_block, vbuf, mbuf)
    _fold(dw, sums, scratch("winograd_channels.du", (channels, k_out, 16), np.float64))


__all__ = ["weight_grad"]
