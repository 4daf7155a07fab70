"""Input checks that turn bad arrays into clear errors before any kernel sees them.

A numba kernel handed the wrong rank or dtype fails with a typing traceback, or worse, computes
garbage; every layer calls :func:`check_input` first so the user reads what was expected instead.
"""

import numpy as np

from ..runtime.device import DeviceError
from ..runtime.devices import device_of


def describe_shape(ndim, channels=None, features=None):
    if ndim == 4:
        return f"(N, {channels if channels is not None else 'C'}, H, W)"
    if ndim == 2:
        return f"(N, {features if features is not None else 'features'})"
    return f"a {ndim}-D array"


def check_input(x, where, device, dtype, ndim=None, channels=None, features=None):
    """Raise TypeError/ValueError/DeviceError naming what ``where`` expected and what it got."""
    try:
        x_device = device_of(x)
    except TypeError:
        raise TypeError(f"{where}: expected a numpy array (or a CUDA device array), got {type(x).__name__}") from None
    if x_device != device:
        raise DeviceError(
            f"{where}: input is on {x_device} but the layer is on {device}; move "
            f"the input with get_device('{device}').asarray(x) or the layer with "
            f".to('{x_device}')"
        )
    if x.dtype != dtype:
        raise TypeError(
            f"{where}: expected {np.dtype(dtype).name} input (the layer's dtype), got "
            f"{x.dtype}; convert the input with x.astype(np.{np.dtype(dtype).name}) or "
            f"the layer with .to(np.{x.dtype})"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"{where}: expected input of shape {describe_shape(ndim, channels, features)},"
            f" got shape {tuple(x.shape)} ({x.ndim}-D)"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{where}: expected {channels} input channels, shape "
            f"{describe_shape(ndim, channels)}, got shape {tuple(x.shape)}"
        )
    if features is not None and x.shape[1] != features:
        raise ValueError(
            f"{where}: expected {features} input features, shape (N, {features}), got shape {tuple(x.shape)}"
        )
    if x.ndim and x.shape[0] == 0:
        raise ValueError(f"{where}: got an empty batch, shape {tuple(x.shape)}")
    if not _c_contiguous(x):
        raise ValueError(
            f"{where}: input of shape {tuple(x.shape)} is not C-contiguous (a "
            f"transposed or strided view); pass np.ascontiguousarray(x)"
        )


def check_grad(dy, where, expected_shape, dtype):
    """The upstream gradient must match the forward output exactly."""
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(
            f"{where}.backward: expected a gradient of shape {tuple(expected_shape)} "
            f"(the forward output), got {tuple(dy.shape)}"
        )
    if dy.dtype != dtype:
        raise TypeError(f"{where}.backward: expected a {np.dtype(dtype).name} gradient, got {dy.dtype}")
    if not _c_contiguous(dy):
        raise ValueError(f"{where}.backward: gradient is not C-contiguous; pass np.ascontiguousarray(dy)")


def _c_contiguous(x):
    if isinstance(x, np.ndarray):
        return x.flags.c_contiguous
    return x.is_c_contiguous()


def pair(value, name):
    """(h, w) from an int or a pair of ints, with a clear error otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")
