"""Max, average and global average pooling: reference, gradients, float32 vs float64."""

import numpy as np
import pytest

import numbacnn as nc

from helpers import distinct_values, gradient_check, pool2d_ref

# (N, C, H, W, kernel, stride, padding)
CASES = [
    (1, 1, 4, 4, (2, 2), None, (0, 0)),
    (2, 3, 7, 6, (3, 3), (2, 2), (1, 1)),
    (2, 2, 5, 9, (2, 3), (1, 2), (1, 1)),
    (3, 2, 6, 6, (3, 2), (3, 1), (0, 1)),
    (1, 4, 8, 5, (2, 2), (1, 1), (0, 0)),  # overlapping windows
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_reference(kind, case, rng):
    n, c, h, w, kernel, stride, padding = case
    cls = nc.layers.MaxPool2d if kind == "max" else nc.layers.AvgPool2d
    layer = cls(kernel, stride, padding).to(np.float64)
    x = rng.standard_normal((n, c, h, w))
    y = layer(x)
    ref = pool2d_ref(x, layer.kernel_size, layer.stride, layer.padding, kind)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradients(kind, case, rng):
    n, c, h, w, kernel, stride, padding = case
    cls = nc.layers.MaxPool2d if kind == "max" else nc.layers.AvgPool2d
    # Distinct, well separated values: a finite-difference step never changes the argmax.
    x = distinct_values(rng, (n, c, h, w), gap=1e-2)
    assert gradient_check(cls(kernel, stride, padding), x, eps=1e-5) > 0


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_float32_agrees_with_float64(kind, rng):
    cls = nc.layers.MaxPool2d if kind == "max" else nc.layers.AvgPool2d
    x = distinct_values(rng, (2, 3, 7, 7), gap=1e-2)
    l32, l64 = cls(3, 2, 1), cls(3, 2, 1).to(np.float64)
    y32, y64 = l32(x.astype(np.float32)), l64(x)
    np.testing.assert_allclose(y32, y64, rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y32.shape)
    np.testing.assert_allclose(l32.backward(dy.astype(np.float32)), l64.backward(dy), rtol=1e-5, atol=1e-6)


def test_global_average_pool(rng):
    x = rng.standard_normal((3, 4, 5, 6))
    layer = nc.layers.AdaptiveAvgPool2d(1).to(np.float64)
    np.testing.assert_allclose(layer(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    assert gradient_check(layer, x) == x.size
    l32 = nc.layers.AdaptiveAvgPool2d(1)
    np.testing.assert_allclose(l32(x.astype(np.float32)), layer(x), rtol=1e-5, atol=1e-6)


def test_max_pool_routes_gradient_to_argmax():
    x = np.array([[[[1, 5], [3, 2]]]], dtype=np.float32)
    layer = nc.layers.MaxPool2d(2)
    assert layer(x)[0, 0, 0, 0] == 5
    dx = layer.backward(np.array([[[[7]]]], dtype=np.float32))
    np.testing.assert_array_equal(dx, [[[[0, 7], [0, 0]]]])


def test_padding_larger_than_half_kernel_is_rejected():
    with pytest.raises(ValueError, match="padding"):
        nc.layers.MaxPool2d(2, padding=2)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 6, 4), (1, 1, 3, 3)])
def test_max_pool_2x2_fast_path_on_odd_sizes(shape, rng):
    """The 2x2 / stride-2 kernels (selects, one write per input) on sizes whose last row or column
    lies in no window: reference forward, float64 gradients, zeros where no window reaches."""

    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 7  # no ties
    layer = nc.layers.MaxPool2d(2).to(np.float64)
    np.testing.assert_array_equal(layer(x), pool2d_ref(x, (2, 2), (2, 2), (0, 0), "max"))
    assert gradient_check(layer, x) == x.size
    dx = layer.backward(np.ones(layer(x).shape))
    assert not dx[:, :, 2 * (shape[2] // 2) :, :].any() and not dx[:, :, :, 2 * (shape[3] // 2) :].any()
    assert dx.sum() == np.prod(layer(x).shape)


def _max_pool_scan_order(x, kernel, stride, padding, oh, ow):
    """The rule, one window at a time: the first pixel inside, then a later one only when strictly
    greater or a NaN over a number (a NaN once taken stays)."""
    n, c, h, w = x.shape
    out, idx = np.empty((n, c, oh, ow), x.dtype), np.empty((n, c, oh, ow), np.int64)
    for a in range(n):
        for b in range(c):
            for oy in range(oh):
                for ox in range(ow):
                    best = None
                    for i in range(kernel[0]):
                        for j in range(kernel[1]):
                            iy, ix = oy * stride[0] - padding[0] + i, ox * stride[1] - padding[1] + j
                            if not (0 <= iy < h and 0 <= ix < w):
                                continue
                            v = x[a, b, iy, ix]
                            if best is None or v > best[0] or (np.isnan(v) and not np.isnan(best[0])):
                                best = (v, iy * w + ix)
                    out[a, b, oy, ox], idx[a, b, oy, ox] = best
    return out, idx


@pytest.mark.parametrize("seed", range(12))
def test_max_pool_windows_ties_nan_and_infinity_follow_scan_order(seed):
    """Random geometries (rectangular, strided, padded, ceil_mode's extra windows) over values with
    many ties, -inf patches (whole windows of them) and NaNs, against the rule written out."""
    from numbacnn.kernels import cpu
    from numbacnn.kernels.shapes import pool2d_output_size

    rng = np.random.default_rng(seed)
    kernel = tuple(int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    h, w = (int(v) for v in rng.integers(3, 9, 2))
    ceil = bool(seed % 2)
    oh, ow = (pool2d_output_size(s, k, st, p, ceil) for s, k, st, p in zip((h, w), kernel, stride, padding))
    x = rng.integers(0, 3, (2, 3, h, w)).astype(np.float32)
    x[0, 0, : kernel[0] + 1, : kernel[1] + 1] = -np.inf
    if seed % 3 == 0:
        x[1, rng.integers(0, 3), rng.integers(0, h), rng.integers(0, w)] = np.nan
    out, idx = np.empty((2, 3, oh, ow), np.float32), np.empty((2, 3, oh, ow), np.int32)
    cpu.maxpool2d_forward(out, idx, x, kernel, stride, padding)
    want, want_idx = _max_pool_scan_order(x, kernel, stride, padding, oh, ow)
    np.testing.assert_array_equal(out, want)  # (NaN == NaN here)
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("seed", range(6))
def test_the_2x2_fast_path_follows_scan_order_with_ties_infinities_and_nans(seed):
    """2x2 windows of stride 2 (LeNet's) take a fast path that assumes no NaN and redoes any row
    that held one: ties, -inf windows, and NaNs at every tap of a window, one or several per row."""
    from numbacnn.kernels import cpu

    rng = np.random.default_rng(seed)
    h, w = 6 + seed % 2, 10 + seed // 3  # odd sizes leave a row or column out
    x = rng.integers(0, 3, (2, 3, h, w)).astype(np.float32)
    x[0, 0, :2, :4] = -np.inf
    for _ in range(2 + seed):
        x[rng.integers(0, 2), rng.integers(0, 3), rng.integers(0, h), rng.integers(0, w)] = np.nan
    x[1, 2, 2:4, 2:4] = np.nan  # a window of NaNs: the first wins
    out, idx = np.empty((2, 3, h // 2, w // 2), np.float32), np.empty((2, 3, h // 2, w // 2), np.int32)
    cpu.maxpool2d_forward(out, idx, x, (2, 2), (2, 2), (0, 0))
    want, want_idx = _max_pool_scan_order(x, (2, 2), (2, 2), (0, 0), h // 2, w // 2)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(idx, want_idx)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx = np.full(x.shape, 5.0, np.float32)  # overwritten, the rows and columns left out included
    cpu.maxpool2d_backward(dx, dy, idx, (2, 2), (2, 2), (0, 0))
    expected = np.zeros(x.shape, np.float32)
    np.put_along_axis(expected.reshape(2, 3, -1), want_idx.reshape(2, 3, -1), dy.reshape(2, 3, -1), axis=2)
    np.testing.assert_array_equal(dx, expected)
