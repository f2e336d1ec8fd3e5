"""The variational Renyi bound (pyro_air/infer/renyi.py; Li & Turner 2016): a power mean of the weights,
non-increasing in alpha, IWAE at alpha = 0, VR-max at -inf, the ELBO as alpha -> 1."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import IWAE_ELBO, RenyiELBO, cubo_bound, iwae_bound, renyi_bound


def poor_guide(model):
    return ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)


def test_the_bound_of_known_weights():
    """w = (1, 4): alpha = -1 gives (1/2) log mean w^2 = (1/2) log 8.5; alpha = 0.5 gives 2 log mean sqrt(w)."""
    log_w = torch.tensor([[0.0], [math.log(4.0)]])
    torch.testing.assert_close(renyi_bound(log_w, -1.0), torch.tensor([0.5 * math.log(8.5)]))
    torch.testing.assert_close(renyi_bound(log_w, 0.5), torch.tensor([2 * math.log(1.5)]))
    torch.testing.assert_close(renyi_bound(log_w, 3.0), torch.tensor([-0.5 * math.log((1 + 1 / 16) / 2)]))


def test_renyi_is_non_increasing_in_alpha_and_has_the_right_limits(linear_gaussian):
    """For every sample, (1/r) log mean w^r is a power mean: non-decreasing in r = 1 - alpha."""
    model, x = linear_gaussian
    torch.manual_seed(2)
    log_w = infer.log_importance_weights(model, poor_guide(model), x, num_particles=50).log_w.detach()
    alphas = [float("-inf"), -10.0, -2.0, -1.0, -0.5, 0.0, 0.3, 0.9, 0.999, 2.0, 5.0]
    values = torch.stack([renyi_bound(log_w, a) for a in alphas])  # [alphas, B]
    assert (values[:-1] >= values[1:] - 1e-5).all()
    assert torch.allclose(renyi_bound(log_w, 0.0), iwae_bound(log_w))  # alpha = 0 is IWAE
    assert torch.equal(renyi_bound(log_w, float("-inf")), log_w.max(0).values)  # VR-max
    assert torch.allclose(renyi_bound(log_w, -1e4), log_w.max(0).values, atol=1e-3)
    assert torch.allclose(renyi_bound(log_w, 0.9999), log_w.mean(0), atol=1e-2)  # alpha -> 1: ELBO
    assert torch.allclose(cubo_bound(log_w, 3.0), renyi_bound(log_w, -2.0))  # CUBO_n = VR at 1 - n


def test_renyi_objective_at_alpha_zero_is_iwae(linear_gaussian):
    model, x = linear_gaussian
    guide = poor_guide(model)
    pyro.set_rng_seed(5)
    a = RenyiELBO(alpha=0.0, num_particles=7).loss(model, guide, x, num_data=100)
    pyro.set_rng_seed(5)
    b = IWAE_ELBO(num_particles=7).loss(model, guide, x, num_data=100)
    assert a == pytest.approx(b, rel=1e-6)


def test_an_exact_guide_makes_every_alpha_exact(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x).sum().item()
    for alpha in (float("-inf"), -3.0, 0.0, 0.5, 4.0):
        assert RenyiELBO(alpha=alpha, num_particles=3).loss(model, exact_guide, x) == pytest.approx(-exact, rel=1e-5)


def _global_scale_model(x):
    s = pyro.sample("s", dist.LogNormal(0.0, 0.5))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, s), obs=x)


def _global_scale_guide(x):
    s = pyro.sample("s", dist.LogNormal(pyro.param("s_loc", torch.tensor(0.1)), 0.3))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(x / (1 + s ** 2), 0.7))


def test_global_latents_are_refused_only_on_the_upper_bound_side():
    x = torch.randn(6, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(RenyiELBO(alpha=0.5, num_particles=3).loss(_global_scale_model, _global_scale_guide, x))
    with pytest.raises(ValueError) as err:
        RenyiELBO(alpha=-1.0, num_particles=3).loss(_global_scale_model, _global_scale_guide, x)
    assert str(err.value) == ("RenyiELBO needs every latent site inside the data plate 'data', but 's' lies outside "
                              "it (alpha < 0 bounds log p(x) from above as K grows); use iwae, renyi (alpha >= 0) or "
                              "elbo with global latents")


@pytest.mark.parametrize("build,message", [
    (lambda: RenyiELBO(alpha=1.0), "alpha = 1 makes the Rényi bound 1/(1 - alpha) log E[w^(1 - alpha)] divide by "
                                   "zero; its limit is the ELBO: use pyro_air.infer.MonteCarloELBO "
                                   "(infer.build('elbo')) instead"),
    (lambda: RenyiELBO(alpha=float("nan")), "alpha must be a real number or float('-inf'), got nan"),
    (lambda: RenyiELBO(alpha=float("inf")), "alpha must be a real number or float('-inf'), got inf"),
    (lambda: RenyiELBO(alpha="half"), "alpha must be a real number or float('-inf'), got 'half'"),
    (lambda: RenyiELBO(alpha=0.5, num_particles=0), "num_particles must be an integer >= 1, got 0"),
])
def test_bad_hyperparameters_are_clear_errors(build, message):
    with pytest.raises(ValueError) as err:
        build()
    assert str(err.value) == message
