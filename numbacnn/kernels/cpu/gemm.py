"""Matrix products on the micro-kernel (microkernel.py), in numba's one thread pool: no library
GEMM, so no second pool of threads spins after a call and steals the cores from the next kernel.

C (M, N) = A (M, K) @ B (K, N), or C += ...; A and B are any 2-D views (transposed ones
included). B is packed once into panels of 2 LANES columns (K, 2 LANES), zero past N; a task is
one panel of 6 rows of A (K, 6), packed by the task, times every panel of B, each block of C
summed whole over K in 12 vector registers. Every element of C is one task's sum in the same
order whatever the thread count.
"""

from numba import njit, prange

from ..workspace import scratch, worker_scratch
from .microkernel import COLUMNS, ROWS, gemm_6x2v


@njit(parallel=True, cache=True)
def pack_columns(packed, b):
    """packed (N/width, K, width) <- b (K, N) in panels of ``width`` columns, zeros past N (the
    rows of a matrix are the columns of its transposed view)."""
    blocks, depth, width = packed.shape
    n = b.shape[1]
    for block in prange(blocks):
        for k in range(depth):
            for r in range(width):
                j = block * width + r
                packed[block, k, r] = b[k, j] if j < n else 0


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _rows_times_panels(c, a, packed, panels, tiles, accumulate):
    """c (M, N) (+)= a (M, K) @ the packed columns (N/COLUMNS, K, COLUMNS). A task is 6 rows of
    a; worker w packs them in panels[w] (K, 6) and sums each block of c in tiles[w] (6, COLUMNS)."""
    m, depth = a.shape
    n = c.shape[1]
    blocks, workers, tasks = packed.shape[0], panels.shape[0], -(-m // ROWS)
    for worker in prange(workers):
        panel, tile = panels[worker], tiles[worker]
        for task in range(worker * tasks // workers, (worker + 1) * tasks // workers):
            i0 = task * ROWS
            rows = min(ROWS, m - i0)
            panel[:] = 0
            for k in range(depth):
                for r in range(rows):
                    panel[k, r] = a[i0 + r, k]
            for block in range(blocks):
                tile[:] = 0
                gemm_6x2v(tile, panel, packed[block], depth)
                j0 = block * COLUMNS
                for r in range(rows):
                    for q in range(min(COLUMNS, n - j0)):
                        if accumulate:
                            c[i0 + r, j0 + q] += tile[r, q]
                        else:
                            c[i0 + r, j0 + q] = tile[r, q]


def matmul(c, a, b, accumulate=False):
    """c (M, N) = a (M, K) @ b (K, N), or c += a @ b with ``accumulate``; a and b any 2-D views."""
    packed = scratch("gemm.b", (-(-b.shape[1] // COLUMNS), b.shape[0], COLUMNS), c.dtype)
    pack_columns(packed, b)
    tasks = -(-a.shape[0] // ROWS)
    workers, panels = worker_scratch("gemm.panels", tasks, (a.shape[1], ROWS), c.dtype)
    tiles = scratch("gemm.tiles", (workers, ROWS, COLUMNS), c.dtype)
    _rows_times_panels(c, a, packed, panels, tiles, accumulate)


__all__ = ["matmul", "pack_columns"]
