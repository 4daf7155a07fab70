"""kernels/cuda/gemm.py: the tiled GEMM with the tile a real GPU uses."""

import numpy as np

from cuda_parity import host, needs_cuda

pytestmark = needs_cuda


def test_gemm_with_the_gpu_tile(rng, cuda):
    """The simulator normally uses a small tile; check the tile a real GPU uses once, on a small
    problem that still spans several tiles and a partial last K step."""
    from numbacnn.kernels.cuda.gemm import BIAS_COLUMN, GPU_TILE, gemm

    a = rng.standard_normal((1, 1, 70, 20)).astype(np.float32)  # used transposed: (20, 70)^T
    b = rng.standard_normal((2, 1, 20, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    c = cuda.zeros((2, 1, 70, 3))
    gemm(
        c,
        cuda.asarray(np.ascontiguousarray(a.transpose(0, 1, 3, 2))),
        cuda.asarray(b),
        trans_a=True,
        bias=cuda.asarray(bias),
        bias_mode=BIAS_COLUMN,
        tile=GPU_TILE,
    )
    np.testing.assert_allclose(host(c), a @ b + bias, rtol=1e-5, atol=1e-5)
