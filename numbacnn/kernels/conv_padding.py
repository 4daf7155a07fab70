"""Which padding a convolution kernel does itself, and which a layer must do first (row 0 of the
convolution table in docs/DESIGN.md, on every device).

The kernels take symmetric zero padding, a pair (ph, pw). Anything else (a padding mode other than
zeros, or zero padding that differs between the sides: "same" with an even kernel) is done by the
layer with pad2d before the convolution, which then runs with padding (0, 0).
"""

from . import verbose


def explicit_padding(padding_mode, pads):
    """Why a layer with ``padding_mode`` and ``pads`` (top, bottom, left, right) pads its input
    itself, or None when the kernel's own padding (top, left) serves."""
    top, bottom, left, right = pads
    if padding_mode != "zeros" and max(pads) > 0:
        return f"{padding_mode} padding {pads} (top, bottom, left, right)"
    if (top, left) != (bottom, right):
        return f"zero padding {pads} (top, bottom, left, right) that differs between the sides"
    return None


def report_explicit_padding(reason, in_shape, w_shape):
    """Say (NUMBACNN_VERBOSE >= 1, once per layer shape) that a layer pads its input first."""
    verbose.report(
        ("pad", reason, tuple(in_shape), tuple(w_shape)),
        f"conv2d of x {tuple(in_shape)}, w {tuple(w_shape)}: padded first by pad2d ({reason}), then the "
        "convolution table with padding (0, 0)",
    )


__all__ = ["explicit_padding", "report_explicit_padding"]
