"""A hand-written PyTorch VAE/IWAE training loss: the reference the benchmarks compare against.

It computes exactly what pyro-air's ``ELBO`` / ``IWAE_ELBO`` compute for ``BernoulliVAE`` +
``GaussianEncoder``, with plain tensor code and no Pyro:

    q(z | x) = N(mu(x), diag sigma(x)^2),  sigma = softplus(raw) + 1e-4
    z_kb = mu(x_b) + eps_kb * sigma(x_b),   eps ~ N(0, I)  (reparameterized, one [K, B, z] draw)
    log w_kb = log N(z_kb; 0, I) + log Bern(x_b; sigmoid(decoder(z_kb))) - log q(z_kb | x_b)
    ELBO loss = -(N / B) sum_b (1/K) sum_k log w_kb                        (AIR paper Eq. 5)
    IWAE loss = -(N / B) sum_b [logsumexp_k log w_kb - log K]          (AIR paper Eq. 20)

The Gaussian log densities use the same formula as ``torch.distributions.Normal.log_prob``, the
Bernoulli term the formula of ``pyro_air.core.distributions.BernoulliImage`` (sum_d [x_d l_d -
softplus(l_d)]), the networks ``pyro_air.backend.nets.mlp`` (so the same CPU tanh), and the terms are added
in the same order, so on the same weights, batch and seed the loss equals pyro-air's
(``tests/test_benchmarks.py`` checks loss and gradients): the ratio measures framework overhead.

``plain_torch=True`` builds what one would write without knowing those two choices - ``nn.Tanh``
and ``binary_cross_entropy_with_logits`` - the same function to float32 rounding; the benchmarks
report it as a second reference, to show what the two choices are worth.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pyro_air.backend.nets import mlp

LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class HandwrittenVAE(nn.Module):
    """Encoder x-h-h-2z and decoder z-h-h-x tanh MLPs, as pyro-air builds them."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), activation: str = "tanh",
                 plain_torch: bool = False):
        super().__init__()
        self.z_dim, self.plain_torch = z_dim, plain_torch
        self.features = mlp((x_dim, *hidden), act=activation, final_activation=True)
        self.head = nn.Linear(hidden[-1], 2 * z_dim)
        self.decoder = mlp((z_dim, *hidden, x_dim), act=activation)
        if plain_torch:  # plain nn.Sequential (without pyro-air's no-gradient path) and nn.Tanh
            self.features, self.decoder = nn.Sequential(*self.features), nn.Sequential(*self.decoder)
            if activation == "tanh":
                for net in (self.features, self.decoder):
                    for i, layer in enumerate(net):
                        if not isinstance(layer, nn.Linear):
                            net[i] = nn.Tanh()

    @classmethod
    def from_pyro_air(cls, model, guide, plain_torch: bool = False) -> HandwrittenVAE:
        """A copy with the weights of a pyro-air ``BernoulliVAE`` and ``GaussianEncoder``."""
        net = cls(model.x_dim, model.z_dim, model.hidden, plain_torch=plain_torch)
        net.features.load_state_dict(guide.features.state_dict())
        net.head.load_state_dict(guide.head.state_dict())
        net.decoder.load_state_dict(model.decoder.state_dict())
        return net

    def log_weights(self, x: torch.Tensor, num_particles: int) -> torch.Tensor:
        """log w of shape [K, B] (module docstring)."""
        loc, raw_scale = self.head(self.features(x)).chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        eps = torch.empty(num_particles, *loc.shape, dtype=x.dtype, device=x.device).normal_()
        z = loc + eps * scale
        log_prior = (-(z ** 2) / 2 - LOG_SQRT_2PI).sum(-1)
        logits = self.decoder(z)
        if self.plain_torch:
            log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        else:
            log_lik = -F.softplus(logits).addcmul_(x, logits, value=-1).sum(-1)
        log_q = (-((z - loc) ** 2) / (2 * scale ** 2) - scale.log() - LOG_SQRT_2PI).sum(-1)
        return log_prior + log_lik - log_q

    def loss(self, x: torch.Tensor, num_particles: int = 1, num_data: int | None = None,
             bound: str = "elbo") -> torch.Tensor:
        log_w = self.log_weights(x, num_particles)
        if bound == "elbo":
            per_datapoint = log_w.mean(0)
        elif bound == "iwae":
            per_datapoint = torch.logsumexp(log_w, dim=0) - math.log(num_particles)
        else:
            raise ValueError(f"bound must be 'elbo' or 'iwae', got {bound!r}")
        scale = (num_data or x.shape[0]) / x.shape[0]
        return -scale * per_datapoint.sum()
