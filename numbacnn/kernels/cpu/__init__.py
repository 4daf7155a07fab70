"""CPU kernels (``@njit``): the reference backend. See ``numbacnn.kernels`` for the contract."""

from .. import bind_kernels as _bind_kernels

__all__ = _bind_kernels(globals(), __name__)
