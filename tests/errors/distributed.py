"""Distributed runs: `--distributed` outside torchrun, batch sizes, world sizes.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.builders import binary, pair, tiny_fit
from tests.errors.table import Case, cli, raised

TITLE = "Distributed runs"


def _no_torchrun(tmp, mp):
    from pyro_air.support.parallel import TORCHRUN_ENV
    for name in TORCHRUN_ENV:
        mp.delenv(name, raising=False)
    return cli("train", "--run-dir", tmp / "run", "--distributed")


def _not_divisible(tmp, mp):
    from pyro_air.support.parallel import check_batch_divisible
    return raised(check_batch_divisible, 10, 4)


def _other_world_size(tmp, mp):
    tiny_fit(tmp, epochs=1)
    state = torch.load(tmp / "checkpoint.pt", weights_only=True)
    state["world_size"] = 2  # as a 2-process run writes it
    torch.save(state, tmp / "checkpoint.pt")
    return raised(tiny_fit, tmp, resume=True, epochs=1)


def _distributed_eval(tmp, mp):
    from pyro_air.evaluate import log_likelihood
    return raised(log_likelihood, *pair(), binary(4), num_samples=2, distributed=True)


CASES = [
    Case("distributed-without-torchrun", "`--distributed` (or `fit(..., distributed=True)`) outside torchrun",
         "exit 2", "pyro-air: error: --distributed needs the environment variables torchrun sets (…); launch every "
         "process with torchrun, e.g. `torchrun --standalone --nproc_per_node=2 -m pyro_air train ... --distributed` "
         "(likewise `evaluate`)", _no_torchrun),
    Case("batch-not-divisible", "a global batch size not divisible by the number of processes", "ValueError",
         "batch_size=10 is not divisible by the number of processes (4); every rank takes batch_size / world_size "
         "points of each global batch - use a multiple of 4 (e.g. 8) or change --nproc_per_node", _not_divisible),
    Case("resume-other-world-size", "resuming with another number of processes", "CheckpointError",
         "the checkpoint was written by a run of 2 processes and this run has 1; each process's random stream is "
         "part of the state, so resume with the same number of processes (torchrun --nproc_per_node x --nnodes)",
         _other_world_size),
    Case("distributed-evaluation-outside-group", "`distributed=True` evaluation outside a process group",
         "DistributedSetupError", "distributed evaluation needs an initialized torch.distributed process group; call "
         "pyro_air.support.parallel.setup(device) in every process first, or …", _distributed_eval),
]
