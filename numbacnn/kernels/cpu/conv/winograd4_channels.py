"""Winograd's F(4x4, 3x3) vectorised over channels: the table's "winograd4_channels", for the three
passes of stride-1 3x3 layers whose channel counts fill blocks of 2 LANES. The weight gradient
stays F(2x2, 3x3) (winograd_channels_weight_grad.py), reading dy from the input gradient's grid.

A 4x4 output tile comes from a 6x6 input tile d as Y = A' [(G g G') . (B' d B)] A (Lavin & Gray
2016): 36 products per pair of input and output channels for 16 outputs, against 64 for F(2x2, 3x3)
and 144 for the direct convolution. The transforms (winograd4_transforms.py) are larger, so it pays
where the planes fill whole 4x4 tiles (an 8x8 or 16x16 plane; a 7x7 one wastes no more than
F(2x2) does) and the channels are many enough that the products outweigh the transforms.

The layout and the task are winograd_channels.py's: the input copied into a padded channels-last
grid xt (N, 4 TH + 2, 4 TW + 2, CP); a task is a block of consecutive tiles whose input transform
writes V (36, tiles, CP), whose 36 products M[t] (tiles x K) = V[t] (tiles x C) @ U[t] (C x K) run on
the GEMM tile, and whose output transform writes each tile's 4x4 outputs into the NCHW out. V and
M stay in the worker's scratch, sized for the L2 cache.

The input gradient is the same algorithm on dy padded by 2 - p, with the weights transposed and
flipped. Shapes: x (N, C, H, W), w (K, C, 3, 3), b (K,) or None, out (N, K, OH, OW).
"""

from numba import njit, prange

from ...workspace import scratch
from ..microkernel import ROWS, gemm_6x2v_strided
from ..simd import LANES
from .winograd4_transforms import input_transform, output_transform, transformed_weight
from .winograd_channels import accepts, convolve_in_tiles, gradients


@njit(parallel=True, cache=True)
def _transform_weights(u, w, transpose_flip):
    """u (36, C', K') = G w'[k, c] G' at u[:, c, k], in float64 stored in u's dtype (w' = w, or w
    transposed and flipped)."""
    inputs, outputs = u.shape[1], u.shape[2]
    for c in prange(inputs):
        for k in range(outputs):
            values = transformed_weight(w, k, c, transpose_flip)
            for t in range(36):
                u[t, c, k] = values[t]


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _write_tile(out, y, n, ty, tx, k_out, oh, ow):
    """out[n, :, 4 ty : 4 ty + 4, 4 tx : 4 tx + 4] = y (16, K), the tile's outputs channels last
    (output i, j at y[4 i + j]), cut at the plane's edge; ``out`` the flat (N K OH OW,) view of
    the output, indexed flat as in winograd_channels._write_tile."""
    oy, ox = 4 * ty, 4 * tx
    rows, cols = min(4, oh - oy), min(4, ow - ox)
    plane = oh * ow
    at = n * k_out * plane + oy * ow + ox
    if rows == 4 and cols == 4:
        for k in range(k_out):
            s = at + k * plane
            for i in range(4):
                r, t = s + i * ow, 4 * i
                out[r], out[r + 1], out[r + 2], out[r + 3] = y[t, k], y[t + 1, k], y[t + 2, k], y[t + 3, k]
        return
    for k in range(k_out):
        s = at + k * plane
        for i in range(rows):
            for j in range(cols):
                out[s + i * ow + j] = y[4 * i + j, k]


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tasks(out, xt, u, b, has_bias, tiles_per_task, vbuf, mbuf, ybuf, zbuf):
    """out (N, K, OH, OW) (+ b) = the convolution of the padded channels-last xt (N, 4 TH + 2,
    4 TW + 2, CP) with the transformed weights u (36, C, K), ``tiles_per_task`` tiles (a multiple of
    6) per task. Worker scratch: vbuf (W, 36, tiles_per_task, CP), mbuf (W, 36, tiles_per_task, K),
    ybuf (W, 16, K), zbuf (W, 24 LANES)."""
    n_batch, k_out, channels = out.shape[0], out.shape[1], u.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    th, tw = (oh + 3) // 4, (ow + 3) // 4
    flat = out.reshape(-1)
    cp = xt.shape[3]
    in_col, in_row = cp, xt.shape[2] * cp
    in_plane = xt.shape[1] * in_row
    tiles, workers = n_batch * th * tw, vbuf.shape[0]
    tasks = -(-tiles // tiles_per_task)
    v_plane, m_plane = tiles_per_task * cp, tiles_per_task * k_out
    zero = out.dtype.type(0)
    for worker in prange(workers):
        v, m, y, z = vbuf[worker].reshape(-1), mbuf[worker].reshape(-1), ybuf[worker], zbuf[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            t0 = task * tiles_per_task
            count = min(tiles_per_task, tiles - t0)
            for j in range(count):
                tile = t0 + j
                n, ty, tx = tile // (th * tw), (tile // tw) % th, tile % tw
                base = n * in_plane + 4 * ty * in_row + 4 * tx * in_col
                input_transform(v, j * cp, v_plane, xt, base, in_row, in_col, cp)
            used = -(-count // ROWS) * ROWS  # rows past count hold stale values, never written out
            for t in range(36):  # M[t] = V[t] (6 tiles at a time) @ U[t] (2 vectors of channels)
                for k0 in range(0, k_out, 2 * LANES):
                    for j0 in range(0, used, ROWS):
                        gemm_6x2v_strided(
                            m, t * m_plane + j0 * k_out + k0, k_out, v, t * v_plane + j0 * cp, cp, 1,
                            u, t * channels * k_out + k0, k_out, channels, zero, False,
                        )  # fmt: skip
            for j in range(count):
                tile = t0 + j
                output_transform(y, m, j * k_out, m_plane, b, has_bias, k_out, z)
                _write_tile(flat, y, tile // (th * tw), (tile // tw) % th, tile % tw, k_out, oh, ow)


def _worker_buffers(workers, k_out, dtype):
    """A tile's outputs (16, K) and the output transform's scratch (24 LANES), per worker."""
    return (
        scratch("winograd4_channels.y", (workers, 16, k_out), dtype),
        scratch("winograd4_channels.z", (workers, 24 * LANES), dtype),
    )


def _convolve(out, x, w, b, padding, transpose_flip):
    return convolve_in_tiles(
        out, x, w, b, padding, transpose_flip, 4, "winograd4_channels", _transform_weights, _tasks, _worker_buffers
    )


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv3x3(x, w) + b, stride 1, padding g.padding."""
    _convolve(out, x, w, b, g.padding, False)


def backward(dx, dw, db, dy, x, w, g):
    """dx overwritten, dw and db accumulated (winograd_channels.gradients: the weight gradient is
    F(2x2, 3x3)'s, reading dy from this input gradient's grid, whose 4x4 tiles cover every row and
    column that the 2x2 tiles read, zero past dy); each skipped if None."""
    gradients(_convolve, dx, dw, db, dy, x, w, g)


__all__ = ["accepts", "backward", "forward"]
