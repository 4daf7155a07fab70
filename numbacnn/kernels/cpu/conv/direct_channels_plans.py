"""Where direct_channels.py's gathers read and write: the flat grid, taps and positions of each pass.

A plan describes one gather: the source planes sit on a zero-padded flat grid (``top`` rows and
``left`` columns of zeros before them, rows ``width`` long, planes ``length`` apart); output
position p reads tap t at ``starts[p] + offsets[t]`` and lands at ``targets[p]`` of its flat
output plane; the taps are the kernel rows ``taps_i`` x columns ``taps_j``, for every input channel
of a group (offsets in (channel, i, j) order, as the weights are packed).

Forward: the input padded by the layer's padding; every output position; every tap.

Input gradient: dx pixel iy receives dy[oy] w[i] wherever oy * s + i * d - p = iy. For the pixels
of one phase (iy = r + s m) the taps that reach them are those with (r + p - i d) divisible by s,
and they read dy row m + e_i, e_i = (r + p - i d) / s: a stride-1 gather on dy, one plan per
phase, all phases on one grid of dy padded so that every e_i lands inside it.
"""

import functools
from typing import NamedTuple

import numpy as np

from ..simd import LANES


class Plan(NamedTuple):
    top: int
    left: int
    width: int
    length: int
    taps: tuple
    taps_i: np.ndarray
    taps_j: np.ndarray
    offsets: np.ndarray
    starts: np.ndarray
    targets: np.ndarray


def _offsets(inputs, length, width, rows, columns):
    """Tap (c, a, b) at c * length + rows[a] * width + columns[b]."""
    rows, columns = np.asarray(rows, np.int64), np.asarray(columns, np.int64)
    return (np.arange(inputs)[:, None, None] * length + rows[:, None] * width + columns).ravel()


@functools.lru_cache(maxsize=256)
def forward_plan(in_shape, w_shape, out_hw, stride, padding, dilation, groups):
    """The forward gather (and the weight gradient's positions) of x (C, H, W) with w (K, C/G, KH,
    KW) into outputs (OH, OW)."""
    _, height, width = in_shape
    cg, kh, kw = w_shape[1:]
    oh, ow = out_hw
    wp = width + 2 * padding[1]
    # Slack past the last row: the weight gradient reads up to 2 taps past a kernel row's end.
    length = (height + 2 * padding[0]) * wp + 2 * dilation[1] + LANES
    starts = (np.arange(oh)[:, None] * stride[0] * wp + np.arange(ow) * stride[1]).ravel()
    return Plan(
        padding[0], padding[1], wp, length, (kh, kw), np.arange(kh), np.arange(kw),
        _offsets(cg, length, wp, np.arange(kh) * dilation[0], np.arange(kw) * dilation[1]),
        starts, np.arange(oh * ow),
    )  # fmt: skip


def _phases(size, kernel, stride, padding, dilation):
    """[(r, pixels of phase r, taps, dy row shifts)] along one axis, for phases with pixels and taps."""
    found = []
    for r in range(stride):
        taps = [i for i in range(kernel) if (r + padding - i * dilation) % stride == 0]
        pixels = len(range(r, size, stride))
        if taps and pixels:
            found.append((r, pixels, taps, [(r + padding - i * dilation) // stride for i in taps]))
    return found


def _span(phases, out_size):
    """(zeros before dy, grid size) along one axis: every shifted read m + e lands inside."""
    before = max([0] + [-min(shifts) for _, _, _, shifts in phases])
    size = max([before + out_size] + [before + pixels + max(shifts) for _, pixels, _, shifts in phases])
    return before, size


@functools.lru_cache(maxsize=256)
def input_grad_plans(in_shape, w_shape, out_hw, stride, padding, dilation, groups):
    """One gather per phase of dx (C, H, W), all on one grid of dy (K, OH, OW); empty when no tap
    reaches any pixel."""
    _, height, width = in_shape
    per_group, kh, kw = w_shape[0] // groups, w_shape[2], w_shape[3]
    rows = _phases(height, kh, stride[0], padding[0], dilation[0])
    columns = _phases(width, kw, stride[1], padding[1], dilation[1])
    top, grid_rows = _span(rows, out_hw[0])
    left, wq = _span(columns, out_hw[1])
    length = grid_rows * wq + LANES
    plans = []
    for ry, my, taps_i, e in rows:
        for rx, mx, taps_j, f in columns:
            starts = (np.arange(my)[:, None] * wq + np.arange(mx)).ravel()
            targets = ((ry + stride[0] * np.arange(my))[:, None] * width + rx + stride[1] * np.arange(mx)).ravel()
            offsets = _offsets(per_group, length, wq, np.add(e, top), np.add(f, left))
            taps = (len(taps_i), len(taps_j))
            taps_i, taps_j = np.array(taps_i), np.array(taps_j)
            plans.append(Plan(top, left, wq, length, taps, taps_i, taps_j, offsets, starts, targets))
    return tuple(plans)
