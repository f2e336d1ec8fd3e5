"""Toy energy fitting with HVI (AVO paper, sections 5.2-5.3, Figures 3-4).

Non-amortized HVI, T = 10 gated transitions, q_0 = N(0, I) = f_0, batch 64, Adam lr 1e-3.
HVI-ELBO maximizes Eq. 3; HVI-AVO maximizes Eq. 4 per transition (a = 1). Beta-annealing
(Appendix D): every latent term of the objective (log p(z), log r_t, log q_t) is scaled by beta,
linear from 0.01 to 1 over the stated fraction of the updates, then 1.
Score (Appendix C): E_q[log f(z_T) - log q_T(z_T)] with log q_T importance-sampled through the
reverse kernels (an upper bound of the negative KL shifted by log Z, tight for many samples).
The figures and result files: ``python experiments/avo/toy.py figure3 | figure4``.
"""
from __future__ import annotations

import pyro
import torch

from pyro_air.guides import HierarchicalGuide
from pyro_air.infer import AVO_ELBO, KLWarmup, LinearSchedule, MonteCarloELBO
from pyro_air.models import EnergyModel
from pyro_air.models.energies import MIXTURE_CENTRES

T = 10


def make_objective(method: str):
    return AVO_ELBO(T, a=1.0) if method == "avo" else MonteCarloELBO()


def train(energy: str, method: str, updates: int, anneal_fraction: float | None, seed: int,
          batch: int = 64, lr: float = 1e-3, hidden: int = 32):
    pyro.set_rng_seed(seed)
    model = EnergyModel(energy)
    guide = HierarchicalGuide(x_dim=1, z_dim=2, num_transitions=T, amortized=False, transition_hidden=hidden)
    objective = make_objective(method)
    if anneal_fraction is not None:
        objective = KLWarmup(objective, LinearSchedule(0.01, 1.0, anneal_fraction))
    optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
    x = torch.zeros(batch, 1)
    with pyro.validation_enabled(False):
        for step in range(updates):
            if hasattr(objective, "set_progress"):
                objective.set_progress(step / updates)
            optimizer.zero_grad()
            objective.differentiable_loss(model, guide, x).backward()
            optimizer.step()
    return model, guide


@torch.no_grad()
def negative_kl(model, guide, num_points: int = 1000, num_samples: int = 200) -> float:
    """E_q[log f(z) - log q_T(z)] with log q_T estimated by importance sampling (Appendix C)."""
    x = torch.zeros(num_points, 1)
    z = guide(x)
    return (model.log_target(z) - guide.log_marginal(x, z, num_samples)).mean().item()


@torch.no_grad()
def layer_samples(guide, n: int = 2000):
    tr = pyro.poutine.trace(guide).get_trace(torch.zeros(n, 1))
    return [tr.nodes[name]["value"] for name in guide.site_names()]


def modes_covered(z: torch.Tensor, min_share: float = 0.05) -> int:
    """Modes of the 4-mode mixture holding >= min_share of the samples (nearest centre)."""
    nearest = torch.cdist(z, MIXTURE_CENTRES).argmin(1)
    return int((torch.bincount(nearest, minlength=4).float() / len(z) >= min_share).sum())
