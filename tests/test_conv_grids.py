"""What the direct convolutions share (kernels/cpu/conv/grids.py): planes on flat zero-padded grids
and weights packed in blocks of output channels, against NumPy; the packing's one-thread and
parallel paths (chosen by size) give the same array."""

import numpy as np
import pytest

from numbacnn.kernels.cpu.conv import grids


def packed_ref(w, groups, block, taps_i, taps_j, transpose):
    """The packing from its definition: row g * blocks + kb holds output channels kb * block + r
    of group g (zero past the group's end), per input channel and tap."""
    k_out, per_in = w.shape[0], w.shape[1]
    if transpose:
        inputs, per_group = k_out // groups, per_in
    else:
        inputs, per_group = per_in, k_out // groups
    blocks = -(-per_group // block)
    out = np.zeros((groups * blocks, inputs, len(taps_i), len(taps_j), block), w.dtype)
    for g in range(groups):
        for kb in range(blocks):
            for r in range(block):
                o = kb * block + r
                if o >= per_group:
                    continue
                for c in range(inputs):
                    for a, i in enumerate(taps_i):
                        for b, j in enumerate(taps_j):
                            value = w[g * inputs + c, o, i, j] if transpose else w[g * per_group + o, c, i, j]
                            out[g * blocks + kb, c, a, b, r] = value
    return out


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize(
    "shape, groups, block, serial",
    [((6, 1, 5, 5), 1, 4, True), ((16, 6, 3, 3), 2, 4, True), ((128, 64, 3, 3), 1, 16, False)],
)
def test_pack_weights_matches_its_definition(shape, groups, block, serial, transpose, rng):
    w = rng.standard_normal(shape).astype(np.float32)
    taps_i, taps_j = np.arange(shape[2])[::-1].copy(), np.arange(shape[3])
    want = packed_ref(w, groups, block, taps_i, taps_j, transpose)
    assert (want.size < grids.SERIAL_PACK_VALUES) == serial  # both paths are covered
    got = np.full(want.shape, np.nan, np.float32)
    grids.pack_weights(got, w, groups, taps_i, taps_j, transpose)
    np.testing.assert_array_equal(got, want)


def test_both_packing_paths_give_the_same_array(rng):
    w = rng.standard_normal((20, 7, 3, 3))
    taps = np.arange(3)
    blocks = []
    for pack in (grids._pack_serial, grids._pack_parallel):
        packed = np.full((5, 7, 3, 3, 4), np.nan)
        pack(packed, w, 5, 20, taps, taps, False)
        blocks.append(packed)
    np.testing.assert_array_equal(*blocks)


def test_to_flat_grid_places_each_plane_and_zeros_the_rest(rng):
    src = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    top, left, wp, length = 2, 1, 8, 60
    dst = np.full((2, 4, length), np.nan, np.float32)  # a plane past the source's channels
    grids.to_flat_grid(dst, src, top, left, wp)
    want = np.zeros_like(dst)
    for n in range(2):
        for c in range(3):
            for iy in range(4):
                at = (iy + top) * wp + left
                want[n, c, at : at + 5] = src[n, c, iy]
    np.testing.assert_array_equal(dst, want)
