"""InfoVAE (Eq. 6): special cases against direct computations, the MMD term, minibatch scaling, errors."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import InfoVAE_ELBO, log_importance_weights
from pyro_air.infer.infovae import latent_log_ratio, observed_log_likelihood
from pyro_air.infer.mmd import mmd
from tests.conftest import binary_batch

N_TOTAL = 160


@pytest.fixture
def shifted_guide(linear_gaussian):
    return ExactPosteriorGuide(linear_gaussian[0], scale_factor=0.7, loc_shift=0.4)


def direct_parts(model, guide, x, seed, num_particles):
    """z from the guide under ``seed``; log p(x|z), log p(z), log q(z|x) computed by hand, each [K, B]."""
    pyro.set_rng_seed(seed)
    weights = log_importance_weights(model, guide, x, num_particles=num_particles)
    z = weights.guide_trace.nodes["z"]["value"].expand(num_particles, len(x), model.z_dim)
    log_lik = model.likelihood(z).log_prob(x)
    log_prior = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_q = guide.posterior(x).log_prob(z)
    return z, log_lik, log_prior, log_q


@pytest.mark.parametrize("num_particles", [1, 3])
def test_alpha_0_lambda_1_is_exactly_the_elbo(linear_gaussian, shifted_guide, num_particles):
    model, x = linear_gaussian
    elbo, info = infer.build("elbo", num_particles=num_particles), InfoVAE_ELBO(0.0, 1.0, num_particles=num_particles)
    for seed in (0, 1):
        pyro.set_rng_seed(seed)
        a = elbo.loss(model, shifted_guide, x, num_data=N_TOTAL)
        pyro.set_rng_seed(seed)
        assert info.loss(model, shifted_guide, x, num_data=N_TOTAL) == a
    pyro.set_rng_seed(2)
    a = elbo.differentiable_loss(model, shifted_guide, x, num_data=N_TOTAL)
    ga = torch.autograd.grad(a, model.weight)[0]
    pyro.set_rng_seed(2)
    b = info.differentiable_loss(model, shifted_guide, x, num_data=N_TOTAL)
    gb = torch.autograd.grad(b, model.weight)[0]
    assert torch.equal(a, b) and torch.equal(ga, gb)


def test_the_two_parts_of_the_log_weight_are_the_hand_computed_ones(linear_gaussian, shifted_guide):
    model, x = linear_gaussian
    _, log_lik, log_prior, log_q = direct_parts(model, shifted_guide, x, seed=3, num_particles=4)
    pyro.set_rng_seed(3)
    weights = log_importance_weights(model, shifted_guide, x, num_particles=4)
    assert torch.allclose(observed_log_likelihood(weights), log_lik, atol=1e-4)
    assert torch.allclose(latent_log_ratio(weights), log_prior - log_q, atol=1e-4)
    assert torch.allclose(observed_log_likelihood(weights) + latent_log_ratio(weights), weights.log_w, atol=1e-4)


@pytest.mark.parametrize("lam", [0.25, 4.0])
def test_kl_divergence_with_alpha_1_minus_lambda_is_the_beta_vae(linear_gaussian, shifted_guide, lam):
    model, x = linear_gaussian
    objective = InfoVAE_ELBO(alpha=1.0 - lam, lam=lam, divergence="kl", num_particles=3)
    assert objective.divergence_weight == 0.0
    _, log_lik, log_prior, log_q = direct_parts(model, shifted_guide, x, seed=5, num_particles=3)
    beta_vae = (log_lik + lam * (log_prior - log_q)).mean(0)             # E log p(x|z) - beta KL, beta = lam
    expected = -(N_TOTAL / len(x)) * beta_vae.sum().item()
    pyro.set_rng_seed(5)
    assert objective.loss(model, shifted_guide, x, num_data=N_TOTAL) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kernel,unbiased", [("rbf", False), ("imq", True)])
def test_mmd_term_is_num_data_times_weight_times_the_minibatch_mmd(linear_gaussian, shifted_guide, kernel, unbiased):
    model, x = linear_gaussian
    alpha, lam, k = 0.5, 30.0, 2
    objective = InfoVAE_ELBO(alpha, lam, kernel=kernel, unbiased=unbiased, num_particles=k)
    z, log_lik, log_prior, log_q = direct_parts(model, shifted_guide, x, seed=9, num_particles=k)
    prior_draws = torch.randn(k, len(x), model.z_dim)                    # the next draws after the guide's
    terms = (log_lik + (1 - alpha) * (log_prior - log_q)).mean(0)
    divergence = mmd(z, prior_draws, kernel, unbiased=unbiased).mean()  # per particle, across the data plate
    expected = -(N_TOTAL / len(x)) * terms.sum() + N_TOTAL * (alpha + lam - 1) * divergence
    pyro.set_rng_seed(9)
    assert objective.loss(model, shifted_guide, x, num_data=N_TOTAL) == pytest.approx(expected.item(), rel=1e-5)


def test_kl_divergence_term_is_the_minibatch_aggregate_kl(linear_gaussian, shifted_guide):
    model, x = linear_gaussian
    objective = InfoVAE_ELBO(alpha=0.0, lam=3.0, divergence="kl")
    z, log_lik, log_prior, log_q = direct_parts(model, shifted_guide, x, seed=4, num_particles=1)
    q = shifted_guide.posterior(x)
    log_q_agg = torch.stack([torch.logsumexp(q.log_prob(z[0, b]), 0) - math.log(len(x)) for b in range(len(x))])
    aggregate_kl = (log_q_agg - log_prior[0]).mean()
    expected = -(N_TOTAL / len(x)) * (log_lik + log_prior - log_q).sum() + N_TOTAL * 2.0 * aggregate_kl
    pyro.set_rng_seed(4)
    assert objective.loss(model, shifted_guide, x, num_data=N_TOTAL) == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("divergence", ["mmd", "kl"])
def test_minibatch_loss_is_num_data_over_batch_times_the_batch_objective(linear_gaussian, shifted_guide, divergence):
    model, x = linear_gaussian
    objective = InfoVAE_ELBO(alpha=0.3, lam=100.0, divergence=divergence, num_particles=2)
    pyro.set_rng_seed(6)
    batch_only = objective.loss(model, shifted_guide, x)
    pyro.set_rng_seed(6)
    scaled = objective.loss(model, shifted_guide, x, num_data=1600)
    assert scaled == pytest.approx(1600 / len(x) * batch_only, rel=1e-5)


def test_loss_equals_loss_and_grads_under_the_same_seed(linear_gaussian, shifted_guide):
    model, x = linear_gaussian
    objective = infer.build("infovae", lam=50.0, kernel="imq")
    pyro.set_rng_seed(8)
    a = objective.loss(model, shifted_guide, x, num_data=64)
    pyro.set_rng_seed(8)
    b = objective.loss_and_grads(model, shifted_guide, x, num_data=64)
    assert a == pytest.approx(b, rel=1e-6)
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("cfg", [{}, {"kernel": "imq", "unbiased": True}, {"divergence": "kl", "alpha": 1.0, "lam": 1.0},
                                 {"alpha": 1.0, "lam": 1.0}, {"num_particles": 3, "bandwidth": 2.0}])
def test_trains_a_bernoulli_vae_with_the_gaussian_guide_under_pyro_svi(cfg):
    model = models.build("bernoulli-vae", z_dim=3, hidden=[16])
    guide = guides.build("gaussian", z_dim=3, hidden=[16])
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), infer.build("infovae", **cfg))
    x = binary_batch(n=8)
    losses = [svi.step(x, num_data=80) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert all(p.grad is not None for p in guide.parameters())


def test_the_gaussian_mlp_vae_is_registered_and_scores_real_data():
    model = models.build("gaussian-mlp-vae", x_dim=1, z_dim=1, hidden=[8, 8, 8])
    guide = guides.build("gaussian", x_dim=1, z_dim=1, hidden=[8, 8, 8])
    x = torch.tensor([[-1.0], [1.0], [0.5]])
    weights = log_importance_weights(model, guide, x, num_particles=2)
    z = weights.guide_trace.nodes["z"]["value"]
    loc, scale = model.loc_scale(z)
    assert torch.allclose(observed_log_likelihood(weights), dist.Normal(loc, scale).log_prob(x).sum(-1), atol=1e-5)
    assert len(model.hidden) == 3


@pytest.mark.parametrize("cfg,match", [
    ({"lam": 0.0}, "lam"), ({"lam": -1.0}, "lam"), ({"divergence": "js"}, "unknown divergence 'js'"),
    ({"kernel": "laplace"}, "unknown kernel 'laplace'"), ({"bandwidth": -1.0}, "bandwidth"),
    ({"alpha": float("nan")}, "alpha"), ({"num_particles": 0}, "num_particles"),
])
def test_bad_hyperparameters_are_clear_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        InfoVAE_ELBO(**cfg)


def test_unbiased_mmd_with_a_batch_of_one_is_a_clear_error(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="at least 2 datapoints.*batch_size >= 2"):
        InfoVAE_ELBO(unbiased=True).loss(model, exact_guide, x[:1], num_data=10)
    assert math.isfinite(InfoVAE_ELBO(unbiased=False).loss(model, exact_guide, x[:1], num_data=10))


def test_registered_as_infovae():
    objective = infer.build("infovae", alpha=1.0, lam=1.0)
    assert isinstance(objective, InfoVAE_ELBO) and objective.divergence_weight == 1.0
