"""Data parallelism on ``torch.distributed``: process group set-up, sharding, and collectives.

Training runs W processes (ranks) launched by ``torchrun``; gloo connects them on CPU, NCCL on
CUDA (rank r uses GPU ``LOCAL_RANK``). Nothing here is an engine of its own: gradients are
averaged by ``torch.nn.parallel.DistributedDataParallel`` wrapped around the module that
``pyro.infer.ELBO.__call__(model, guide)`` returns (see the training loop's distributed trainer).

Sharding a training epoch. All ranks draw the same global permutation of the N training points
from a generator seeded by (seed, epoch) (``epoch_order``; a single process draws the same one).
Global batch t holds positions [tB, (t+1)B) of it; rank r takes the contiguous slice
[rB/W, (r+1)B/W) of that batch (``local_batch_slice``). So at every step the W ranks together hold
exactly the single-process global batch, which is why a W-process run reproduces a single-process
run. ``torch.utils.data.DistributedSampler`` interleaves instead (rank r takes positions r, r+W, ...
of the epoch's permutation); the two differ only in which rank holds which index.

Why the gradient is the single-process one. Each rank's loss on its local batch of b = B/W points
is  L_r = -(N / b) sum_{i in rank r} bound_i;  DDP averages gradients over ranks, so the step uses
(1/W) sum_r grad L_r = -(N / B) sum_{i in global batch} grad bound_i, the gradient of the
single-process loss on the global batch (docs/design.md, contract 2, with num_data = N).

Evaluation shards the list of datapoint batches contiguously over ranks (``shard``) and gathers the
per-datapoint values back in dataset order (``gather_in_order``, padded for uneven shards).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from pyro_air.core.seeds import stream_seed

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
LAUNCH_HINT = ("launch every process with torchrun, e.g. `torchrun --standalone --nproc_per_node=2 -m pyro_air "
               "train ... --distributed` (likewise `evaluate`)")


class DistributedSetupError(RuntimeError):
    """``--distributed`` was asked for where no process group can be set up."""


# -- who am I -----------------------------------------------------------------------------------
def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    return rank() == 0


def require_initialized(what: str) -> None:
    if not is_initialized():
        raise DistributedSetupError(
            f"{what} needs an initialized torch.distributed process group; call "
            f"pyro_air.support.parallel.setup(device) in every process first, or {LAUNCH_HINT}")


# -- set-up -------------------------------------------------------------------------------------
def setup(device: str = "cpu") -> torch.device:
    """Join the process group torchrun describes (env vars) unless already joined; this rank's device.

    Backend: gloo for ``device='cpu'``, NCCL for ``device='cuda'`` (rank r on GPU ``LOCAL_RANK``).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DistributedSetupError(f"device={device!r} was asked for but CUDA is not available; "
                                        "use --device cpu (gloo backend) or run on GPUs")
        index = dev.index if dev.index is not None else int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
        if index >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK={index} but this machine has {torch.cuda.device_count()} GPUs; start at most one "
                "process per GPU (torchrun --nproc_per_node <= number of GPUs)")
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise DistributedSetupError(f"distributed runs support device 'cpu' (gloo) or 'cuda' (NCCL), got {device!r}")
    if not is_initialized():
        missing = [name for name in TORCHRUN_ENV if name not in os.environ]
        if missing:
            raise DistributedSetupError(
                f"--distributed needs the environment variables torchrun sets ({', '.join(missing)} missing); "
                f"{LAUNCH_HINT}")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def shutdown(synchronize: bool = True) -> None:
    """Leave the process group; with ``synchronize`` (a normal exit) wait for every rank first.

    Without the barrier, a rank that finished early (e.g. a resume with nothing left to train) tore
    down its gloo connections while its peer was still using them, and about one exit in 30 aborted
    in C++ ("terminate called without an active exception") after all work was done. The barrier
    keeps the ranks in step until all are done with the group; ``gc.collect`` first releases
    objects that still hold it (a DistributedDataParallel reducer in a reference cycle). After an
    error the ranks may be out of step, so no barrier there (it could wait forever).
    """
    if not is_initialized():
        return
    import gc
    gc.collect()
    if synchronize:
        dist.barrier()
    dist.destroy_process_group()


def collective_device() -> torch.device:
    """Where tensors for collectives must live: the current GPU under NCCL, else the CPU."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- sharding -----------------------------------------------------------------------------------
def epoch_order(n: int, seed: int, epoch: int, device=None) -> torch.Tensor:
    """The epoch's permutation of range(n), drawn from a generator seeded by (seed, epoch); same on every rank."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "data_order", epoch))
    return torch.randperm(n, generator=gen).to(device or "cpu")


def check_batch_divisible(batch_size: int, world: int) -> None:
    if batch_size % world != 0:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the number of processes ({world}); every rank takes "
            f"batch_size / world_size points of each global batch - use a multiple of {world} "
            f"(e.g. {max(world, batch_size // world * world)}) or change --nproc_per_node")


def local_batch_slice(batch_size: int, rank_: int, world: int) -> slice:
    """Rank ``rank_``'s rows [rB/W, (r+1)B/W) of a global batch of ``batch_size`` rows."""
    check_batch_divisible(batch_size, world)
    b = batch_size // world
    return slice(rank_ * b, (rank_ + 1) * b)


def shard(items: list, rank_: int, world: int) -> list:
    """Rank ``rank_``'s contiguous share of ``items`` (sizes differ by at most one)."""
    n = len(items)
    return items[n * rank_ // world: n * (rank_ + 1) // world]


# -- collectives --------------------------------------------------------------------------------
def all_true(flag: bool) -> bool:
    """True on every rank iff ``flag`` is True on every rank."""
    t = torch.tensor(int(bool(flag)), device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def mean_across(t: torch.Tensor) -> torch.Tensor:
    """The average of ``t`` over ranks (a new tensor on t's device)."""
    out = t.detach().to(collective_device(), torch.float64).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / world_size()).to(t.device, t.dtype)


def first_bad_across(bad: tuple[int, float] | None) -> tuple[int, float] | None:
    """The earliest (step, value) any rank reported as non-finite, the same on every rank; None if none did."""
    local = torch.tensor([float("inf"), 0.0] if bad is None else [float(bad[0]), float(bad[1])],
                         dtype=torch.float64, device=collective_device())
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    step, value = min((tuple(p.tolist()) for p in parts), key=lambda sv: sv[0])
    return None if step == float("inf") else (int(step), value)


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled; for small state such as RNG states)."""
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_in_order(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's 1-d ``local`` in rank order; lengths may differ (padded for all_gather)."""
    device = collective_device()
    size = torch.tensor([local.numel()], device=device)
    sizes = [torch.empty_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    sizes = [int(s.item()) for s in sizes]
    padded = torch.zeros(max(sizes), dtype=local.dtype, device=device)
    padded[: local.numel()] = local.reshape(-1).to(device)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(local.device)
