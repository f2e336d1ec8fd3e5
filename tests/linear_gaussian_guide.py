"""A parameterized linear-Gaussian encoder for gradient tests (tests/test_iwae.py, tests/test_cubo.py).

q(z | x) = N(A x + c, L L^T); at A = Sigma W^T / s^2, c = -A b, L = chol(Sigma) it equals the exact
posterior of the model. For many independent gradient draws in one call, the guide holds R copies of
(A, c, L) and the batch is x repeated R times: copy r only sees the r-th repeat, so its gradient is the
r-th draw.
"""
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_air.guides import AmortizedGuide

NUM_DRAWS = 300


class LinearGaussianGuide(AmortizedGuide):
    def __init__(self, model, loc_shift=0.0, scale_factor=1.0, copies=1):
        super().__init__(model.x_dim, model.z_dim)
        with torch.no_grad():
            exact = model.exact_posterior(torch.zeros(1, model.x_dim))
            cov = exact.covariance_matrix[0]
            a = cov @ model.weight.T / model.noise_scale ** 2
            rep = lambda t: t.expand(copies, *t.shape).clone()
            self.a = nn.Parameter(rep(a))
            self.c = nn.Parameter(rep(-(a @ model.bias) + loc_shift))
            self.raw_tril = nn.Parameter(rep(torch.linalg.cholesky(cov) * scale_factor))
        self.copies = copies

    def posterior(self, x):
        r = self.copies
        xr = x.reshape(r, len(x) // r, -1)
        loc = torch.einsum("rzd,rbd->rbz", self.a, xr) + self.c[:, None]
        tril = torch.tril(self.raw_tril, -1) + torch.diag_embed(self.raw_tril.diagonal(dim1=-2, dim2=-1).abs())
        tril = tril[:, None].expand(-1, xr.shape[1], -1, -1)
        return dist.MultivariateNormal(loc.reshape(len(x), -1), scale_tril=tril.reshape(len(x), *tril.shape[2:]))


def grads(objective, model, guide, x, seed):
    """(guide gradient, model gradient) of one loss_and_grads call, flattened."""
    for p in [*model.parameters(), *guide.parameters()]:
        p.grad = None
    pyro.set_rng_seed(seed)
    objective.loss_and_grads(model, guide, x)
    flat = lambda m: torch.cat([p.grad.flatten() for p in m.parameters()])
    return flat(guide), flat(model)


def draws(objective, model, x, seed=0, **guide_cfg):
    """[NUM_DRAWS, P] independent guide-gradient draws (one per copy), in one vectorized call."""
    guide = LinearGaussianGuide(model, copies=NUM_DRAWS, **guide_cfg)
    for p in [*model.parameters(), *guide.parameters()]:
        p.grad = None
    pyro.set_rng_seed(seed)
    objective.loss_and_grads(model, guide, x.repeat(NUM_DRAWS, 1))
    g = torch.cat([p.grad.reshape(NUM_DRAWS, -1) for p in guide.parameters()], dim=1)
    return g[:, g.abs().sum(0) > 0]  # drop L's upper triangle (never used, always zero)
