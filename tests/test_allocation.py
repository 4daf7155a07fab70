"""A warm training step allocates no arrays: outputs, gradients and kernel scratch are reused."""

import ast
import pathlib
import tracemalloc

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels import workspace


def _buffers(model, crit):
    ids = {}
    for name, module in model.named_modules():
        for key, buf in module._work_buffers.items():
            ids[f"{name}.{key}"] = id(buf)
    for key, buf in crit._buffers.items():
        ids[f"loss.{key}"] = id(buf)
    for key, buf in workspace._slots.items():
        ids[f"scratch.{key[0]}"] = id(buf)
    return ids


@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda: nc.models.lenet5(), (32, 1, 28, 28)),
        (lambda: nc.models.resnet(8, in_channels=3), (16, 3, 16, 16)),
    ],
    ids=["lenet5", "resnet8"],
)
def test_training_step_reuses_every_buffer(build, shape):
    model = build()
    model.first_layer().input_grad = False
    opt = nc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    crit = nc.losses.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0])

    def step():
        opt.zero_grad()
        crit.forward(model.forward(x), y)
        model.backward(crit.backward())
        opt.step()

    step()
    step()
    before = _buffers(model, crit)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            step()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert _buffers(model, crit) == before
    # Every convolution or pooling output of these nets is >= 50 KB, so a temporary of that kind
    # would show up in the peak, and so would per-task kernel scratch (numba's np.empty inside a
    # prange body, sized by the SIMD width: tests/test_lane_widths.py runs this at every width).
    # What remains is Python bookkeeping: argument tuples, array views, floats, which pile up over
    # the three steps until the cyclic collector clears its free lists (benchmarks/NOTES.md, entry
    # 49). Smaller arrays are covered by the buffer identities above.
    assert peak < 40 * 1024, f"a warm training step allocated {peak} bytes at peak"


ALLOCATORS = {"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like", "array", "copy"}


def _jitted(function):
    for decorator in function.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(call, "id", None) == "njit" or getattr(call, "attr", None) == "njit":
            return True
    return False


def test_no_compiled_cpu_kernel_allocates():
    """Scratch comes from kernels/workspace.py: no @njit function of kernels/cpu calls a NumPy
    allocator (inside a prange body it would allocate once per task, sized by the SIMD width)."""
    root = pathlib.Path(nc.__file__).parent / "kernels" / "cpu"
    offenders, jitted = [], 0
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and _jitted(node):
                jitted += 1
                for call in ast.walk(node):
                    func = getattr(call, "func", None)
                    if (
                        isinstance(func, ast.Attribute)
                        and func.attr in ALLOCATORS
                        and getattr(func.value, "id", "") == "np"
                    ):
                        offenders.append(f"{path.relative_to(root)}:{call.lineno} {node.name} calls np.{func.attr}")
    assert jitted > 40 and offenders == []
