"""Data-parallel training over MPI: every rank holds the model, trains on its shard of each
global batch, and the gradients are averaged with one allreduce per step.

    from lstm_xp import distributed
    dist = distributed.setup()                      # MPI.COMM_WORLD, or setup(comm)
    dist.broadcast_parameters(model)                # rank 0's parameters everywhere
    for x, target in global_batches:                # the same on every rank
        rows = dist.shard(len(x))                   # this rank's rows of the global batch
        model.zero_grad()
        loss = ... forward / backward on x[rows] ...
        loss = dist.average_gradients(model, loss, len(x[rows]) / len(x))   # one allreduce
        opt.step()

Equivalence with one process. With mean losses, the gradient of the global batch is
sum_r (b_r / B) g_r, where rank r's b_r rows give the mean-loss gradient g_r; so each rank
scales its gradients (and loss) by b_r / B and the allreduce *sums*. This holds for unequal
shards (B not divisible by the number of ranks, the short last batch) and for empty ones.
Only the order of the floating-point reduction differs from a one-process run. The loss
travels in the same buffer as the gradients: one allreduce per step, over one contiguous
buffer. Every rank then holds bitwise the same averaged gradient, so the clipping, the
non-finite check and the optimizer step agree on every rank without further messages.

mpi4py is imported only by :func:`setup` (``pip install "lstm-xp[mpi]"`` brings it and an MPI).
On GPUs, rank r uses GPU r mod (visible GPUs), and the backend's ``allreduce_sum`` uses
NCCL through CuPy where it can, else MPI on a host copy -- that path has not run on GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass


class DistributedUnavailable(RuntimeError):
    """mpi4py or an MPI implementation is missing (the message says how to install them)."""


def setup(comm=None) -> Distributed:
    """Data parallelism over ``comm`` (an mpi4py communicator; default MPI.COMM_WORLD).

    The training loop (``lstm_xp.train``) then pins rank r to GPU r mod (visible GPUs) when
    it runs on the GPU (``backends.pin_gpu``), before any GPU work.

    Raises:
        DistributedUnavailable: mpi4py (or the MPI library under it) cannot be imported.
    """
    try:
        from mpi4py import MPI
    except ImportError as err:
        from backends import install_command
        raise DistributedUnavailable(
            f"distributed training needs mpi4py and an MPI implementation ({err}); "
            f"{install_command('mpi')}") from None
    return Distributed(MPI.COMM_WORLD if comm is None else comm, MPI)


@dataclass
class Distributed:
    """A communicator with what data-parallel training needs of it."""

    comm: object
    MPI: object
    steps: int = 0                   # allreduces done (one per training step)
    bytes_per_step: int = 0          # size of the last one
    training: bool = False           # inside the epoch loop: a rank alone failing must abort

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def shard(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch`` rows: contiguous, sizes differing by
        at most one, rank 0 first (as ``numpy.array_split``); empty when batch < size."""
        base, extra = divmod(batch, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def broadcast_parameters(self, model) -> None:
        """Copy rank 0's parameters into every rank's ``model`` (a layer or a Container)."""
        params = list(dict(model.named_parameters()).values())
        backend = model.backend
        flat = _pack(backend, params)
        host = backend.to_numpy(flat).copy()
        self.comm.Bcast(host, root=0)
        _unpack(backend, backend.asarray(host), params)

    def average_gradients(self, model, loss, weight: float):
        """Replace every gradient of ``model`` by sum over ranks of ``weight_r * grad_r``, in
        one allreduce over one buffer that also carries the loss; returns the loss averaged
        the same way (a 0-d device array). ``weight`` = this rank's rows / the global batch's
        (0 for an empty shard, whose gradients should be zero)."""
        grads = list(model.grads.values())
        backend = model.backend
        xp = backend.xp
        flat = _pack(backend, grads, extra=loss)
        flat *= weight
        summed = backend.allreduce_sum(flat, self.comm, self.MPI)
        _unpack(backend, summed, grads)
        self.steps += 1
        self.bytes_per_step = int(flat.shape[0]) * xp.finfo(flat.dtype).bits // 8
        return summed[-1]

    def on_root(self, fn):
        """``fn()`` on rank 0 only; its result -- or its exception, raised on every rank and
        marked ``collective`` -- reaches every rank, so that no rank waits for one that
        failed (rank 0's run folder, its disk)."""
        result, error = None, None
        if self.is_root:
            try:
                result = fn()
            except Exception as err:          # raised on every rank below
                error = err
        result, error = self.comm.bcast((result, error), root=0)
        if error is not None:
            error.collective = True
            raise error
        return result

    def gather(self, value) -> list | None:
        """Every rank's ``value``, in rank order, on rank 0 (None elsewhere)."""
        return self.comm.gather(value, root=0)

    def abort(self, status: int) -> None:
        """End every rank of the job now (a failure only this rank met)."""
        self.comm.Abort(status)

    def all_ok(self, error) -> None:
        """Every rank says whether it failed (``error``: an exception or None); the lowest
        failing rank's exception is then raised on every rank, marked ``collective``, so
        that no rank goes on to wait for one that stopped."""
        errors = self.comm.allgather(error)
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            first.collective = True
            raise first


def _pack(backend, arrays, extra=None):
    """One contiguous 1-D device array: every array of ``arrays`` flattened, then ``extra``
    (a 0-d array) if given."""
    xp = backend.xp
    parts = [xp.reshape(a, (-1,)) for a in arrays]
    if extra is not None:
        parts.append(xp.reshape(xp.astype(extra, arrays[0].dtype) if arrays else extra, (1,)))
    return xp.concat(parts) if hasattr(xp, "concat") else xp.concatenate(parts)


def _unpack(backend, flat, arrays) -> None:
    offset = 0
    xp = backend.xp
    for a in arrays:
        n = 1
        for s in a.shape:
            n *= s
        a[...] = xp.reshape(flat[offset:offset + n], tuple(a.shape))
        offset += n
