"""Unnormalized 2-D target densities f(z) = exp(-E(z)) as Pyro models (AVO paper, Table 2, Fig. 3).

A target is written as a latent-variable "model" so that the shared log-weight primitive, the
objectives and the hierarchical guide's extended model all work unchanged:

    z ~ p(z) = N(0, s^2 I)   (the reference / initial distribution f_0),
    factor "x": log f(z) - log p(z)          so that  log p(x, z) = log f(z)

inside ``pyro.plate("data")``; the batch x (shape [B, 1], values ignored) only sets how many
samples are drawn. With this split, AVO's intermediate targets p(x, z)^a p(z)^(1-a) are exactly
f^a f_0^(1-a) with f_0 the initial distribution (section 4), when the guide's q_0 is the same
N(0, s^2 I). Energies (log f, up to a constant), with w1 = sin(pi z1 / 2), w2 = 3 exp(-(z1-2)^2/2):

    u1 (a): -((|z| - 2)/0.4)^2/2 + log(exp(-((z1-2)/0.6)^2/2) + exp(-((z1+2)/0.6)^2/2))
    u2 (b): -((|z/2| - 2)/0.5)^2/2 + log(exp(-((z1-2)/0.6)^2/2) + exp(-(2 sin z1)^2/2)
                                         + exp(-((z1+z2+2.5)/0.6)^2/2))
    u3 (c): -(2 - sqrt(z1^2 + z2^2/2))^2
    u4 (d): log(0.1 N([-2,0], 0.2I) + 0.3 N([2,0], 0.2I) + 0.4 N([0,2], 0.2I) + 0.2 N([0,-2], 0.2I))
    u5 (e): -((z2 - w1)/0.4)^2/2 - 0.1 z1^2
    u6 (f): log(exp(-((z2 - w1)/0.35)^2/2) + exp(-((z2 - w1 + w2)/0.35)^2/2)) - 0.05 z1^2
    mixture4: the equal-weight 4-mode mixture of Fig. 3 (modes at (+-2, 0), (0, +-2), cov 0.2 I)
(0.2I in (d) is read as the covariance.)
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from pyro_air.core.plates import data_plate
from pyro_air.core.sites import LATENT_SITE
from pyro_air.core.validation import check_positive
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS

MIXTURE_CENTRES = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])


def _lse(*terms):
    return torch.logsumexp(torch.stack(terms, dim=0), dim=0)


def _gaussian_mixture(z, weights, var=0.2):
    centres = MIXTURE_CENTRES.to(z)
    comp = dist.Normal(centres, math.sqrt(var)).to_event(1).log_prob(z.unsqueeze(-2))  # [..., 4]
    return torch.logsumexp(comp + torch.tensor(weights, dtype=z.dtype).log(), dim=-1)


def u1(z):
    z1 = z[..., 0]
    ring = -0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
    return ring + _lse(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2)


def u2(z):
    z1, z2 = z[..., 0], z[..., 1]
    ring = -0.5 * (((0.5 * z).norm(dim=-1) - 2) / 0.5) ** 2
    return ring + _lse(-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * (2 * torch.sin(z1)) ** 2,
                       -0.5 * ((z1 + z2 + 2.5) / 0.6) ** 2)


def u3(z):
    z1, z2 = z[..., 0], z[..., 1]
    return -(2 - torch.sqrt(z1 ** 2 + z2 ** 2 / 2)) ** 2


def u4(z):
    return _gaussian_mixture(z, [0.1, 0.3, 0.4, 0.2])


def _w1(z1):
    return torch.sin(math.pi * z1 / 2)


def u5(z):
    z1, z2 = z[..., 0], z[..., 1]
    return -0.5 * ((z2 - _w1(z1)) / 0.4) ** 2 - 0.1 * z1 ** 2


def u6(z):
    z1, z2 = z[..., 0], z[..., 1]
    w2 = 3 * torch.exp(-0.5 * (z1 - 2) ** 2)
    return _lse(-0.5 * ((z2 - _w1(z1)) / 0.35) ** 2, -0.5 * ((z2 - _w1(z1) + w2) / 0.35) ** 2) - 0.05 * z1 ** 2


def mixture4(z):
    return _gaussian_mixture(z, [0.25, 0.25, 0.25, 0.25])


ENERGIES = {"u1": u1, "u2": u2, "u3": u3, "u4": u4, "u5": u5, "u6": u6, "mixture4": mixture4}


@MODELS.register("energy")
class EnergyModel(LatentVariableModel):
    """log p(x, z) = log f(z) for a named 2-D target; see the module docstring."""

    def __init__(self, energy: str = "mixture4", reference_scale: float = 1.0):
        super().__init__(x_dim=1, z_dim=2)
        if energy not in ENERGIES:
            raise ValueError(f"unknown energy {energy!r}; use one of {', '.join(sorted(ENERGIES))}")
        self.energy = energy
        self.reference_scale = check_positive(reference_scale, "reference_scale")

    def log_target(self, z: torch.Tensor) -> torch.Tensor:
        """log f(z), the unnormalized target, for z of shape [..., 2]."""
        return ENERGIES[self.energy](z)

    def prior(self, batch_size: int, like: torch.Tensor) -> dist.Distribution:
        return dist.Normal(like.new_zeros(batch_size, 2), self.reference_scale).to_event(1)

    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        if self.validate_inputs:
            self.validate(x)
        with data_plate(x, num_data):
            p = self.prior(x.shape[0], x)
            z = pyro.sample(LATENT_SITE, p)
            pyro.factor("x", self.log_target(z) - p.log_prob(z))
        return z
