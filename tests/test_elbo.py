"""The ELBO (pyro_air/infer/elbo.py): stock Pyro's Trace_ELBO on the same draws - the loss and every gradient,
with global latents and discrete ones - and the closed form log p(x) - KL(q || p(z|x))."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch.distributions import kl_divergence

from pyro_air import guides, infer, models
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import MonteCarloELBO
from tests.conftest import binary_batch


def _stock(num_particles):
    return Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)


def _loss_and_grads(objective, model, guide, params, *args, **kwargs):
    for p in params:
        p.grad = None
    pyro.set_rng_seed(7)
    loss = objective.loss_and_grads(model, guide, *args, **kwargs)
    return loss, [p.grad.clone() for p in params]


@pytest.mark.parametrize("num_data", [None, 500])
def test_the_projects_vae_gets_trace_elbos_loss_and_gradients(num_data):
    model = models.build("bernoulli-vae", x_dim=20, z_dim=3, hidden=(8,))
    guide = guides.build("gaussian", x_dim=20, z_dim=3, hidden=(8,))
    x = binary_batch(10, 20)
    params = [*model.parameters(), *guide.parameters()]
    ours, our_grads = _loss_and_grads(MonteCarloELBO(num_particles=4), model, guide, params, x, num_data=num_data)
    stock, stock_grads = _loss_and_grads(_stock(4), model, guide, params, x, num_data=num_data)
    assert ours == pytest.approx(stock, rel=1e-6)
    for a, b in zip(our_grads, stock_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _global_model(x):
    s = pyro.sample("s", dist.LogNormal(0.0, 0.5))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, s), obs=x)


def _global_guide(x):
    loc = pyro.param("s_loc", torch.tensor(0.1))
    s = pyro.sample("s", dist.LogNormal(loc, 0.3))
    shrink = pyro.param("shrink", torch.tensor(0.5))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(shrink * x / (1 + s ** 2), 0.7))


def _discrete_model(x):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Bernoulli(0.3))
        pyro.sample("x", dist.Normal(2 * z - 1, 1.0), obs=x)


def _discrete_guide(x):
    weight = pyro.param("weight", torch.tensor(0.8))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Bernoulli(logits=weight * x))


@pytest.mark.parametrize("model,guide,params", [
    (_global_model, _global_guide, ("s_loc", "shrink")),   # a global latent: drawn per particle, as Pyro does
    (_discrete_model, _discrete_guide, ("weight",)),       # no rsample: Trace_ELBO's score-function surrogate
])
def test_global_and_discrete_latents_get_trace_elbos_loss_and_gradients(model, guide, params):
    x = torch.randn(8, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(0)
    pyro.infer.Trace_ELBO().loss(model, guide, x)  # creates the parameters
    tensors = [pyro.param(name).unconstrained() for name in params]
    ours, our_grads = _loss_and_grads(MonteCarloELBO(num_particles=5), model, guide, tensors, x)
    stock, stock_grads = _loss_and_grads(_stock(5), model, guide, tensors, x)
    assert ours == pytest.approx(stock, rel=1e-6)
    for a, b in zip(our_grads, stock_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(g.abs() > 0 for g in our_grads)


def test_the_expected_bound_is_log_px_minus_the_kl_to_the_posterior(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=1.4, loc_shift=-0.3)
    with torch.no_grad():
        expected = (model.exact_log_likelihood(x) - kl_divergence(guide.posterior(x), model.exact_posterior(x))).sum()
    elbo = MonteCarloELBO(num_particles=1)
    torch.manual_seed(0)
    with torch.no_grad():
        values = [-elbo.loss(model, guide, x) for _ in range(400)]
    mean, se = sum(values) / 400, torch.tensor(values).std().item() / math.sqrt(400)
    assert abs(mean - expected.item()) < 4 * se


def test_the_bound_is_the_mean_of_the_log_weights():
    log_w = torch.tensor([[0.0, 2.0], [-4.0, 1.0]])
    assert torch.equal(MonteCarloELBO().per_datapoint_bound(log_w), torch.tensor([-2.0, 1.5]))
    assert infer.build("elbo", num_particles=3).num_particles == 3
