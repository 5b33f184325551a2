"""The process group of a multi-process run (``torchrun``), and this process's place in it.

``torchrun --nproc_per_node N -m tinyllm train ...`` starts N copies of ``tinyllm train`` and
tells each, through its environment, who it is:

    RANK          this process's number among all processes, 0 .. WORLD_SIZE - 1
    WORLD_SIZE    how many processes train together (nodes × processes per node)
    LOCAL_RANK    its number on this machine (= the GPU it drives)
    MASTER_ADDR, MASTER_PORT    where rank 0 listens, so that the processes can find each other

``process_group(device)`` joins them: gloo on CPU; on CUDA, NCCL for tensors on the GPU
(gradients) and gloo for small CPU tensors (stop flags, generator states), so that agreeing
on when to stop never waits for the GPU. Outside torchrun it is a no-op: one process is rank 0
of 1, and every method of ``Dist`` returns at once.

When torchrun restarts the group after a worker failed (``--max-restarts``), the processes of
the new attempt meet under keys of their own in torchrun's store (``attempt{N}/``): with a fixed
``--master_port`` the store outlives the attempt, and gloo would otherwise find the dead
processes' addresses there. A peer that dies makes the collective of the others fail at once
(its connection closes; a machine that vanishes: after ``TIMEOUT``): ``peer_failed`` tells that
error from a bug, and ``Dist.failed_rank`` names the rank that is gone.
"""
import gc
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as tdist

# how long a collective waits for a peer: long enough for the first process to tokenize a large
# corpus while the others wait for it (a peer that dies closes its connections: that is at once)
TIMEOUT = timedelta(minutes=60)
# the ends of a collective whose peer is gone (gloo's and NCCL's words for it)
PEER_GONE = ("closed by peer", "reset by peer", "Broken pipe", "timed out", "Timed out",
             "NCCL communicator was aborted")


@dataclass
class Dist:
    """This process's place in a multi-process run; one process is rank 0 of 1.

    The training loop draws batches from its rank's shard (``random_batches(rank=,
    world_size=)``), counts tokens over all ranks, and only rank 0 logs, evaluates and writes
    checkpoints. The methods are collectives: every rank must call them, in the same order."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    store: object = field(default=None, repr=False, compare=False)   # the group's keys

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device_for(self, device: torch.device) -> torch.device:
        """A bare 'cuda' means this process's own GPU, cuda:LOCAL_RANK."""
        if device.type == "cuda" and device.index is None and self.world_size > 1:
            return torch.device("cuda", self.local_rank)
        return device

    def barrier(self) -> None:
        if self.world_size > 1:
            tdist.barrier()

    @contextmanager
    def local_main_first(self):
        """Run the block on each machine's first process (LOCAL_RANK 0) before the others, e.g.
        to write a cache the others then read instead of racing to write it too. An error in
        the first process still releases the others (which then meet the same error)."""
        if self.local_rank != 0:
            self.barrier()
        try:
            yield
        finally:
            if self.local_rank == 0:
                self.barrier()

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """The average of ``x`` over all ranks (a new tensor; ``x`` itself is unchanged)."""
        if self.world_size == 1:
            return x
        x = x.detach().clone()
        tdist.all_reduce(x, op=tdist.ReduceOp.SUM)
        return x / self.world_size

    def agree(self, clock: tuple[float, ...], signal: int | None) -> tuple[tuple, int | None]:
        """(rank 0's ``clock`` readings, a stop signal any rank received): each rank then takes
        the same decisions (time budget, learning rate, when to stop) and none waits for the
        others."""
        if self.world_size == 1:
            return tuple(clock), signal
        x = torch.tensor([*(clock if self.is_main else [0.0] * len(clock)), float(signal or 0)],
                         dtype=torch.float64)
        tdist.all_reduce(x, op=tdist.ReduceOp.MAX)          # on the CPU: gloo
        return tuple(x[:-1].tolist()), int(x[-1].item()) or None

    def from_main(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank (e.g. its decision, after evaluating, to stop)."""
        if self.world_size == 1:
            return flag
        x = torch.tensor([float(flag)])
        tdist.broadcast(x, src=0)
        return bool(x.item())

    def failed_rank(self) -> str:
        """The rank that is gone, as far as this process can tell: one of this machine whose
        process no longer runs (each rank left its pid in the store), else the other of two."""
        for r in range(self.world_size):
            if r == self.rank or self.store is None:
                continue
            try:
                host, pid = self.store.get(f"pid{r}").decode().split()
            except Exception:       # the store went with the process that held it
                continue
            if host == socket.gethostname() and _gone(int(pid)):
                return f"rank {r} (pid {pid})"
        return f"rank {1 - self.rank}" if self.world_size == 2 else "another rank"

    def gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``x`` (a CPU tensor of the same shape on all ranks), in rank order."""
        if self.world_size == 1:
            return [x]
        out = [torch.empty_like(x) for _ in range(self.world_size)]
        tdist.all_gather(out, x.contiguous())
        return out


def _gone(pid: int) -> bool:
    """The process ``pid`` of this machine has ended (or is a zombie its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True
    except OSError:               # no /proc here: not known
        return False


def peer_failed(error: BaseException, dist: Dist) -> bool:
    """True when ``error`` is a collective of a multi-process run failing because a peer is
    gone (died, killed, its machine lost), not a bug."""
    return dist.world_size > 1 and isinstance(error, RuntimeError) and \
        any(words in str(error) for words in PEER_GONE)


def from_env() -> Dist:
    """This process's place, from torchrun's environment (rank 0 of 1 outside torchrun)."""
    return Dist(rank=int(os.environ.get("RANK", 0)),
                world_size=int(os.environ.get("WORLD_SIZE", 1)),
                local_rank=int(os.environ.get("LOCAL_RANK", 0)))


@contextmanager
def process_group(device: torch.device):
    """Join the other processes for the block (when started by torchrun) and yield a ``Dist``;
    leave the group at the end, however the block ends."""
    dist = from_env()
    if dist.world_size == 1:
        yield dist
        return
    if device.type == "cuda":
        torch.cuda.set_device(dist.local_rank)   # before NCCL starts: one GPU per process
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    store, _, _ = next(tdist.rendezvous("env://", dist.rank, dist.world_size, timeout=TIMEOUT))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.store = tdist.PrefixStore(f"tinyllm/attempt{attempt}", store)   # this attempt's own keys
    dist.store.set(f"pid{dist.rank}", f"{socket.gethostname()} {os.getpid()}")
    tdist.init_process_group(backend=backend, store=dist.store, rank=dist.rank,
                             world_size=dist.world_size, timeout=TIMEOUT)
    try:
        yield dist
        tdist.barrier()    # all done before any leaves: gloo aborts a peer whose links close early
    finally:
        # free the run's DistributedDataParallel (held in reference cycles) while the group and
        # the interpreter are alive: its pending gloo work, freed at interpreter exit, aborts
        gc.collect()
        tdist.destroy_process_group()


__all__ = ["Dist", "process_group", "from_env", "peer_failed", "TIMEOUT"]
