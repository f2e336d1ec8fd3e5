"""The linear-Gaussian CUBO setup of issue 15, shared by tests/test_cubo.py and
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

from pyro_air.core.plates import data_plate
from pyro_air.models import LinearGaussianModel

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


def gaussian_log_moment(n: float, cov_p: torch.Tensor, delta: torch.Tensor, cov_q: torch.Tensor) -> torch.Tensor:
    """log integral N(z; 0, cov_p)^n N(z; delta, cov_q)^(1 - n) dz, the general Gaussian form of
    log E_q[(p/q)^n]: with A = n cov_p^-1 + (1 - n) cov_q^-1 and b = (1 - n) cov_q^-1 delta,

        - (n/2) log|cov_p| - ((1 - n)/2) log|cov_q| - (1/2) log|A| + (1/2) b^T A^-1 b
        - ((1 - n)/2) delta^T cov_q^-1 delta            (+inf unless A is positive definite)."""
    prec_q = torch.linalg.inv(cov_q)
    a = n * torch.linalg.inv(cov_p) + (1 - n) * prec_q
    if not bool((torch.linalg.eigvalsh(a) > 0).all()):
        return torch.tensor(math.inf)
    b = (1 - n) * prec_q @ delta
    return (-(n / 2) * torch.logdet(cov_p) - ((1 - n) / 2) * torch.logdet(cov_q) - 0.5 * torch.logdet(a)
            + 0.5 * b @ torch.linalg.solve(a, b) - ((1 - n) / 2) * delta @ prec_q @ delta)


def correlated_model(noise_scale: float = 1.0) -> LinearGaussianModel:
    """A linear-Gaussian model whose posterior has correlation -0.8 (nearly collinear columns)."""
    weight = torch.tensor([[1.0, 1.0], [1.0, 1.2], [1.0, 0.8], [0.5, 0.6], [1.0, 0.9]])
    return LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=noise_scale, weight=weight, bias=torch.zeros(5))


class DiagonalGuide(PyroModule):
    """Mean-field q(z | x) = N(mu(x), diag(sd^2)) with the exact posterior mean: it cannot represent
    the posterior's correlation, so the chi^2-optimal sd differs from the posterior's marginals."""

    def __init__(self, model: LinearGaussianModel, sd: torch.Tensor):
        super().__init__(name="guide")
        self._model = [model]
        self.log_sd = nn.Parameter(torch.as_tensor(sd, dtype=torch.float32).log().clone())

    def forward(self, x, num_data=None):
        with torch.no_grad():
            loc = self._model[0].exact_posterior(x).loc
        with data_plate(x, num_data):
            return pyro.sample("z", dist.Normal(loc, self.log_sd.exp()).to_event(1))


def chi2_optimal_diagonal_variance(model: LinearGaussianModel, steps: int = 3000) -> torch.Tensor:
    """argmin over diagonal S of log E_q[(p/q)^2] (q = N(mu, S), p = N(mu, Sigma)), by Adam on the closed form."""
    cov = model.exact_posterior(torch.zeros(1, model.x_dim)).covariance_matrix[0].detach()
    log_var = cov.diagonal().log().clone().requires_grad_()
    opt = torch.optim.Adam([log_var], lr=0.01)
    zero = torch.zeros(model.z_dim)
    for _ in range(steps):
        loss = gaussian_log_moment(2.0, cov, zero, torch.diag(log_var.exp()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return log_var.detach().exp()
