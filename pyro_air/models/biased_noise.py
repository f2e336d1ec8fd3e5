"""The biased noise model of the AVO paper (Huang, Tan, Lacoste, Courville 2018, section 5.1).

A 1-D latent bent onto a circle, with Gaussian noise:

    z ~ N(0, 1),   theta(z) = pi tanh(eta z),
    x | z ~ N( [sin theta(z), cos theta(z)],  diag sigma(z)^2 ),        eta = 0.75      (section 5.1)

As z -> +-inf, theta -> +-pi, so the data point x = [0, -1] is reached only from the two tails of
the prior: its posterior p(z | x) is bimodal with one mode in each tail (z -> -z maps one onto the
other). An encoder that must put a Gaussian on it can cover only one mode or sit between them.

Decisions the text leaves open (section 5.1 gives neither the noise scale nor "Equation ??"):
  - the data noise is eps_i ~ N(0, noise_scale^2) with noise_scale = 0.1 (read N(0, eps) as a
    standard deviation; the paper gives no value);
  - the learned decoder keeps the paper's mean form sin/cos(pi tanh(eta z)) with eta a learned
    scalar (``"eta"`` in ``learn``; kept positive, which loses nothing since p(z) is symmetric),
    and, as in the paper, the standard deviations of eps_1, eps_2 are an MLP of z (``"scale"`` in
    ``learn``: sigma(z) = softplus(MLP(z)) + min_scale, started at the constant noise_scale).
  With ``learn=()`` (the default) the model is the fixed data distribution.

p(x) = int p(z) p(x | z) dz is a 1-D integral; ``log_marginal`` computes it by the trapezoidal
rule on a fine grid of z, and ``posterior_on_grid`` gives p(z | x) = p(z) p(x | z) / p(x) on it.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.backend.nets import mlp, softplus_scale
from pyro_air.core.validation import (
    check_batch,
    check_hidden,
    check_positive,
    check_positive_int,
)
from pyro_air.models.base import LatentVariableModel
from pyro_air.models.registry import MODELS

LEARNABLE = ("eta", "scale")


@MODELS.register("biased-noise")
class BiasedNoiseModel(LatentVariableModel):
    def __init__(self, eta: float = 0.75, noise_scale: float = 0.1, learn=(), hidden=(16,),
                 min_scale: float = 1e-3, x_dim: int = 2, z_dim: int = 1):
        if x_dim != 2 or z_dim != 1:
            raise ValueError(f"the biased noise model has a 1-D latent and 2-D data (x_dim=2, z_dim=1), "
                             f"got x_dim={x_dim!r}, z_dim={z_dim!r}; leave them at their defaults")
        super().__init__(x_dim, z_dim)
        check_positive(eta, "eta (the slope inside tanh)")
        check_positive(noise_scale, "noise_scale (the standard deviation of eps_1, eps_2)")
        self.min_scale = check_positive(min_scale, "min_scale (the smallest decoder standard deviation)")
        if noise_scale <= min_scale:
            raise ValueError(f"noise_scale must exceed min_scale={min_scale}, got {noise_scale!r}")
        learn = (learn,) if isinstance(learn, str) else tuple(learn)
        unknown = sorted(set(learn) - set(LEARNABLE))
        if unknown:
            raise ValueError(f"learn may name only {LEARNABLE}, got {unknown}; e.g. learn=('eta', 'scale')")
        self.learn = learn
        log_eta = torch.tensor(float(eta)).log()
        if "eta" in learn:
            self.log_eta = nn.Parameter(log_eta)
        else:
            self.register_buffer("log_eta", log_eta)
        self.noise_scale = float(noise_scale)
        self.scale_net = None
        if "scale" in learn:
            self.hidden = check_hidden(hidden)
            self.scale_net = mlp((1, *self.hidden, 2), act="tanh")
            last = self.scale_net[-1]
            nn.init.zeros_(last.weight)  # sigma(z) starts at the constant noise_scale
            nn.init.constant_(last.bias, _softplus_inverse(noise_scale - min_scale))

    @property
    def eta(self) -> torch.Tensor:
        return self.log_eta.exp()

    def loc(self, z: torch.Tensor) -> torch.Tensor:
        """[sin theta, cos theta] with theta = pi tanh(eta z), for z of shape [..., 1]."""
        theta = math.pi * torch.tanh(self.eta * z)
        return torch.cat([torch.sin(theta), torch.cos(theta)], dim=-1)

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """sigma(z) of shape [..., 2]: the MLP, or the constant noise_scale."""
        if self.scale_net is None:
            return z.new_full((*z.shape[:-1], 2), self.noise_scale)
        return softplus_scale(self.scale_net(z), self.min_scale)

    def likelihood(self, z: torch.Tensor) -> dist.Distribution:
        return dist.Normal(self.loc(z), self.scale(z), validate_args=False).to_event(1)

    @torch.no_grad()
    def sample_data(self, n: int, seed: int = 0) -> torch.Tensor:
        """n draws of x from the model, Tensor[n, 2], from a generator seeded by ``seed``."""
        check_positive_int(n, "n")
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 1, generator=gen)
        return self.loc(z) + self.scale(z) * torch.randn(n, 2, generator=gen)

    # -- quadrature over z ------------------------------------------------------------------------
    @staticmethod
    def z_grid(num_points: int = 2001, limit: float = 8.0) -> torch.Tensor:
        """An even grid of z on [-limit, limit], Tensor[num_points]."""
        check_positive_int(num_points, "num_points", minimum=3)
        check_positive(limit, "limit")
        return torch.linspace(-limit, limit, num_points)

    def log_joint_on_grid(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """log p(x_n, z_g) = log p(z_g) + log p(x_n | z_g), Tensor[N, G]."""
        z = grid.unsqueeze(-1)                                                   # [G, 1]
        log_prior = dist.Normal(0.0, 1.0).log_prob(grid)                        # [G]
        likelihood = dist.Normal(self.loc(z), self.scale(z))                    # batch [G, 2]
        log_lik = likelihood.log_prob(x.unsqueeze(-2)).sum(-1)                  # [N, G]
        return log_prior + log_lik

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor, num_points: int = 2001, limit: float = 8.0,
                     chunk_size: int = 4096) -> torch.Tensor:
        """log p(x) = log int p(z) p(x | z) dz by the trapezoidal rule on ``z_grid``, Tensor[N].

        The rule is sum_g w_g p(x, z_g) with w_g = h (h/2 at both ends), h the grid spacing; the
        mass of p(z) beyond |z| = limit (8 by default: ~1e-15) is left out.
        """
        check_batch(x, self.x_dim, type(self).__name__)
        grid = self.z_grid(num_points, limit).to(x)
        log_w = _trapezoid_log_weights(grid)
        out = [torch.logsumexp(self.log_joint_on_grid(xb, grid) + log_w, dim=-1) for xb in x.split(chunk_size)]
        return torch.cat(out)

    @torch.no_grad()
    def posterior_on_grid(self, x: torch.Tensor, num_points: int = 2001, limit: float = 8.0):
        """(grid [G], density [N, G]): p(z_g | x_n) = p(x_n, z_g) / p(x_n), the density on the grid."""
        check_batch(x, self.x_dim, type(self).__name__)
        grid = self.z_grid(num_points, limit).to(x)
        log_joint = self.log_joint_on_grid(x, grid)
        log_px = torch.logsumexp(log_joint + _trapezoid_log_weights(grid), dim=-1, keepdim=True)
        return grid, (log_joint - log_px).exp()


def _trapezoid_log_weights(grid: torch.Tensor) -> torch.Tensor:
    h = grid[1] - grid[0]
    w = torch.full_like(grid, float(h))
    w[0] = w[-1] = h / 2
    return w.log()


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def local_maxima(density: torch.Tensor, min_height: float = 0.0) -> torch.Tensor:
    """Indices g of the strict local maxima of a density on a grid, Tensor[M] (1-D input), whose
    value exceeds ``min_height`` times the global maximum: the modes counted on the grid."""
    if density.dim() != 1 or len(density) < 3:
        raise ValueError(f"local_maxima needs a 1-D density of at least 3 grid values, got shape {list(density.shape)}")
    inner = density[1:-1]
    peak = (inner > density[:-2]) & (inner > density[2:]) & (inner > min_height * density.max())
    return peak.nonzero().squeeze(-1) + 1
