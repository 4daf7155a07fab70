"""Shared test helpers: naive NumPy references and a float64 central-difference gradient check."""

import numpy as np


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


def pool2d_ref(x, kernel, stride, padding, mode):
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = win.max(axis=(2, 3)) if mode == "max" else win.mean(axis=(2, 3))
    return out


def batchnorm_ref(x, weight, bias, eps):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


def cross_entropy_ref(logits, targets, smoothing=0.0):
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    k = z.shape[1]
    t = np.full(z.shape, smoothing / k)
    t[np.arange(len(targets)), targets] += 1 - smoothing
    return float(-(t * logp).sum(1).mean())


# --------------------------------------------------------------------------- gradient check
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
