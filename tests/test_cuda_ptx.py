"""Every CUDA kernel compiles for a real GPU (sm_90) with the argument types real launches use,
and float32 kernels contain no accidental float64 arithmetic.

The simulator never type-checks kernels; this compiles them to PTX with NVVM (from
``pip install numbacnn[cuda]``, no GPU needed) in a subprocess outside the simulator.
"""

import json
import os
import subprocess
import sys

import pytest


def test_all_cuda_kernels_compile_to_ptx_without_float64_leaks():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-m", "numbacnn.tools.ptx", "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    if "NVVM" in done.stderr and "cannot be found" in done.stderr:
        pytest.skip("NVVM is not installed (pip install numbacnn[cuda])")
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["unexpected_float64"] == []
    compiled = {entry["kernel"] for entry in report["compiled"].values()}
    # One compiled signature per kernel of every family: nothing was skipped by the recording run.
    for kernel in (
        "gemm",
        "_im2col",
        "_col2im",
        "_max_fwd",
        "_max_bwd",
        "_avg_fwd",
        "_global_avg_bwd",
        "_batch_stats",
        "_grad_sums",
        "_moments",
        "_pad_fwd",
        "_pad_bwd",
        "_prelu_fwd",
        "_prelu_weight_grad",
        "_maxout_fwd",
        "_maxout_bwd",
        "_scale_channels",
        "_copy_block",
        "_adaptive_avg_fwd",
        "_adaptive_avg_bwd",
        "_synced_grad_sums",
        "_input_grad",
        "_running_stats",
        "_ce_forward",
        "_mse_forward",
        "_softmax_fwd",
        "_softmax_bwd",
        "_sgd",
        "_adam",
        "_dropout_fwd",
        "_sigmoid_bwd",
        "_column_sums",
        "_channel_sums",
        "_batch_sums",
    ):
        assert kernel in compiled, kernel
