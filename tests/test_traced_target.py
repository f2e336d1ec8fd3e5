"""pyro_air.evaluate.traced_target: AIS, reverse AIS, BDMC and the gap decomposition on plain Pyro
functions, checked against closed forms (a linear-Gaussian model with sites of its own names, and a
Gamma-Poisson model whose latent lives on (0, inf) and is moved in log space)."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air import evaluate
from pyro_air.evaluate.ais import AnnealingTarget
from pyro_air.evaluate.traced_target import TracedAnnealingTarget
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.models.linear_gaussian import LinearGaussianModel
from tests import outside_models as om


@pytest.fixture
def renamed_linear_gaussian():
    """The project's linear-Gaussian model as plain functions: sites "code" / "pixels", plate "rows";
    the guide is its exact posterior shifted by 0.3 and widened by 1.5."""
    lg = LinearGaussianModel(x_dim=4, z_dim=2, noise_scale=0.5, seed=3)
    w, b, s = lg.weight.detach(), lg.bias.detach(), lg.noise_scale.detach()

    def model(x):
        with pyro.plate("rows", x.shape[0]):
            code = pyro.sample("code", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("pixels", dist.Normal(code @ w.T + b, s).to_event(1), obs=x)

    def guide(x):
        post = lg.exact_posterior(x)
        with pyro.plate("rows", x.shape[0]):
            pyro.sample("code", dist.MultivariateNormal(post.loc + 0.3, scale_tril=1.5 * post.scale_tril))

    torch.manual_seed(0)
    x = lg.marginal().sample((6,)).detach()
    return model, guide, x, lg.marginal().log_prob(x)


A, B = 3.0, 2.0


def gamma_poisson():
    def model(x):
        with pyro.plate("items", x.shape[0]):
            rate = pyro.sample("rate", dist.Gamma(A, B))
            pyro.sample("count", dist.Poisson(rate), obs=x)

    def guide(x):   # the exact posterior Gamma(A + x, B + 1), with the rate parameter off by 0.5
        with pyro.plate("items", x.shape[0]):
            pyro.sample("rate", dist.Gamma(A + x, B + 1.5))

    x = torch.tensor([0.0, 1.0, 3.0, 7.0])
    exact = (torch.lgamma(x + A) - math.lgamma(A) - torch.lgamma(x + 1) + A * math.log(B / (B + 1))
             - x * math.log(B + 1))   # the negative binomial marginal
    return model, guide, x, exact


def test_the_traced_target_gives_the_project_targets_densities():
    """On the project's own linear-Gaussian model, read through its traces, log q0 and l equal the
    direct target's (prior start: log p(z), log p(x | z); guide start: log q(z | x), log p(x, z) - log q)."""
    lg = LinearGaussianModel(x_dim=4, z_dim=2, noise_scale=0.5, seed=3)
    x = lg.marginal().sample((5,)).detach()
    for initial in ("prior", ExactPosteriorGuide(lg)):
        traced = TracedAnnealingTarget(lg, initial, (x,))
        u = traced.sample(3)
        own = AnnealingTarget(lg, initial, x)
        for mine, theirs in zip(traced.parts(u), own.parts(u)):
            assert torch.allclose(mine, theirs, atol=1e-5)


def test_ais_from_the_exact_posterior_of_renamed_sites_is_exact_at_any_t(renamed_linear_gaussian):
    model, _, x, exact = renamed_linear_gaussian
    lg = LinearGaussianModel(x_dim=4, z_dim=2, noise_scale=0.5, seed=3)

    def exact_guide(x):
        with pyro.plate("rows", x.shape[0]):
            pyro.sample("code", lg.exact_posterior(x))

    assert torch.allclose(evaluate.ais(model, exact_guide, x, num_steps=5, num_chains=4, seed=0), exact, atol=1e-4)


@pytest.mark.parametrize("start", ["guide", "prior"])
def test_ais_of_a_plain_function_reaches_the_exact_log_likelihood(renamed_linear_gaussian, start):
    model, guide, x, exact = renamed_linear_gaussian
    est = evaluate.ais(model, guide if start == "guide" else "prior", x, num_steps=300, num_chains=16, seed=0)
    assert (est.mean() - exact.mean()).abs() < 0.1


def test_a_positive_latent_is_moved_in_unconstrained_space_with_its_jacobian():
    model, guide, x, exact = gamma_poisson()
    # 256 chains: over seeds 0-11 the largest error was 0.012 on two CPUs' worth of float rounding
    # (16 chains had a median error of 0.027, so 0.02 passed by the seed's luck on one CPU only)
    est, diag = evaluate.ais(model, guide, x, num_steps=100, num_chains=256, seed=0, return_diagnostics=True)
    assert torch.allclose(est, exact, atol=0.03)
    assert (diag.acceptance > 0.3).all()


def test_bdmc_sandwiches_log_p_x_on_data_simulated_from_a_plain_function(renamed_linear_gaussian):
    model, guide, x, _ = renamed_linear_gaussian
    # 128 chains, not the pilot's 4: the reverse run must not take the pilot's chain count (a bug this
    # caught); over seeds 0-9 the mean bounds were at most 0.03 from the exact mean (4 chains: 0.20)
    result = evaluate.bdmc(model, len(x), num_steps=100, num_chains=128, guide_or_prior=guide, data=x, seed=1)
    lg = LinearGaussianModel(x_dim=4, z_dim=2, noise_scale=0.5, seed=3)
    exact = lg.marginal().log_prob(result.x)
    assert set(result.z) == {"code"} and result.z["code"].shape == (len(x), 2)
    assert (result.lower.mean() - exact.mean()).abs() < 0.05 and (result.upper.mean() - exact.mean()).abs() < 0.05
    assert result.width.mean() < 0.1


def test_gap_decomposition_of_a_plain_function(renamed_linear_gaussian):
    model, guide, x, exact = renamed_linear_gaussian
    gaps = evaluate.gap_decomposition(model, guide, x[:3], ais_steps=60, ais_chains=8, local_steps=300,
                                      local_particles=20, local_lr=0.05, elbo_samples=300, seed=0)
    assert (gaps["log_px"].mean() - exact[:3].mean()).abs() < 0.2
    assert (gaps["amortization_gap"] > 0).all()   # the widened, shifted guide is beaten per datapoint
    assert torch.allclose(gaps["inference_gap"], gaps["approximation_gap"] + gaps["amortization_gap"])


def test_global_and_discrete_latents_are_refused_in_one_line():
    factor = om.factor()
    with pytest.raises(ValueError, match="'mu' lies outside the data plate") as err:
        evaluate.ais(factor.model, factor.guide, factor.data(4)[0], num_steps=2, num_chains=2)
    assert "\n" not in str(err.value)
    mixture = om.mixture()
    with pytest.raises(ValueError, match="site 'c' is discrete") as err:
        evaluate.ais(mixture.model, mixture.guide, mixture.data(4)[0], num_steps=2, num_chains=2)
    assert "\n" not in str(err.value)


def test_a_model_that_observes_slices_cannot_be_simulated_and_says_so():
    case = om.sequential()
    with pytest.raises(ValueError, match="not one of the model's arguments as given"):
        evaluate.bdmc(case.model, 4, num_steps=2, num_chains=2, guide_or_prior=case.guide, data=case.data(4))


@pytest.mark.parametrize("num_chains", [1, 3, 8])
def test_reverse_ais_runs_with_any_number_of_chains_beside_the_pilots(renamed_linear_gaussian, num_chains):
    """The step-size pilot draws its own 4 chains before the reverse run; the reverse run keeps its own."""
    model, guide, x, _ = renamed_linear_gaussian
    result = evaluate.bdmc(model, len(x), num_steps=3, num_chains=num_chains, guide_or_prior=guide, data=x, seed=0)
    assert result.lower.shape == result.upper.shape == (len(x),)
    assert torch.isfinite(result.lower).all() and torch.isfinite(result.upper).all()
