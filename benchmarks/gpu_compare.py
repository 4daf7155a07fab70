"""numbacnn's CUDA kernels against PyTorch on the same GPU, each engine in its own fresh process.

    python benchmarks/gpu_compare.py [--alternations 3] [--out benchmarks/RESULTS_GPU.md]

The same workloads, worker processes and alternation as ``compare.py`` (see there), on the GPU:
inputs live on the device and every timed stretch ends with a synchronisation, so the figures are
kernel work plus launch overhead. Needs a CUDA GPU; PyTorch with CUDA is the optional reference.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

if __name__ == "__main__":
    compare.main(default_out=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_GPU.md"), device="cuda")
