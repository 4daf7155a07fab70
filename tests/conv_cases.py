"""The convolution geometries every entry of the CPU table (kernels/cpu/conv/dispatch.py) is run on,
wherever it accepts them, and the one check of an entry against the float64 references: each
entry's test file (test_conv_<module>.py) runs its own entries through it."""

import numpy as np

from numbacnn.kernels.cpu.conv.dispatch import BY_NAME, FORWARD, WEIGHT_GRAD, Geometry

from helpers import conv2d_grads_ref, conv2d_ref

# (N, C, K, H, W, (KH, KW), stride, padding, dilation, groups)
GEOMETRIES = [
    # stride 1: kernel sizes 1-5, rectangular kernels, every padding from 0 to KH-1, channel counts
    # that are and are not multiples of the 4-channel tile, planes smaller and larger than a tile
    (2, 3, 5, 7, 9, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1), 1),  # LeNet's conv2
    (33, 6, 16, 14, 14, (5, 5), (1, 1), (0, 0), (1, 1), 1),  # the same at a batch of blocks of samples
    (3, 1, 6, 12, 12, (5, 5), (1, 1), (2, 2), (1, 1), 1),
    (1, 4, 4, 8, 8, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (3, 2, 7, 5, 6, (3, 3), (1, 1), (2, 2), (1, 1), 1),
    (2, 5, 3, 6, 11, (3, 2), (1, 1), (2, 1), (1, 1), 1),
    (2, 8, 8, 4, 4, (3, 3), (1, 1), (1, 0), (1, 1), 1),
    (1, 3, 9, 17, 3, (2, 3), (1, 1), (0, 2), (1, 1), 1),
    (2, 32, 64, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # channels in whole blocks of 2 LANES
    (2, 32, 32, 8, 12, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # ... few enough for F(4x4, 3x3), whole tiles
    # strides, dilation, groups, padding past the kernel
    (2, 3, 5, 9, 9, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # ResNet's downsampling, odd size
    (3, 16, 32, 14, 14, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # full channel blocks
    (2, 3, 40, 6, 6, (3, 3), (2, 2), (1, 1), (1, 1), 1),  # output channels past one block
    (2, 4, 6, 8, 7, (3, 3), (2, 2), (1, 1), (1, 1), 2),
    (2, 4, 4, 9, 9, (3, 3), (1, 1), (2, 2), (2, 2), 1),  # dilated
    (2, 6, 6, 9, 9, (3, 2), (2, 3), (1, 0), (2, 1), 3),  # everything at once
    (2, 4, 4, 7, 7, (3, 3), (1, 1), (3, 3), (1, 1), 4),  # depthwise, padding past the kernel
    (1, 2, 3, 11, 8, (5, 4), (3, 2), (2, 1), (1, 2), 1),
    # 1x1: K past a panel of 6, C past a task of 3, positions past a block of 2 LANES; strided
    (5, 3, 4, 6, 5, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (17, 40, 8, 7, 7, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (3, 7, 13, 9, 11, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (3, 6, 5, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), 1),  # after global pooling
    (2, 3, 5, 9, 10, (1, 1), (2, 2), (0, 0), (1, 1), 1),  # pixels no tap reads
    (2, 3, 5, 9, 10, (1, 1), (3, 2), (1, 2), (1, 1), 1),
    (2, 3, 7, 9, 4, (1, 1), (2, 2), (0, 0), (1, 1), 1),
    (3, 4, 2, 8, 5, (1, 1), (2, 1), (0, 0), (1, 1), 1),
]


def geometry(case, dtype=np.float32):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    return Geometry(c, h, w, k, kernel[0], kernel[1], stride, padding, dilation, groups, np.dtype(dtype), n)


def accepted(name):
    """The geometries entry ``name`` accepts, as pytest ids and cases."""
    return [case for case in GEOMETRIES if BY_NAME[name].accepts(geometry(case)) is None]


def case_id(case):
    n, c, k, h, w, kernel, stride, padding, dilation, groups = case
    shape = f"n{n}c{c}k{k}-{h}x{w}-k{kernel[0]}{kernel[1]}"
    return f"{shape}-s{stride[0]}{stride[1]}-p{padding[0]}{padding[1]}-d{dilation[0]}{dilation[1]}g{groups}"


def arrays(case, dtype, rng):
    """(x, w, b) of a case: random normal values of ``dtype``."""
    n, c, k, h, w, kernel, _, _, _, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((k, c // groups) + kernel).astype(dtype)
    return x, weight, rng.standard_normal(k).astype(dtype)


def check_against_references(name, case, dtype, tol, rng):
    """Entry ``name``'s forward (with and without bias), input, weight and bias gradients on
    ``case`` against the float64 references; dx overwritten (NaN first), dw and db accumulated."""
    entry, g = BY_NAME[name], geometry(case, dtype)
    assert FORWARD in entry.passes and entry.accepts(g) is None
    x, w, b = arrays(case, dtype, rng)
    stride, padding, dilation, groups = case[6:]
    expected = conv2d_ref(x, w, b, stride, padding, dilation, groups)
    scale = np.abs(expected).max()
    out = np.full(expected.shape, np.nan, dtype)
    entry.forward(out, x, w, b, g)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * scale)
    entry.forward(out, x, w, None, g)
    np.testing.assert_allclose(out, expected - b.reshape(1, -1, 1, 1), rtol=tol, atol=tol * scale)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = conv2d_grads_ref(dy, x, w, padding, stride, dilation, groups)
    dx = np.full(x.shape, np.nan, dtype)  # overwritten, pixels no tap reads included
    dw, db = np.ones(w.shape, dtype), np.ones(b.shape, dtype)  # accumulated
    weight_grad = WEIGHT_GRAD in entry.passes  # (Winograd's weight gradient is another entry's)
    entry.backward(dx, dw if weight_grad else None, db, dy, x, w, g)
    np.testing.assert_allclose(dx, dx_ref, rtol=tol, atol=tol * np.abs(dx_ref).max())
    if weight_grad:
        np.testing.assert_allclose(dw - 1, dw_ref, rtol=tol, atol=tol * np.abs(dw_ref).max())
    np.testing.assert_allclose(db - 1, db_ref, rtol=tol, atol=tol * np.abs(db_ref).max())


def check_skipped_gradients(name, case, rng):
    """A gradient given as None is skipped; the others are as with all three asked for."""
    entry, g = BY_NAME[name], geometry(case)
    x, w, b = arrays(case, np.float32, rng)
    expected = conv2d_ref(x, w, None, *case[6:])
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    dx_ref, dw_ref, _ = conv2d_grads_ref(dy, x, w, case[7], case[6], case[8], case[9])
    dx = np.full(x.shape, 7.0, np.float32)
    entry.backward(dx, None, None, dy, x, w, g)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5 * np.abs(dx_ref).max())
    if WEIGHT_GRAD in entry.passes:
        dw = np.zeros(w.shape, np.float32)
        entry.backward(None, dw, None, dy, x, w, g)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-5 * np.abs(dw_ref).max())


def run_all_passes(name, case, rng):
    """A closure running every pass of entry ``name`` on ``case`` (for thread-count checks)."""
    entry, g = BY_NAME[name], geometry(case)
    x, w, b = arrays(case, np.float32, rng)
    out_shape = conv2d_ref(x, w, None, *case[6:]).shape
    dy = rng.standard_normal(out_shape).astype(np.float32)

    def run():
        out, dx = np.empty(out_shape, np.float32), np.empty_like(x)
        dw, db = np.zeros_like(w), np.zeros_like(b)
        entry.forward(out, x, w, b, g)
        entry.backward(dx, dw if WEIGHT_GRAD in entry.passes else None, db, dy, x, w, g)
        return out, dx, dw, db

    return run
