"""The amortization gap (Cremer, Li & Duvenaud 2018), per datapoint:

    Delta_amort(x) = ELBO[q*_x](x) - ELBO[q(. | x)](x)

where q(. | x) is the amortized guide and q*_x the best diagonal Gaussian for this x alone,
found by local stochastic optimization of the ELBO (``iw_svi.fit_local_gaussians`` with
bound="elbo"), initialized at the amortized q(z | x). Together with the approximation gap
log p(x) - ELBO[q*_x] it splits the inference gap of AIR Eq. 8. With an optimizer that has
converged it is >= 0 up to Monte Carlo error; if the amortized guide is not a diagonal Gaussian
(e.g. full covariance) it can be negative, since q*_x is searched among diagonal Gaussians.
"""
from __future__ import annotations

import torch

from pyro_air.evaluate.chunking import as_data, module_device
from pyro_air.evaluate.iw_svi import local_fit, per_chunk
from pyro_air.evaluate.log_likelihood import elbo


def amortization_gap(model, guide, x, num_steps: int = 100, num_particles: int = 10,
                     elbo_samples: int = 100, lr: float = 1e-2, batch_size: int = 100,
                     progress: bool = False, model_kwargs: dict | None = None,
                     data_plate: str | None = None) -> torch.Tensor:
    """ELBO of the per-datapoint optimized Gaussian minus the amortized ELBO, Tensor[N].

    Both ELBOs are Monte Carlo averages over ``elbo_samples`` draws; the local Gaussians take
    ``num_steps`` Adam steps on the ELBO estimated with ``num_particles`` draws. Any guide (the
    local Gaussians of ``pyro_air.evaluate.local_guides``; x may be a tuple of data tensors).
    """
    device = module_device(model, default=as_data(x)[0].device)

    def one_chunk(xb):
        local = local_fit(model, guide, xb, num_steps, num_particles, "elbo", lr, model_kwargs, data_plate)
        size = len(xb) if isinstance(xb, torch.Tensor) else len(xb[0])
        optimized = elbo(model, local, xb, num_samples=elbo_samples, batch_size=size, model_kwargs=model_kwargs,
                         data_plate=data_plate)
        amortized = elbo(model, guide, xb, num_samples=elbo_samples, batch_size=size, model_kwargs=model_kwargs,
                         data_plate=data_plate)
        return optimized - amortized

    return per_chunk(x, batch_size, progress, f"amortization gap, S={num_steps}", one_chunk, device,
                     work_per_point=amortization_gap_work(num_steps, num_particles, elbo_samples))


def amortization_gap_work(num_steps: int, num_particles: int = 10, elbo_samples: int = 100) -> int:
    """Model evaluations per datapoint of ``amortization_gap`` (what a command's one bar counts)."""
    return num_steps * num_particles + 2 * elbo_samples
