"""Data-parallel training over MPI: ``mpiexec -n N numbacnn train MODEL --distributed``.

Each of the N processes (ranks) holds the whole model and takes an interleaved share of every
global batch (``DataLoader(rank=, world_size=)``). A step is: forward and loss on the local share;
one small all-reduce of (loss sum, correct, images, stop flag), so every rank sees the global loss
and they all stop, or all go on, together; backward of the *global* mean loss (the loss gradient
is scaled by local images / global images); one all-reduce (sum) of the optimizer's flat gradient
buffer; the same optimizer step everywhere. So N ranks with batch B compute what one process with
batch N*B computes, up to float rounding. Rank 0 broadcasts the initial state, writes logs,
plots and checkpoints.

BatchNorm keeps per-rank statistics by default (as PyTorch's DistributedDataParallel);
:func:`sync_batchnorm` makes it all-reduce its per-channel sums in forward and backward, so the
equivalence holds with BatchNorm too.

CUDA arrays go through host memory for each all-reduce: the MPI of the ``mpich`` wheel is not
CUDA-aware. A world of one process (no ``mpiexec``) communicates nothing and imports no MPI.

Needs the optional extra: ``pip install 'numbacnn[mpi]'`` (mpi4py and the mpich wheel).
"""

from __future__ import annotations

import os

import numpy as np

INSTALL_HINT = "distributed training needs mpi4py and an MPI library: pip install 'numbacnn[mpi]'"
# Where MPI launchers put the number of processes: MPICH/Hydra and Slurm (PMI), Open MPI, MVAPICH.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")

__all__ = ["INSTALL_HINT", "World", "init", "launched_rank", "launched_size", "sync_batchnorm"]


def launched_size() -> int:
    """How many processes the MPI launcher started (1 when not under ``mpiexec``), read from the
    environment without importing MPI."""
    return _first_count(SIZE_VARIABLES, 1)


def launched_rank() -> int:
    """This process's rank as the MPI launcher set it (0 when not under ``mpiexec``)."""
    return _first_count(RANK_VARIABLES, 0)


def _first_count(names, default):
    for name in names:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return default


class World:
    """This process's place among the ranks of a run; ``World()`` is the single-process world."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    def _mpi(self):
        from mpi4py import MPI

        return MPI

    def allreduce_sum(self, array, device=None):
        """Sum ``array`` over the ranks, in place (a host array, or a ``device`` array staged
        through the host); returns it."""
        if self.size > 1:
            mpi = self._mpi()
            _in_place_on_host(array, device, lambda host: self.comm.Allreduce(mpi.IN_PLACE, host, op=mpi.SUM))
        return array

    def broadcast(self, array, device=None, root=0):
        """Overwrite ``array`` with rank ``root``'s, in place; returns it."""
        if self.size > 1:
            _in_place_on_host(array, device, lambda host: self.comm.Bcast(host, root=root))
        return array

    def sum_values(self, *values) -> np.ndarray:
        """The sums over the ranks of a few numbers (float64)."""
        return self.allreduce_sum(np.array(values, dtype=np.float64))

    def broadcast_object(self, value, root=0):
        """Rank ``root``'s ``value`` (any picklable Python object) on every rank."""
        return value if self.size == 1 else self.comm.bcast(value, root=root)

    def broadcast_state(self, model, optimizer=None):
        """Make every rank hold rank 0's parameters, float buffers (BatchNorm statistics) and
        optimizer state."""
        if self.size == 1:
            return
        device = model.device
        if optimizer is not None:
            for array in (optimizer.storage.data, *optimizer.state.values()):
                self.broadcast(array, device)
        else:
            for p in model.parameters():
                self.broadcast(p.data, device)
        self.broadcast_buffers(model)

    def broadcast_buffers(self, model):
        """Rank 0's float buffers (BatchNorm running statistics) on every rank."""
        if self.size == 1:
            return
        for _, buf in model.named_buffers():
            if np.dtype(buf.dtype).kind == "f":
                self.broadcast(buf, model.device)


def _in_place_on_host(array, device, operation):
    """Run the in-place MPI ``operation`` on a host array, or on a host copy of a ``device`` array
    that is then written back (the mpich wheel's MPI reads host memory only)."""
    if isinstance(array, np.ndarray):
        operation(array)
        return
    host = np.ascontiguousarray(device.to_host(array))
    operation(host)
    device.asarray(host, out=array)


def init() -> World:
    """The world this process runs in: its rank among the processes ``mpiexec`` started, or the
    single-process world (no MPI import) when not under ``mpiexec``. ImportError naming the pip
    command when MPI is needed and mpi4py is missing."""
    size = launched_size()
    if size <= 1:
        return World()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(f"started by mpiexec with {size} processes, but {INSTALL_HINT}") from None
    world = World(MPI.COMM_WORLD)
    if world.size != size:
        raise RuntimeError(
            f"mpiexec started {size} processes, but MPI sees a world of {world.size}: mpi4py is linked "
            f"to another MPI than the one whose mpiexec ran (use the mpiexec of the same installation)"
        )
    return world


def sync_batchnorm(model, world: World):
    """Make every BatchNorm2d of ``model`` use statistics over all ranks' images (PyTorch's
    ``SyncBatchNorm``); returns the model. A no-op for a single-process world."""
    from .layers import BatchNorm2d

    for _, m in model.named_modules():
        if isinstance(m, BatchNorm2d):
            m.process_group = world if world.size > 1 else None
    return model
