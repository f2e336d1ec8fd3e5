"""Tiny runs for the distributed tests: the same function runs in one process or in each of W.

The W-process runs are started by ``torch.multiprocessing.spawn``; ranks meet through a file
store in the test's temporary directory (no port to pick), on the gloo backend, one thread each.

For the parameter-equality test the guide is a point mass, q(z | x) = delta(z - f(x)): the loss
is then a deterministic function of the parameters and the batch, so a W-process run can match a
single-process run to float rounding (with a Gaussian guide each rank draws its own noise and the
two runs differ by Monte Carlo error; see ``pyro_air.train_distributed``).
"""
from __future__ import annotations

from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.distributed
from pyro.nn.module import to_pyro_module_

from pyro_air import guides, infer, models
from pyro_air.evaluate import log_likelihood
from pyro_air.guides.base import AmortizedGuide
from pyro_air.nets import mlp
from pyro_air.train import TrainConfig, fit

X_DIM, Z_DIM = 12, 2
CONFIG = dict(epochs=2, batch_size=8, lr=3e-2, seed=5, valid_num_samples=3, patience=1, dynamic_binarization=True,
              progress=False)  # 40 points: 5 steps per epoch
EVAL = dict(num_samples=7, batch_size=4, seed=13)  # 23 points: 6 batches, shards of 3 + 3 batches (12 + 11 points)


class PointMassEncoder(AmortizedGuide):
    """q(z | x) = delta(z - f(x)) with f an MLP: log q = 0 at its only sample."""

    def __init__(self, x_dim: int, z_dim: int):
        super().__init__(x_dim, z_dim)
        self.net = mlp((x_dim, 6, z_dim))
        to_pyro_module_(self.net)

    def posterior(self, x):
        return dist.Delta(self.net(x), event_dim=1)


def data():
    gen = torch.Generator().manual_seed(21)
    return torch.rand(40, X_DIM, generator=gen), torch.rand(10, X_DIM, generator=gen)  # grey levels


def eval_data():
    return torch.bernoulli(torch.full((23, X_DIM), 0.4), generator=torch.Generator().manual_seed(3))


def build(point_mass: bool):
    pyro.clear_param_store()
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=X_DIM, z_dim=Z_DIM, hidden=(6,))
    guide = PointMassEncoder(X_DIM, Z_DIM) if point_mass else guides.build("gaussian", x_dim=X_DIM, z_dim=Z_DIM,
                                                                            hidden=(6,))
    return model, guide


def train_run(distributed: bool, run_dir=None, point_mass=True, resume=False, **overrides):
    """Parameters (model and guide state dicts) and history after a tiny fit."""
    model, guide = build(point_mass)
    if not point_mass and distributed:
        torch.manual_seed(100 + torch.distributed.get_rank())  # unequal initial values: DDP must broadcast rank 0's
        model, guide = models.build("bernoulli-vae", x_dim=X_DIM, z_dim=Z_DIM, hidden=(6,)), guides.build(
            "gaussian", x_dim=X_DIM, z_dim=Z_DIM, hidden=(6,))
    train_x, valid_x = data()
    result = fit(model, guide, infer.build("iwae", num_particles=2), train_x, valid_x,
                 TrainConfig(**{**CONFIG, **overrides}), run_dir=run_dir, spec={"note": "distributed-worker"},
                 resume=resume, distributed=distributed)
    return {"model": model.state_dict(), "guide": guide.state_dict(), "history": result.history,
            "best_epoch": result.best_epoch}


def eval_run(distributed: bool, seed=EVAL["seed"]):
    model, guide = build(point_mass=False)
    x = eval_data()
    return log_likelihood(model, guide, x, num_samples=EVAL["num_samples"], batch_size=EVAL["batch_size"], seed=seed,
                          distributed=distributed)


def _join(rank: int, world: int, store: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)


def train_worker(rank: int, world: int, store: str, out: str, kwargs: dict) -> None:
    _join(rank, world, store)
    try:
        torch.save(train_run(True, **kwargs), Path(out) / f"train_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def eval_worker(rank: int, world: int, store: str, out: str, kwargs: dict) -> None:
    _join(rank, world, store)
    try:
        torch.save(eval_run(True, **kwargs), Path(out) / f"eval_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()
