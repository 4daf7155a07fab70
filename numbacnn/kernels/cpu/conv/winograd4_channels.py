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

from ...workspace import scratch, worker_scratch
from ..microkernel import ROWS, gemm_6x2v_strided
from ..simd import LANES
from .bias import bias_grad
from .winograd4_transforms import input_transform, output_transform, transformed_weight
from .winograd_channels import accepts
from .winograd_channels_input import to_channels_last
from .winograd_channels_weight_grad import weight_grad

# Floats of a task's V and M together: they stay in the L2 cache while its 36 products run.
TASK_FLOATS = 1 << 16


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


def _convolve(out, x, w, b, padding, transpose_flip):
    """out = the stride-1 3x3 convolution of x with w (or w transposed and flipped), padding p.
    Returns x's padded channels-last grid (a scratch view, valid until the next call)."""
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    th, tw = (oh + 3) // 4, (ow + 3) // 4
    cp = -(-channels // LANES) * LANES
    xt = scratch("winograd4_channels.x", (n_batch, 4 * th + 2, 4 * tw + 2, cp), x.dtype)
    to_channels_last(xt, x, padding[0], padding[1])
    u = scratch("winograd4_channels.u", (36, channels, k_out), x.dtype)
    _transform_weights(u, w, transpose_flip)
    tiles = n_batch * th * tw
    per_task = max(1, TASK_FLOATS // (36 * (cp + k_out)) // ROWS) * ROWS
    per_task = min(per_task, -(-tiles // ROWS) * ROWS)
    workers, vbuf = worker_scratch("winograd4_channels.v", -(-tiles // per_task), (36, per_task, cp), x.dtype)
    mbuf = scratch("winograd4_channels.m", (workers, 36, per_task, k_out), x.dtype)
    ybuf = scratch("winograd4_channels.y", (workers, 16, k_out), x.dtype)
    zbuf = scratch("winograd4_channels.z", (workers, 24 * LANES), x.dtype)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:LANES]
    # The tiles are stored by flat index: a strided out gets them through a contiguous scratch.
    target = out if out.flags.c_contiguous else scratch("winograd4_channels.out", out.shape, out.dtype)
    _tasks(target, xt, u, bias, has_bias, per_task, vbuf, mbuf, ybuf, zbuf)
    if target is not out:
        out[...] = target
    return xt


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv3x3(x, w) + b, stride 1, padding g.padding."""
    _convolve(out, x, w, b, g.padding, False)


def backward(dx, dw, db, dy, x, w, g):
    """The input gradient (the forward on dy padded by 2 - p, weights transposed and flipped), the
    weight gradient (F(2x2, 3x3), winograd_channels_weight_grad.py, reading dy from the input
    gradient's grid when both are asked for: its 4x4 tiles cover every row and column that the 2x2
    tiles read, zero past dy) and the bias gradient; each skipped if None."""
    if db is not None:
        bias_grad(db, dy)
    dy_grid, offset = None, (0, 0)
    if dx is not None:
        offset = (2 - g.padding[0], 2 - g.padding[1])
        dy_grid = _convolve(dx, dy, w, None, offset, True)
    if dw is not None:
        weight_grad(dw, dy, x, g.padding, dy_grid, offset)


__all__ = ["accepts", "backward", "forward"]
