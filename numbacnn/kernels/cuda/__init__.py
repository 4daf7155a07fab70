"""CUDA kernels (``@cuda.jit`` + host launchers): the twins of ``kernels.cpu``, same names and
signatures (see ``numbacnn.kernels`` for the contract). Every array argument must be a CUDA device
array; a host array is an error, never a silent copy.
"""

from .. import bind_kernels as _bind_kernels

__all__ = _bind_kernels(globals(), __name__)
