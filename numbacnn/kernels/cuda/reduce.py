"""Deterministic reductions on CUDA (no atomics): a fixed summation order on every run.

``add_channel_sums`` is a block reduction, one block per channel, with float64 partial sums in
shared memory (a channel can hold N*H*W values). ``add_batch_sums`` adds a few slices element by
element, one thread per element.
"""

from numba import cuda, float64

from .launch import REDUCE_THREADS, launch_1d


@cuda.jit(device=True)
def block_sum(shared, value):
    """Sum ``value`` over the block's threads (blockDim.x a power of two); every thread gets it.

    ``shared`` is a float64 shared array of blockDim.x elements; it is free again on return.
    """
    tid = cuda.threadIdx.x
    shared[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            shared[tid] += shared[tid + step]
        cuda.syncthreads()
        step //= 2
    total = shared[0]
    cuda.syncthreads()
    return total


@cuda.jit
def _channel_sums(out, y):
    """out (K,) += sum of y (N, K, P) over n and p; one block per channel k."""
    k = cuda.blockIdx.x
    n_batch, _, p_len = y.shape
    shared = cuda.shared.array(REDUCE_THREADS, float64)
    acc = 0.0
    for e in range(cuda.threadIdx.x, n_batch * p_len, cuda.blockDim.x):
        acc += y[e // p_len, k, e % p_len]
    total = block_sum(shared, acc)
    if cuda.threadIdx.x == 0:
        out[k] += total


@cuda.jit
def _batch_sums(out, parts):
    """out (M,) += sum over s of parts (S, M), in order s = 0, 1, ..."""
    n_parts, size = parts.shape
    for m in range(cuda.grid(1), size, cuda.gridsize(1)):
        acc = parts[0, m]
        for s in range(1, n_parts):
            acc += parts[s, m]
        out[m] += acc


def add_channel_sums(out, y):
    """out (K,) += y (N, K, P) summed over N and P."""
    if y.shape[1] > 0:
        _channel_sums[y.shape[1], REDUCE_THREADS](out, y)


def add_batch_sums(out, parts):
    """out (M,) += parts (S, M) summed over S."""
    launch_1d(_batch_sums, parts.shape[1], out, parts)
