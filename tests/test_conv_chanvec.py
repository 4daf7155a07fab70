"""conv_chanvec.py on the geometries only it takes (strides, dilation, groups, padding past the
kernel), called directly: forward, input, weight and bias gradients against independent float64
references, in float32 and float64; the input gradient's phases; results independent of the
thread count. Stride 1 without groups is in test_conv_simd.py, beside conv_simd."""

import numpy as np
import pytest

from numbacnn.kernels.cpu import conv_chanvec
from numbacnn.kernels.cpu.conv_chanvec_plans import input_grad_plans

from helpers import at_all_threads_and_one, conv2d_grads_ref, conv2d_ref

# (N, C, K, H, W, (KH, KW), stride, padding, dilation, groups)
CASES = [
    (2, 3, 5, 9, 9, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # ResNet's downsampling, odd size
    (3, 16, 32, 14, 14, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # full channel blocks
    (2, 3, 40, 6, 6, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # output channels past one block
    (2, 4, 6, 8, 7, (3, 3), (2, 2), (1, 1), (1, 1), 2),
    (2, 3, 5, 9, 10, (1, 1), (2, 2), (0, 0), (1, 1), 1),  # pixels no tap reads
    (2, 3, 5, 9, 10, (1, 1), (3, 2), (1, 2), (1, 1), 1),
    (2, 4, 4, 9, 9, (3, 3), (1, 1), (2, 2), (2, 2), 1),  # dilated
    (2, 6, 6, 9, 9, (3, 2), (2, 3), (1, 0), (2, 1), 3),  # everything at once
    (2, 4, 4, 7, 7, (3, 3), (1, 1), (3, 3), (1, 1), 4),  # depthwise, padding past the kernel
    (1, 2, 3, 11, 8, (5, 4), (3, 2), (2, 1), (1, 2), 1),
]


def _case(case, dtype, rng):
    n, c, k, h, w, kernel, _, _, _, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
    return x, weight, rng.standard_normal(k).astype(dtype), case[6:]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_every_pass_matches_the_float64_references(case, dtype, tol, rng):
    x, w, b, geometry = _case(case, dtype, rng)
    stride, padding, dilation, groups = geometry
    expected = conv2d_ref(x, w, b, *geometry)
    out = np.full(expected.shape, np.nan, dtype)
    conv_chanvec.conv2d_forward(out, x, w, b, *geometry)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * np.abs(expected).max())

    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = conv2d_grads_ref(dy, x, w, padding, stride, dilation, groups)
    dx = np.full(x.shape, np.nan, dtype)  # overwritten, pixels no tap reads included
    dw, db = np.ones(w.shape, dtype), np.ones(b.shape, dtype)  # accumulated
    conv_chanvec.conv2d_backward(dx, dw, db, dy, x, w, *geometry)
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol * np.abs(dx_ref).max())
    np.testing.assert_allclose(dw - 1, dw_ref, rtol=tol, atol=tol * np.abs(dw_ref).max())
    np.testing.assert_allclose(db - 1, db_ref, rtol=tol, atol=tol * np.abs(db_ref).max())


def test_the_input_gradient_phases_cover_each_pixel_once():
    """A 3x3 stride-2 layer: 4 phases of dx with 2x2, 2x1, 1x2 and 1x1 taps, 9 taps in all, and
    every pixel of dx written by exactly one phase."""
    plans = input_grad_plans((4, 9, 10), (6, 4, 3, 3), (5, 5), (2, 2), (1, 1), (1, 1), 1)
    assert sorted(plan.taps for plan in plans) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    targets = np.concatenate([plan.targets for plan in plans])
    np.testing.assert_array_equal(np.sort(targets), np.arange(90))


def test_results_do_not_depend_on_the_thread_count(rng):
    x, w, b, geometry = _case((9, 6, 10, 13, 13, (3, 3), (2, 2), (1, 1), (1, 1), 2), np.float32, rng)
    dy = rng.standard_normal((9, 10, 7, 7)).astype(np.float32)

    def run():
        out, dx = np.empty(dy.shape, np.float32), np.empty_like(x)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        conv_chanvec.conv2d_forward(out, x, w, b, *geometry)
        conv_chanvec.conv2d_backward(dx, dw, db, dy, x, w, *geometry)
        return out, dx, dw, db

    for many, one in zip(*at_all_threads_and_one(run)):
        np.testing.assert_array_equal(many, one)
