"""Winograd's F(2x2, 3x3) vectorised over channels: the table's "winograd_channels", for the three
passes of stride-1 3x3 layers whose channel counts fill blocks of 2 LANES (the weight gradient in
winograd_channels_weight_grad.py).

The same algorithm as winograd.py (Y = A' [(G g G') . (B' d B)] A, 16 products per channel pair
instead of 36), with the channels, not the tiles, as the vector axis:

* the input is first copied into a padded channels-last grid xt (N, 2 TH + 2, 2 TW + 2, CP), CP
  the channels rounded up to whole vectors, zero outside the image (winograd_channels_input.py),
  so that a tile's 16 inputs are 16 vector loads per vector of channels: no parity split, no
  spare slots;
* a task is a block of consecutive tiles (of one sample or several); its input transform writes
  V (16, tiles, CP), its 16 products M[t] (tiles x K) = V[t] (tiles x C) @ U[t] (C x K) run on the
  GEMM tile (6 tiles x 2 vectors of output channels, each V entry broadcast), and per tile the
  output transform makes its 2x2 outputs for every channel, which ``_write_tile`` stores into the
  NCHW out while the task's samples are still in cache.
V and M stay in the worker's scratch, sized for the L2 cache.

The input gradient is the same algorithm on dy padded by 2 - p, with the weights transposed and
flipped. Shapes: x (N, C, H, W), w (K, C, 3, 3), b (K,) or None, out (N, K, OH, OW).
"""

from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..microkernel import ROWS, gemm_6x2v_strided
from ..simd import LANES, vadd, vload, vsplat, vstore, vsub
from . import winograd
from .bias import bias_grad
from .winograd_channels_input import input_transform, to_channels_last
from .winograd_channels_weight_grad import weight_grad

# Floats of a task's V and M together: they stay in the L2 cache while its products run (16 here,
# 36 for winograd4_channels.py, which shares convolve_in_tiles).
TASK_FLOATS = 1 << 16


def accepts(g):
    """None where winograd.py's rule holds and both channel counts fill blocks of 2 LANES (each is
    the output of one of the two passes), else why not."""
    reason = winograd.accepts(g)
    if reason is not None:
        return reason
    block = 2 * LANES
    if g.channels % block or g.k_out % block:
        return f"{g.channels} -> {g.k_out} channels: both need to be multiples of {block} (2 LANES)"
    return None


@njit(parallel=True, cache=True)
def _transform_weights(u, w, transpose_flip):
    """u (16, C', K') = G w'[k, c] G' at u[:, c, k], in float64 stored in u's dtype
    (winograd.transformed_weight: w' = w, or w transposed and flipped)."""
    inputs, outputs = u.shape[1], u.shape[2]
    for c in prange(inputs):
        for k in range(outputs):
            values = winograd.transformed_weight(w, k, c, transpose_flip)
            for t in range(16):
                u[t, c, k] = values[t]


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _output_transform(y, m, at, plane, b, has_bias, k_out):
    """y (4, K) = the 2x2 outputs A' m A (+ b) of one tile (output i, j at y[2 i + j]), its 16
    products at m.flat[at + t plane + k]. A as in winograd.py."""
    zero = vsplat(y.dtype.type(0))
    for kv in range(0, k_out, LANES):
        s = at + kv
        m00, m01, m02, m03 = vload(m, s), vload(m, s + plane), vload(m, s + 2 * plane), vload(m, s + 3 * plane)
        s += 4 * plane
        m10, m11, m12, m13 = vload(m, s), vload(m, s + plane), vload(m, s + 2 * plane), vload(m, s + 3 * plane)
        s += 4 * plane
        m20, m21, m22, m23 = vload(m, s), vload(m, s + plane), vload(m, s + 2 * plane), vload(m, s + 3 * plane)
        s += 4 * plane
        m30, m31, m32, m33 = vload(m, s), vload(m, s + plane), vload(m, s + 2 * plane), vload(m, s + 3 * plane)
        a0, a1 = vadd(vadd(m00, m10), m20), vadd(vadd(m01, m11), m21)
        a2, a3 = vadd(vadd(m02, m12), m22), vadd(vadd(m03, m13), m23)
        c0, c1 = vsub(vsub(m10, m20), m30), vsub(vsub(m11, m21), m31)
        c2, c3 = vsub(vsub(m12, m22), m32), vsub(vsub(m13, m23), m33)
        bias = vload(b, kv) if has_bias else zero
        vstore(y, kv, vadd(vadd(vadd(a0, a1), a2), bias))
        vstore(y, k_out + kv, vadd(vsub(vsub(a1, a2), a3), bias))
        vstore(y, 2 * k_out + kv, vadd(vadd(vadd(c0, c1), c2), bias))
        vstore(y, 3 * k_out + kv, vadd(vsub(vsub(c1, c2), c3), bias))


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _write_tile(out, y, n, ty, tx, k_out, oh, ow):
    """out[n, :, 2 ty : 2 ty + 2, 2 tx : 2 tx + 2] = y (4, K), the tile's outputs channels last,
    cut at the plane's edge; ``out`` the flat (N K OH OW,) view of the output. Flat indices, not a
    view per channel: building views cost more than the stores (benchmarks/NOTES.md, entry 61)."""
    oy, ox = 2 * ty, 2 * tx
    plane = oh * ow
    at = n * k_out * plane + oy * ow + ox
    right, below = ox + 1 < ow, oy + 1 < oh
    if right and below:
        for k in range(k_out):
            s = at + k * plane
            out[s], out[s + 1], out[s + ow], out[s + ow + 1] = y[0, k], y[1, k], y[2, k], y[3, k]
        return
    for k in range(k_out):
        s = at + k * plane
        out[s] = y[0, k]
        if right:
            out[s + 1] = y[1, k]
        if below:
            out[s + ow] = y[2, k]


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tasks(out, xt, u, b, has_bias, tiles_per_task, vbuf, mbuf, ybuf):
    """out (N, K, OH, OW) (+ b) = the convolution of the padded channels-last xt (N, 2 TH + 2,
    2 TW + 2, CP) with the transformed weights u (16, C, K), ``tiles_per_task`` tiles (a multiple of
    6) per task. Worker scratch: vbuf (W, 16, tiles_per_task, CP), mbuf (W, 16, tiles_per_task, K),
    ybuf (W, 4, K)."""
    n_batch, k_out, channels = out.shape[0], out.shape[1], u.shape[1]
    oh, ow = out.shape[2], out.shape[3]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    flat = out.reshape(-1)
    cp = xt.shape[3]
    in_col, in_row = cp, xt.shape[2] * cp
    in_plane = xt.shape[1] * in_row
    tiles, workers = n_batch * th * tw, vbuf.shape[0]
    tasks = -(-tiles // tiles_per_task)
    v_plane, m_plane = tiles_per_task * cp, tiles_per_task * k_out
    zero = out.dtype.type(0)
    for worker in prange(workers):
        v, m, y = vbuf[worker].reshape(-1), mbuf[worker].reshape(-1), ybuf[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            t0 = task * tiles_per_task
            count = min(tiles_per_task, tiles - t0)
            for j in range(count):
                tile = t0 + j
                n, ty, tx = tile // (th * tw), (tile // tw) % th, tile % tw
                base = n * in_plane + 2 * ty * in_row + 2 * tx * in_col
                input_transform(v, j * cp, v_plane, xt, base, in_row, in_col, cp)
            used = -(-count // ROWS) * ROWS  # rows past count hold stale values, never written out
            for t in range(16):  # M[t] = V[t] (6 tiles at a time) @ U[t] (2 vectors of channels)
                for k0 in range(0, k_out, 2 * LANES):
                    for j0 in range(0, used, ROWS):
                        gemm_6x2v_strided(
                            m, t * m_plane + j0 * k_out + k0, k_out, v, t * v_plane + j0 * cp, cp, 1,
                            u, t * channels * k_out + k0, k_out, channels, zero, False,
                        )  # fmt: skip
            for j in range(count):
                tile = t0 + j
                _output_transform(y, m, j * k_out, m_plane, b, has_bias, k_out)
                _write_tile(flat, y, tile // (th * tw), (tile // tw) % th, tile % tw, k_out, oh, ow)


def convolve_in_tiles(out, x, w, b, padding, transpose_flip, tile, name, transform_weights, tasks, worker_buffers):
    """out = the stride-1 3x3 convolution of x with w (or w transposed and flipped), padding p, by
    Winograd F(tile x tile, 3x3) over channels (this module's tile 2, winograd4_channels.py's 4):
    x copied into a padded channels-last grid, the weights transformed by ``transform_weights(u, w,
    transpose_flip)`` into u ((tile + 2)^2, C, K), then ``tasks(out, xt, u, b, has_bias, per_task,
    vbuf, mbuf, *worker_buffers(workers, K, dtype))``; scratch slots named ``name``.*. Returns x's
    grid (a scratch view, valid until the next call)."""
    n_batch, channels = x.shape[0], x.shape[1]
    k_out, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    th, tw = -(-oh // tile), -(-ow // tile)
    positions = (tile + 2) ** 2
    cp = -(-channels // LANES) * LANES
    xt = scratch(f"{name}.x", (n_batch, tile * th + 2, tile * tw + 2, cp), x.dtype)
    to_channels_last(xt, x, padding[0], padding[1])
    u = scratch(f"{name}.u", (positions, channels, k_out), x.dtype)
    transform_weights(u, w, transpose_flip)
    tiles = n_batch * th * tw
    per_task = max(1, TASK_FLOATS // (positions * (cp + k_out)) // ROWS) * ROWS
    per_task = min(per_task, -(-tiles // ROWS) * ROWS)
    workers, vbuf = worker_scratch(f"{name}.v", -(-tiles // per_task), (positions, per_task, cp), x.dtype)
    # A vector's overrun past the last row: the GEMM reads at most up to the end of its 2 vectors.
    mbuf = scratch(f"{name}.m", (workers, positions, per_task, k_out), x.dtype)
    has_bias = b is not None
    bias = b if has_bias else out.reshape(-1)[:LANES]
    # The tiles are stored by flat index: a strided out gets them through a contiguous scratch.
    target = out if out.flags.c_contiguous else scratch(f"{name}.out", out.shape, out.dtype)
    tasks(target, xt, u, bias, has_bias, per_task, vbuf, mbuf, *worker_buffers(workers, k_out, x.dtype))
    if target is not out:
        out[...] = target
    return xt


def gradients(convolve, dx, dw, db, dy, x, w, g):
    """The input gradient (``convolve``(dx, dy, w, None, padding, True): the forward on dy padded
    by 2 - p, weights transposed and flipped), the weight gradient (winograd_channels_weight_grad.py,
    reading dy from the input gradient's grid when both are asked for) and the bias gradient; each
    skipped if None."""
    if db is not None:
        bias_grad(db, dy)
    dy_grid, offset = None, (0, 0)
    if dx is not None:
        offset = (2 - g.padding[0], 2 - g.padding[1])
        dy_grid = convolve(dx, dy, w, None, offset, True)
    if dw is not None:
        weight_grad(dw, dy, x, g.padding, dy_grid, offset)


def _worker_buffers(workers, k_out, dtype):
    return (scratch("winograd_channels.y", (workers, 4, k_out), dtype),)  # a tile's outputs


def _convolve(out, x, w, b, padding, transpose_flip):
    return convolve_in_tiles(
        out, x, w, b, padding, transpose_flip, 2, "winograd_channels", _transform_weights, _tasks, _worker_buffers
    )


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv3x3(x, w) + b, stride 1, padding g.padding."""
    _convolve(out, x, w, b, g.padding, False)


def backward(dx, dw, db, dy, x, w, g):
    """dx overwritten, dw and db accumulated (``gradients``); each skipped if None."""
    gradients(_convolve, dx, dw, db, dy, x, w, g)


__all__ = ["accepts", "backward", "forward"]
