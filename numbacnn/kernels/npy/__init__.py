"""NumPy kernels: the same names, signatures and results as ``kernels.cpu``, with nothing to
compile. A process whose JIT cache is cold runs its first steps on these while the compiled
kernels are built in the background (``numbacnn/runtime/quick_start.py``); slower per step, but they start
at once. See ``numbacnn.kernels`` for the contract."""

from .. import bind_kernels as _bind_kernels

__all__ = _bind_kernels(globals(), __name__)
