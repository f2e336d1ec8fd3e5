"""The linear-Gaussian CUBO setup of issue 15, shared by tests/test_cubo_training.py and
experiments/objectives/cubo_training.py.

Model: ``LinearGaussianModel`` with exact posterior p(z | x) = N(mu(x), Sigma) (Sigma is the same
for every x). Guide: q(z | x) = N(mu(x) + delta, c^2 Sigma) with parameters delta (shared by all
datapoints) and log c.

Closed form. Whitening z = mu + L u (Sigma = L L^T, delta = L d) turns p^n q^(1-n) into a product
of one-dimensional Gaussian integrals; with D = z_dim, r = delta^T Sigma^-1 delta,

    CUBO_n(x) = log p(x) + (D / n) [ (n - 1) log c - (1/2) log(n - (n - 1) / c^2) ]
                         + (n - 1) r / (2 (n c^2 - n + 1))

finite iff c^2 > (n - 1) / n (c > 1/sqrt(2) at n = 2; +inf otherwise). At n = 2, delta = 0 the
c-term is (D/2)[log c - (1/2) log(2 - 1/c^2)]; it is 0 at c = 1 and > 0 elsewhere, so within this
family the optimum is the exact posterior (delta = 0, c = 1), CUBO_n = log p(x). Checks:
n = 2, c = 1 gives E_q[(p/q)^2] = exp(r), the chi^2 divergence of two unit Gaussians plus one.
"""
from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_air.models import LinearGaussianModel
from pyro_air.plates import data_plate

DELTA_0 = (0.4, -0.3)
C_0 = 1.3


def make_model_and_data(num_data: int = 16, seed: int = 1):
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, seed=seed)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        x = model.marginal().sample((num_data,))
    return model, x


class ScaledPosteriorGuide(PyroModule):
    """q(z | x) = N(mu(x) + delta, c^2 Sigma): the exact posterior, shifted and scaled."""

    def __init__(self, model: LinearGaussianModel, delta=DELTA_0, c: float = C_0):
        super().__init__(name="guide")
        self._model = [model]  # not a submodule: the model's parameters are not the guide's
        self.delta = nn.Parameter(torch.tensor(delta, dtype=torch.float32))
        self.log_c = nn.Parameter(torch.tensor(math.log(c), dtype=torch.float32))

    @property
    def c(self) -> float:
        return self.log_c.exp().item()

    def forward(self, x, num_data=None):
        with torch.no_grad():
            exact = self._model[0].exact_posterior(x)
        with data_plate(x, num_data):
            q = dist.MultivariateNormal(exact.loc + self.delta, scale_tril=exact.scale_tril * self.log_c.exp())
            return pyro.sample("z", q)


def closed_form_cubo(model: LinearGaussianModel, x: torch.Tensor, delta: torch.Tensor, log_c: torch.Tensor,
                     n: float = 2.0) -> torch.Tensor:
    """CUBO_n(x_b) per datapoint (module docstring), differentiable in delta and log_c."""
    with torch.no_grad():
        post = model.exact_posterior(x[:1])
        precision = torch.linalg.inv(post.covariance_matrix[0])
        log_px = model.exact_log_likelihood(x)
    c2 = torch.exp(2 * log_c)
    if not c2 > (n - 1) / n:
        return torch.full_like(log_px, math.inf)
    r = delta @ precision @ delta
    dim = delta.shape[0]
    spread = (dim / n) * ((n - 1) * log_c - 0.5 * torch.log(n - (n - 1) / c2))
    shift = (n - 1) * r / (2 * (n * c2 - n + 1))
    return log_px + spread + shift


def optimum_cubo(model: LinearGaussianModel, x: torch.Tensor) -> torch.Tensor:
    """The family's optimum of sum_b CUBO_n(x_b): sum_b log p(x_b) (at delta = 0, c = 1)."""
    return model.exact_log_likelihood(x).sum()
