"""The bias gradient every convolution shares: db (K,) += the sums of dy over samples and positions."""

import numpy as np
from numba import njit, prange

from ..simd import LANES, vadd, vload, vsplat, vsum


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _bias_grad(db, dy, zero):
    """db (K,) += the sums of dy (N, K, P) over samples and positions. A plane is summed in two
    vectors of float32 lanes (a lane sums P / 2 LANES values; one float64 chain would wait on
    every add), the planes' sums in float64."""
    n_batch, k_out, positions = dy.shape
    whole = positions // (2 * LANES) * (2 * LANES)
    for k in prange(k_out):
        total = 0.0
        for n in range(n_batch):
            plane = dy[n, k]
            a0 = a1 = vsplat(zero)
            for q in range(0, whole, 2 * LANES):
                a0, a1 = vadd(a0, vload(plane, q)), vadd(a1, vload(plane, q + LANES))
            rest = zero
            for q in range(whole, positions):
                rest += plane[q]
            total += vsum(vadd(a0, a1)) + rest
        db[k] += total


def bias_grad(db, dy):
    """db (K,) += the sums of dy (N, K, OH, OW) over samples and positions."""
    dy = np.ascontiguousarray(dy)
    _bias_grad(db, dy.reshape(dy.shape[0], dy.shape[1], -1), dy.dtype.type(0))


__all__ = ["bias_grad"]
