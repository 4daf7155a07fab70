"""Direct convolution vectorised over output channels (the table's "direct_channels"): any stride,
padding, dilation and groups.

The vector runs over output channels, so no position is wasted whatever the plane's size or
stride. Every pass is one gather on a zero-padded flat grid of planes: output position p reads
tap t at ``starts[p] + offsets[t]`` and lands at ``targets[p]`` of its output plane
(direct_channels_plans.py builds these). A tile (conv_tiles.gather_6x2v) is 6 output positions x
2 vectors of output channels (12 accumulators); per tap it loads 2 weight vectors, broadcasts the
6 input pixels the tap reads and issues 12 FMAs.
  * forward: the gather on the padded input;
  * input gradient: a gather on padded dy with the weights transposed, once per stride phase of
    dx (the taps that reach dx pixels of one phase form a stride-1 convolution of dy);
  * weight gradient: vectorised over output channels too: dy is laid out pixel-major, and a task
    (4 input channels x 4 vectors of output channels of one group, or 2 vectors where a group has
    at most 2 LANES) sums 3 taps of a kernel row at a time (conv_tiles.outer_3x4v, 12 accumulators,
    or outer_3x2v) over every sample and position, inside the task, so the result does not depend
    on the thread count.

Shapes: x (N, C, H, W), w (K, C/G, KH, KW), b (K,) or None, out (N, K, OH, OW), G = groups.
"""

import numpy as np
from numba import njit, prange

from ...workspace import scratch, worker_scratch
from ..conv_tiles import gather_6x2v, gather_12x1v, outer_3x2v, outer_3x4v
from ..microkernel import WGRAD_CHANNELS, samples_per_fold
from ..simd import LANES
from .bias import bias_grad
from .direct_channels_plans import forward_plan, input_grad_plans
from .grids import pack_weights, to_flat_grid

TILE = 6  # output positions per tile
BLOCK = 2 * LANES  # output channels per tile
WGRAD_BLOCK = 4 * LANES  # output channels per weight-gradient task


def accepts(g):
    """None: every layer (any stride, padding, dilation and groups) with output positions."""
    return None if g.positions >= 1 else "no output positions"


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _tiles(out, grid, packed, block, offsets, starts, targets, groups, group_stride, b, has_bias, zero, buffers):
    """out (N, K, Q) (+ b) at ``targets`` from the flat padded planes grid (N, C*L): output
    position p of group g reads tap t at g * group_stride + starts[p] + offsets[t]. The packed
    weights come in blocks of ``block`` output channels: 2 LANES (tiles of 6 positions) or LANES
    (tiles of 12). A task is one sample x one block of output channels; worker w scatters its
    tiles through buffers[w] (12 LANES,)."""
    n_batch, k_out = out.shape[0], out.shape[1]
    rows, positions = packed.shape[0], starts.shape[0]
    blocks, per_group = rows // groups, k_out // groups
    workers, tasks = buffers.shape[0], n_batch * rows
    tile_rows = TILE if block == BLOCK else 2 * TILE
    for worker in prange(workers):
        buffer = buffers[worker].reshape(tile_rows, block)
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            n, row = task // rows, task % rows
            g, kb = row // blocks, row % blocks
            planes, weights = grid[n], packed[row]
            base = g * group_stride
            for p0 in range(0, positions, tile_rows):
                if block == BLOCK:
                    gather_6x2v(buffer, planes, weights, offsets, starts, p0, base, zero)
                else:
                    gather_12x1v(buffer, planes, weights, offsets, starts, p0, base, zero)
                for r in range(min(tile_rows, positions - p0)):
                    q = targets[p0 + r]
                    for lane in range(min(block, per_group - kb * block)):
                        k = g * per_group + kb * block + lane
                        out[n, k, q] = buffer[r, lane] + (b[k] if has_bias else zero)


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _weight_grad(dw, dy_pixels, grid, starts, wp, dilation_h, dilation_w, zero, totals, accs):
    """dw (K, C/G, KH, KW) += sum over samples and positions of dy_pixels (N, P, G*K') (pixel-major,
    K' channels per group, zero past K/G) times the input pixels each tap reads in grid (N, C, L):
    tap (i, j) of position p at starts[p] + i * dilation_h * wp + j * dilation_w.

    A task is WGRAD_CHANNELS input channels x B output channels of one group, B = WGRAD_BLOCK, or
    2 LANES where a group has no more (``totals.shape[-1]``). Samples are the outer loop, so one
    sample's dy rows and input planes stay in L1 while every tap reads them; the accumulators of a
    pass (3 taps of a row x B / LANES vectors) wait in ``acc`` between passes, and every
    ``fold_samples`` samples their float32 sums go into float64 ``total``. Worker w keeps them in
    totals[w] (WGRAD_CHANNELS, KH, KW, B) float64 and accs[w] (WGRAD_CHANNELS, KH, KW/3, 3 B)."""
    k_out, channels, kh, kw = dw.shape
    n_batch, positions, k_padded = dy_pixels.shape
    groups = grid.shape[1] // channels
    per_group, padded_group, block = k_out // groups, k_padded // groups, totals.shape[-1]
    blocks, cblocks, jblocks = padded_group // block, -(-channels // WGRAD_CHANNELS), -(-kw // 3)
    fold_samples = samples_per_fold(positions)
    workers, tasks = totals.shape[0], groups * cblocks * blocks
    for worker in prange(workers):
        total, acc = totals[worker], accs[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            g, cb, kb = task // (cblocks * blocks), (task // blocks) % cblocks, task % blocks
            c0, c1 = cb * WGRAD_CHANNELS, min(cb * WGRAD_CHANNELS + WGRAD_CHANNELS, channels)
            k0 = g * padded_group + kb * block
            total[:] = 0
            for n0 in range(0, n_batch, fold_samples):
                acc[:] = 0
                for n in range(n0, min(n0 + fold_samples, n_batch)):
                    dy = dy_pixels[n].reshape(-1)
                    for c in range(c0, c1):
                        plane = grid[n, g * channels + c]
                        for i in range(kh):
                            for jb in range(jblocks):
                                shift = i * dilation_h * wp + 3 * jb * dilation_w
                                if block == WGRAD_BLOCK:
                                    outer_3x4v(acc[c - c0, i, jb], plane, dy, starts, shift, dilation_w, k_padded, k0)
                                else:
                                    outer_3x2v(acc[c - c0, i, jb], plane, dy, starts, shift, dilation_w, k_padded, k0)
                # Each fold's sums go into float64: long reductions keep their precision.
                for c in range(c1 - c0):
                    for i in range(kh):
                        for jb in range(jblocks):
                            for dj in range(min(3, kw - 3 * jb)):
                                for r in range(block):
                                    total[c, i, 3 * jb + dj, r] += acc[c, i, jb, dj * block + r]
            for c in range(c0, c1):
                for r in range(min(block, per_group - kb * block)):
                    for i in range(kh):
                        for j in range(kw):
                            dw[g * per_group + kb * block + r, c, i, j] += total[c - c0, i, j, r]


@njit(parallel=True, cache=True)
def _to_pixels(dy_pixels, dy, groups):
    """dy_pixels (N, P, G*K') <- dy (N, K, OH, OW) pixel-major, K' channels per group, zeros past
    each group's K/G."""
    n_batch, k_out, oh, ow = dy.shape
    per_group, padded_group = k_out // groups, dy_pixels.shape[2] // groups
    for n in prange(n_batch):
        dy_pixels[n] = 0
        for k in range(k_out):
            column = (k // per_group) * padded_group + k % per_group
            for oy in range(oh):
                for ox in range(ow):
                    dy_pixels[n, oy * ow + ox, column] = dy[n, k, oy, ox]


def _on_grid(src, plan, name):
    """src (N, C, H, W) on the plan's zero-padded flat grid (N, C, L), in workspace ``name``."""
    grid = scratch(name, (src.shape[0], src.shape[1], plan.length), src.dtype)
    to_flat_grid(grid, src, plan.top, plan.left, plan.width)
    return grid


def _gather(out, grid, w, b, groups, plan, transpose):
    """out (N, K', OH', OW') at the plan's targets (+ b) = the plan's gather on grid (N, C', L)."""
    n_batch, channels = grid.shape[0], grid.shape[1]
    inputs, per_group = channels // groups, out.shape[1] // groups
    block = LANES if per_group <= LANES else BLOCK  # one vector, not two half empty
    packed = scratch("direct_channels.w", (groups * -(-per_group // block), inputs, *plan.taps, block), grid.dtype)
    pack_weights(packed, w, groups, plan.taps_i, plan.taps_j, transpose)
    has_bias = b is not None
    out_flat = out.reshape(n_batch, out.shape[1], -1)
    _, buffers = worker_scratch("direct_channels.tiles", n_batch * packed.shape[0], (TILE * BLOCK,), grid.dtype)
    _tiles(
        out_flat, grid.reshape(n_batch, -1), packed.reshape(packed.shape[0], -1), block, plan.offsets, plan.starts,
        plan.targets, groups, inputs * plan.length, b if has_bias else out_flat[0, 0, :1], has_bias,
        grid.dtype.type(0), buffers,
    )  # fmt: skip


def forward(out, x, w, b, g):
    """out (N, K, OH, OW) = conv(x, w) + b."""
    plan = forward_plan(x.shape[1:], w.shape, out.shape[2:], g.stride, g.padding, g.dilation, g.groups)
    _gather(out, _on_grid(x, plan, "direct_channels.x"), w, b, g.groups, plan, False)


def backward(dx, dw, db, dy, x, w, g):
    """The gradients of forward: dx overwritten, dw and db accumulated; None skips one."""
    dilation, groups = g.dilation, g.groups
    geometry = (g.stride, g.padding, g.dilation, g.groups)
    if db is not None:
        bias_grad(db, dy)
    if dw is not None:
        plan = forward_plan(x.shape[1:], w.shape, dy.shape[2:], *geometry)
        grid = _on_grid(x, plan, "direct_channels.x")
        n_batch, k_out = dy.shape[0], dy.shape[1]
        block = 2 * LANES if k_out // groups <= 2 * LANES else WGRAD_BLOCK  # no half-empty blocks
        padded_group = -(-(k_out // groups) // block) * block
        dy_pixels = scratch("direct_channels.dy", (n_batch, plan.starts.size, groups * padded_group), x.dtype)
        _to_pixels(dy_pixels, dy, groups)
        kh, kw = w.shape[2], w.shape[3]
        tasks = groups * -(-w.shape[1] // WGRAD_CHANNELS) * (padded_group // block)
        workers, totals = worker_scratch("direct_channels.total", tasks, (WGRAD_CHANNELS, kh, kw, block), np.float64)
        accs = scratch("direct_channels.acc", (workers, WGRAD_CHANNELS, kh, -(-kw // 3), 3 * block), x.dtype)
        _weight_grad(
            dw, dy_pixels, grid, plan.starts, plan.width, dilation[0], dilation[1], x.dtype.type(0), totals, accs
        )
    if dx is not None:
        plans = input_grad_plans(x.shape[1:], w.shape, dy.shape[2:], *geometry)
        if sum(plan.starts.size for plan in plans) < dx.shape[2] * dx.shape[3]:
            dx[...] = 0  # pixels no tap reads (a stride larger than the kernel) get no gradient
        grid = _on_grid(dy, plans[0], "direct_channels.dy_grid") if plans else None  # one for every phase
        for plan in plans:
            _gather(dx, grid, w, None, groups, plan, True)


__all__ = ["accepts", "backward", "forward"]
