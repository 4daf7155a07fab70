"""2-D convolution on the CPU: the dispatch between the implementations below, per call.

Shapes: x (N, C, H, W), w (K, C/groups, KH, KW), b (K,) or None, out (N, K, OH, OW).

Every implementation runs in numba's one thread pool (no library GEMM is called), and the
results do not depend on the thread count. In order:
  * 1x1, stride 1, no padding, groups 1: matrix products on the NCHW planes, on our GEMM
    micro-kernel (conv_pointwise.py); with a stride, the same on a copy of every stride-th pixel;
  * stride 1, dilation 1, groups 1, output planes of >= 100 positions: direct convolution on
    explicit vectors over positions of a padded row (conv_simd.py);
  * everything else (strides, dilation, groups, small planes, any padding): direct convolution
    on explicit vectors over output channels, one gather per pass, the input gradient one
    gather per stride phase (conv_chanvec.py).
None of them builds im2col columns. ``NUMBACNN_VERBOSE=1`` names what ran.
"""

import os
import sys

import numpy as np

from ..workspace import scratch
from . import conv_chanvec, conv_pointwise, conv_simd


def _strided_pointwise(w, stride, padding, dilation, groups):
    """A 1x1 layer with a stride and no padding (ResNet's projection shortcuts): the stride-1
    convolution of the input's every stride-th pixel."""
    return (
        w.shape[2] == w.shape[3] == 1
        and tuple(stride) != (1, 1)
        and tuple(padding) == (0, 0)
        and tuple(dilation) == (1, 1)
        and groups == 1
    )


def _subsampled(x, stride, name):
    """x[:, :, ::sh, ::sw] as a C-contiguous copy in workspace ``name``."""
    sub = x[:, :, :: stride[0], :: stride[1]]
    out = scratch(name, sub.shape, x.dtype)
    np.copyto(out, sub)
    return out


_reported = set()


def _report(direction, implementation, x, w, stride, padding):
    """With NUMBACNN_VERBOSE=1, name on stderr the implementation a layer runs, once per layer
    shape and direction."""
    if os.environ.get("NUMBACNN_VERBOSE", "0").strip() in ("", "0"):
        return
    key = (direction, implementation, x.shape[1:], w.shape, tuple(stride), tuple(padding), x.dtype.str)
    if key not in _reported:
        _reported.add(key)
        print(
            f"numbacnn: conv2d {direction} of x {tuple(x.shape[1:])}, w {tuple(w.shape)}, stride "
            f"{tuple(stride)}, padding {tuple(padding)}, {x.dtype}: {implementation}",
            file=sys.stderr,
        )


def _implementation(x, w, stride, padding, dilation, groups):
    """The first implementation that accepts the layer, in the order above; forward and backward
    both ask here, so a layer's passes take one path."""
    if conv_pointwise.usable(x, w, stride, padding, groups):
        return "conv_pointwise"
    if _strided_pointwise(w, stride, padding, dilation, groups) and conv_pointwise.usable(x, w, (1, 1), padding, 1):
        return "subsample"
    if conv_simd.usable(x, w, stride, padding, dilation, groups):
        return "conv_simd"
    return "conv_chanvec"


def conv2d_forward(out, x, w, b, stride, padding, dilation, groups):
    """out (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C/groups, KH, KW)) + b (K,) or None."""
    implementation = _implementation(x, w, stride, padding, dilation, groups)
    _report("forward", implementation, x, w, stride, padding)
    if implementation == "conv_pointwise":
        conv_pointwise.conv2d_forward(out, x, w, b)
    elif implementation == "subsample":
        conv_pointwise.conv2d_forward(out, _subsampled(x, stride, "conv.sub_x"), w, b)
    elif implementation == "conv_simd":
        conv_simd.conv2d_forward(out, x, w, b, padding)
    else:
        conv_chanvec.conv2d_forward(out, x, w, b, stride, padding, dilation, groups)


def conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups):
    """Gradients of conv2d_forward given dy (N, K, OH, OW).

    dx (N, C, H, W) is overwritten; dw (K, C/groups, KH, KW) and db (K,) are accumulated. Each is
    skipped if None (a frozen weight gets no gradient computed).
    """
    if dx is None and dw is None:
        if db is not None:
            db += dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(db.dtype)
        return
    implementation = _implementation(x, w, stride, padding, dilation, groups)
    _report("backward", implementation, x, w, stride, padding)
    if implementation == "conv_pointwise":
        conv_pointwise.conv2d_backward(dx, dw, db, dy, x, w)
    elif implementation == "subsample":
        # The gradient reaches only the pixels the forward read; the others get zeros.
        sub = _subsampled(x, stride, "conv.sub_x")
        d_sub = None if dx is None else scratch("conv.sub_dx", sub.shape, x.dtype)
        conv_pointwise.conv2d_backward(d_sub, dw, db, dy, sub, w)
        if dx is not None:
            dx[...] = 0
            dx[:, :, :: stride[0], :: stride[1]] = d_sub
    elif implementation == "conv_simd":
        conv_simd.conv2d_backward(dx, dw, db, dy, x, w, padding)
    else:
        conv_chanvec.conv2d_backward(dx, dw, db, dy, x, w, stride, padding, dilation, groups)
