"""Tiny runs for the distributed tests: the same function runs in one process or in each of W.

The W-process runs are started by ``torch.multiprocessing.spawn``; ranks meet through a file
store in the test's temporary directory (no port to pick), on the gloo backend, one thread each.

For the parameter-equality test the guide is a point mass, q(z | x) = delta(z - f(x)): the loss
is then a deterministic function of the parameters and the batch, so a W-process run can match a
single-process run to float rounding (with a Gaussian guide each rank draws its own noise and the
two runs differ by Monte Carlo error; see ``pyro_air.train.distributed``).
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.distributed
from pyro.infer.elbo import ELBOModule
from pyro.nn.module import to_pyro_module_
from torch.nn.parallel import DistributedDataParallel

from pyro_air import guides, infer, models
from pyro_air.backend.nets import mlp
from pyro_air.support.parallel import local_batch_slice
from pyro_air.evaluate import log_likelihood
from pyro_air.guides.base import AmortizedGuide
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
    torch.manual_seed(0)
    return build_unseeded(point_mass)


def build_unseeded(point_mass: bool):
    pyro.clear_param_store()
    model = models.build("bernoulli-vae", x_dim=X_DIM, z_dim=Z_DIM, hidden=(6,))
    guide = PointMassEncoder(X_DIM, Z_DIM) if point_mass else guides.build("gaussian", x_dim=X_DIM, z_dim=Z_DIM,
                                                                            hidden=(6,))
    return model, guide


class CrashAt:
    """Delegates to an objective; raises ``Crash`` at its ``step``-th loss (a process dying mid-epoch)."""

    def __init__(self, objective, step):
        self.objective, self.step, self.calls = objective, step, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.step:
            raise Crash(f"simulated crash at step {self.step}")
        return self.objective.differentiable_loss(*args, **kwargs)


class Crash(Exception):
    pass


class NanOnRank:
    """Delegates to an objective; on rank ``rank`` only, its ``step``-th loss is NaN."""

    def __init__(self, objective, step, rank):
        self.objective, self.step, self.rank, self.calls = objective, step, rank, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        loss = self.objective.differentiable_loss(*args, **kwargs)
        bad = self.calls == self.step and torch.distributed.get_rank() == self.rank
        return loss * float("nan") if bad else loss


def train_run(distributed: bool, run_dir=None, point_mass=True, resume=False, crash_at=None, nan_on_rank1_at=None,
              **overrides):
    """Parameters (model and guide state dicts) and history after a tiny fit.

    With a Gaussian guide in a distributed run every rank starts from different random parameters
    (DDP must make them rank 0's).
    """
    model, guide = build(point_mass)
    if distributed and not point_mass:
        torch.manual_seed(100 + torch.distributed.get_rank())
        model, guide = build_unseeded(point_mass)
    objective = infer.build("iwae", num_particles=2)
    if crash_at is not None:
        objective = CrashAt(objective, crash_at)
    if nan_on_rank1_at is not None:
        objective = NanOnRank(objective, nan_on_rank1_at, rank=1)
    train_x, valid_x = data()
    result = fit(model, guide, objective, train_x, valid_x, TrainConfig(**{**CONFIG, **overrides}), run_dir=run_dir,
                 spec={"note": "distributed-worker"}, resume=resume, distributed=distributed)
    return {"model": model.state_dict(), "guide": guide.state_dict(), "history": result.history,
            "best_epoch": result.best_epoch, "rollbacks": result.rollbacks}


def first_gradients(distributed: bool):
    """Gradients of every parameter after one backward pass on the global batch (its local slice per rank)."""
    model, guide = build(point_mass=True)
    train_x, _ = data()
    xb = train_x[: CONFIG["batch_size"]].bernoulli(generator=torch.Generator().manual_seed(1))
    objective = infer.build("iwae", num_particles=2)
    if distributed:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        ddp = DistributedDataParallel(ELBOModule(model, guide, objective))
        ddp(xb[local_batch_slice(len(xb), rank, world)], len(train_x)).backward()
    else:
        objective.differentiable_loss(model, guide, xb, num_data=len(train_x)).backward()
    return {f"{who}.{name}": p.grad.clone() for who, m in (("model", model), ("guide", guide))
            for name, p in m.named_parameters()}


def eval_run(distributed: bool, seed=EVAL["seed"]):
    model, guide = build(point_mass=False)
    x = eval_data()
    return log_likelihood(model, guide, x, num_samples=EVAL["num_samples"], batch_size=EVAL["batch_size"], seed=seed,
                          distributed=distributed)


def _join(rank: int, world: int, store: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                         timeout=timedelta(seconds=120))  # a deadlock fails the test, not CI


def train_worker(rank: int, world: int, store: str, out: str) -> None:
    """Gradients, a point-mass run, and a Gaussian run uninterrupted / crashed at step 7 and resumed."""
    _join(rank, world, store)
    out = Path(out)
    try:
        results = {"gradients": first_gradients(True), "point_mass": train_run(True, run_dir=out / "point_mass")}
        gaussian = dict(point_mass=False, checkpoint_every_steps=3)
        results["uninterrupted"] = train_run(True, run_dir=out / "uninterrupted", **gaussian)
        try:
            train_run(True, run_dir=out / "resumed", crash_at=7, **gaussian)
        except Crash:
            pass
        results["resumed"] = train_run(True, run_dir=out / "resumed", resume=True, **gaussian)
        # a NaN loss on rank 1 alone at step 4: both ranks roll back together (else DDP would deadlock)
        results["rollback"] = train_run(True, nan_on_rank1_at=4, on_nonfinite="rollback", **gaussian)
        torch.save(results, out / f"train_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def eval_worker(rank: int, world: int, store: str, out: str) -> None:
    _join(rank, world, store)
    try:
        torch.save(eval_run(True), Path(out) / f"eval_rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()
