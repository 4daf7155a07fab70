"""Shared test helpers: naive NumPy references and a float64 central-difference gradient check."""

import numpy as np
import pytest


# --------------------------------------------------------------------------- references
def conv2d_ref(x, w, b, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct convolution by shifted slices and einsum (no im2col), float64 throughout."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, k, oh, ow))
    kg = k // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                ]
                out[:, g * kg : (g + 1) * kg] += np.einsum(
                    "nchw,kc->nkhw", patch, w[g * kg : (g + 1) * kg, :, i, j].astype(np.float64)
                )
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def conv2d_grads_ref(dy, x, w, padding, stride=(1, 1), dilation=(1, 1), groups=1):
    """(dx, dw, db) of a convolution, float64: each tap's strided slice of the padded input meets
    dy (dw) and takes dy back through the weights (dx), group by group."""
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    (sh, sw), (dh, dwl) = stride, dilation
    oh, ow = dy.shape[2:]
    k, cg = w.shape[:2]
    kg = k // groups
    dy = dy.astype(np.float64)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    for g in range(groups):
        ks, cs = slice(g * kg, (g + 1) * kg), slice(g * cg, (g + 1) * cg)
        for i in range(kh):
            for j in range(kw):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                cols = slice(j * dwl, j * dwl + sw * (ow - 1) + 1, sw)
                dw[ks, :, i, j] = np.einsum("nkhw,nchw->kc", dy[:, ks], xp[:, cs, rows, cols])
                dxp[:, cs, rows, cols] += np.einsum("nkhw,kc->nchw", dy[:, ks], w[ks, :, i, j].astype(np.float64))
    return dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]], dw, dy.sum(axis=(0, 2, 3))


def pool2d_ref(x, kernel, stride, padding, mode, ceil_mode=False, include_pad=True):
    """Max or average pooling written out window by window, in float64 (PyTorch's rules: padding
    never wins a max; an average's divisor is its window clipped to the padded input, or to the
    input itself without ``include_pad``; ceil_mode's last window must start inside the input or
    its left padding)."""
    from numbacnn.kernels.shapes import pool2d_output_size

    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = pool2d_output_size(h, kh, sh, ph, ceil_mode)
    ow = pool2d_output_size(w, kw, sw, pw, ceil_mode)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * sh - ph, j * sw - pw
            y1, x1 = min(y0 + kh, h + ph), min(x0 + kw, w + pw)
            ya, yb, xa, xb = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
            window = x[:, :, ya:yb, xa:xb].astype(np.float64)
            if mode == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                area = (y1 - y0) * (x1 - x0) if include_pad else (yb - ya) * (xb - xa)
                out[:, :, i, j] = window.sum(axis=(2, 3)) / area
    return out


def batchnorm_ref(x, weight, bias, eps):
    """BatchNorm2d's training forward: the NumPy kernel (kernels/npy holds the one copy of it)."""
    from numbacnn.kernels import npy

    c = x.shape[1]
    out, mean, invstd = np.empty_like(x), np.empty(c), np.empty(c)
    npy.batchnorm2d_forward_train(out, mean, invstd, np.zeros(c), np.ones(c), x, weight, bias, eps, 0.1)
    return out


def cross_entropy_ref(logits, targets, smoothing=0.0):
    """Mean softmax cross-entropy with label smoothing: the NumPy kernel (kernels/npy)."""
    from numbacnn.kernels import npy

    z = np.asarray(logits, np.float64)
    losses, probs = np.empty(len(z)), np.empty_like(z)
    npy.softmax_cross_entropy_forward(losses, probs, z, np.asarray(targets), smoothing)
    return float(losses.mean())


def activation_ref(name, **scalars):
    """``f(x)``: the NumPy kernel ``{name}_forward`` of kernels/npy (the one copy of the formula)."""
    from numbacnn.kernels import npy

    def forward(x):
        out = np.empty_like(x)
        getattr(npy, f"{name}_forward")(out, x, *scalars.values())
        return out

    return forward


def _numeric_grad(f, array, eps, max_checks, rng):
    flat = array.reshape(-1)
    idx = np.arange(flat.size)
    if max_checks is not None and flat.size > max_checks:
        idx = rng.choice(flat.size, max_checks, replace=False)
    grads = {}
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        grads[i] = (plus - minus) / (2 * eps)
    return grads


def gradient_check(
    layer, x, eps=1e-6, rtol=1e-5, atol=1e-8, max_checks=None, seed=0, before_forward=None, check_input_grad=True
):
    """Compare layer.backward with central differences of L = sum(forward(x) * R) in float64.

    Checks the input gradient and every parameter gradient (all elements, or ``max_checks``
    random ones per array). Returns the number of elements compared.
    """
    rng = np.random.default_rng(seed)
    layer.to(np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)

    def run():
        if before_forward:
            before_forward(layer)
        return layer.forward(x)

    y = run()
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(run() * r))

    layer.zero_grad()
    run()
    dx = layer.backward(r)
    dx = None if dx is None else dx.copy()  # None when the layer skips its input gradient
    analytic = {name: p.grad.copy() for name, p in layer.named_parameters()}
    compared = 0
    targets = [("input", x, dx)] if check_input_grad else []
    targets += [(name, p.data, analytic[name]) for name, p in layer.named_parameters()]
    for name, array, grad in targets:
        numeric = _numeric_grad(loss, array, eps, max_checks, rng)
        flat_grad = grad.reshape(-1)
        for i, g in numeric.items():
            if not np.isclose(flat_grad[i], g, rtol=rtol, atol=atol):
                raise AssertionError(
                    f"gradient of {name}[{np.unravel_index(i, array.shape)}]: "
                    f"analytic {flat_grad[i]!r} vs numeric {g!r}"
                )
            compared += 1
    return compared


def away_from_zero(rng, shape, margin=0.1):
    """Random values with |v| >= margin: no ReLU kink within a finite-difference step."""
    v = rng.uniform(margin, 1.0, size=shape)
    return v * rng.choice([-1.0, 1.0], size=shape)


def distinct_values(rng, shape, gap=1e-3):
    """A random permutation of well-separated values: no tied maxima in max pooling."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).reshape(shape)


def at_all_threads_and_one(run):
    """[run() with numba's full thread count, run() with one thread]: results that must not depend
    on the thread count (a training that another one makes drop to fewer threads resumes exactly)."""
    import numba

    results = []
    for threads in (numba.config.NUMBA_NUM_THREADS, 1):
        numba.set_num_threads(threads)
        try:
            results.append(run())
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return results


def splitmix_uniform(seed, index):
    """The counter-based uniform in [0, 1) the kernels draw (splitmix64's finaliser, top 24 bits),
    written with Python integers modulo 2**64."""
    mask = 2**64 - 1
    z = (seed * 0x9E3779B97F4A7C15 + index + 0x632BE59BD9B4E019) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return (z >> 40) / 16777216.0


def gather_ref(images, labels, indices, scale, shift, offsets, flips, pad, erase=None, erase_seed=0):
    """The batch, one pixel at a time: crop with a zero border, mirror, then normalise; inside the
    rectangle erase[b] = (y0, y1, x0, x1, position) the pixel is 255 * splitmix_uniform(seed, its
    index in the global batch) instead."""
    _, channels, height, width = images.shape
    out = np.empty((len(indices), channels, height, width))
    for b, src in enumerate(indices):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    sy = y + offsets[b, 0] - pad
                    sx = (width - 1 - x if flips[b] else x) + offsets[b, 1] - pad
                    inside = 0 <= sy < height and 0 <= sx < width
                    value = float(images[src, c, sy, sx]) if inside else 0.0
                    if erase is not None and erase[b, 0] <= y < erase[b, 1] and erase[b, 2] <= x < erase[b, 3]:
                        index = ((int(erase[b, 4]) * channels + c) * height + y) * width + x
                        value = 255.0 * splitmix_uniform(erase_seed, index)
                    out[b, c, y, x] = value * scale[c] + shift[c]
    return out, labels[indices]


def erase_case():
    """Rectangles for gather_case's batch of 4 (6 x 5 images): a corner, none, the whole image, a
    column; positions as if the batch were a rank's share of a larger one."""
    erase = np.array([[0, 2, 0, 3, 4], [0, 0, 0, 0, 5], [0, 6, 0, 5, 6], [1, 5, 4, 5, 7]], np.int64)
    return erase, 2**61 + 12345


def gather_case(rng, pad):
    images = rng.integers(0, 256, (10, 2, 6, 5)).astype(np.uint8)
    labels = np.arange(10, dtype=np.int64) * 3
    indices = np.array([3, 0, 9, 3])
    offsets = rng.integers(0, 2 * pad + 1, (4, 2))
    flips = np.array([True, False, True, False])
    scale, shift = np.array([0.5, 0.25], np.float32), np.array([-1.0, 0.5], np.float32)
    return images, labels, indices, scale, shift, offsets, flips, pad


# (dtype, tolerance) of the kernel tests against float64 references, with ids that name the dtype:
# test_lane_widths.py runs them at the other SIMD widths in float32 only ("-k 'not dtype_f64'"), as
# the width changes no dtype-specific code and each float64 compile costs tens of seconds there.
FLOAT_TOLERANCES = [pytest.param(np.float32, 1e-5, id="dtype_f32"), pytest.param(np.float64, 1e-12, id="dtype_f64")]
