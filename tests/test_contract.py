"""The kernel contract: kernels.cpu and kernels.cuda export the same names with the same signatures."""

import inspect

import pytest

from numbacnn import kernels
from numbacnn.kernels import cpu, cuda, npy


def _signature(fn):
    return inspect.signature(getattr(fn, "py_func", fn))  # numba dispatchers wrap the Python function


def _public(module):
    return {
        name
        for name in vars(module)
        if not name.startswith("_") and callable(getattr(module, name)) and not inspect.ismodule(getattr(module, name))
    }


def test_every_backend_exports_exactly_the_contract():
    """cpu, cuda, and npy: the NumPy twins quick start runs while the compiled kernels are built."""
    assert _public(cpu) == set(kernels.KERNEL_NAMES)
    assert _public(cuda) == set(kernels.KERNEL_NAMES)
    assert _public(npy) == set(kernels.KERNEL_NAMES)


@pytest.mark.parametrize("name", kernels.KERNEL_NAMES)
def test_signatures_match(name):
    assert _signature(getattr(cpu, name)) == _signature(getattr(cuda, name))
    assert _signature(getattr(cpu, name)) == _signature(getattr(npy, name))


@pytest.mark.parametrize("name", kernels.KERNEL_NAMES)
def test_outputs_come_first(name):
    """Outputs first: every kernel's first parameter is an array it writes."""
    first = next(iter(_signature(getattr(cpu, name)).parameters))
    assert first in ("out", "dx", "losses", "dlogits", "loss", "dpred", "param", "dweight", "sums", "average")
