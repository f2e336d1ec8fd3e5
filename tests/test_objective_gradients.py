"""Gradient estimators: DReG / STL against the standard one, model gradients, CUBO's guide-only loss.

The guide here is a parameterized linear-Gaussian encoder q(z | x) = N(A x + c, L L^T); at
A = Sigma W^T / s^2, c = -A b, L = chol(Sigma) it equals the exact posterior of the model.
For many independent gradient draws in one call, the guide holds R copies of (A, c, L) and the
batch is x repeated R times: copy r only sees the r-th repeat, so its gradient is the r-th draw.
"""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_air import infer
from pyro_air.guides import AmortizedGuide
from pyro_air.infer import CUBO, IWAE_ELBO

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


def test_guide_equals_exact_posterior_at_init(linear_gaussian):
    model, x = linear_gaussian
    q, p = LinearGaussianGuide(model).posterior(x), model.exact_posterior(x)
    assert torch.allclose(q.loc, p.loc, atol=1e-5) and torch.allclose(q.covariance_matrix, p.covariance_matrix,
                                                                      atol=1e-5)


@pytest.mark.parametrize("estimator,k", [("dreg", 5), ("stl", 1)])
def test_path_estimators_are_unbiased_with_lower_variance(linear_gaussian, estimator, k):
    """Same mean as the standard estimator (paired draws: same seeds, same z), lower total variance.

    STL is unbiased for K = 1 only (for K > 1 it is biased, Tucker et al. 2018), so it is tested there.
    """
    model, x = linear_gaussian
    cfg = {"loc_shift": 0.3, "scale_factor": 1.2}
    standard = draws(IWAE_ELBO(k, "standard"), model, x, **cfg)
    path = draws(IWAE_ELBO(k, estimator), model, x, **cfg)
    diff = path - standard
    z = diff.mean(0) / (diff.std(0) / math.sqrt(NUM_DRAWS))
    assert z.abs().max() < 4.5, z
    # the test has power: the mean gradient itself is many standard errors from zero
    assert (standard.mean(0).abs() / (standard.std(0) / math.sqrt(NUM_DRAWS))).max() > 10
    ratio = (path.var(0).sum() / standard.var(0).sum()).item()
    print(f"{estimator} K={k}: total guide-gradient variance / standard = {ratio:.3f}")
    assert ratio < 0.8


@pytest.mark.parametrize("estimator", ["dreg", "stl"])
def test_model_gradient_is_the_standard_one(linear_gaussian, estimator):
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model, loc_shift=0.3, scale_factor=1.2)
    for seed in range(3):
        _, model_standard = grads(IWAE_ELBO(4, "standard"), model, guide, x, seed)
        _, model_path = grads(IWAE_ELBO(4, estimator), model, guide, x, seed)
        assert torch.allclose(model_path, model_standard, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_path_gradients_vanish_at_the_exact_posterior(linear_gaussian, estimator):
    """log w = log p(x) for every z, so the path term is zero; the standard one keeps the score noise."""
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model)
    standard, _ = grads(IWAE_ELBO(3, "standard"), model, guide, x, seed=0)
    path, _ = grads(IWAE_ELBO(3, estimator), model, guide, x, seed=0)
    assert standard.abs().max() > 0.1
    assert path.abs().max() < 1e-3


def test_cubo_trains_the_guide_only_with_the_leave_one_out_standard_estimator(linear_gaussian):
    model, x = linear_gaussian
    guide = LinearGaussianGuide(model, loc_shift=0.3, scale_factor=1.2)
    guide_grad, model_grad = grads(CUBO(n=2, num_particles=6, estimator="standard"), model, guide, x, seed=4)
    assert torch.equal(model_grad, torch.zeros_like(model_grad))
    # guide gradient = sum_b (1/K) sum_k a_kb d log w_kb, a_kb = w_kb^2 / mean_{j != k} w_jb^2 (cubo.py Eq. 2)
    for p in guide.parameters():
        p.grad = None
    pyro.set_rng_seed(4)
    log_w = infer.log_importance_weights(model, guide, x, num_particles=6).log_w
    a = (2 * log_w.detach()).exp()
    loo_mean = (a.sum(0, keepdim=True) - a) / 5
    ((a / loo_mean) * log_w).mean(0).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in guide.parameters()])
    assert torch.allclose(guide_grad, expected, rtol=1e-3, atol=1e-4)
    assert guide_grad.abs().max() > 0.1
