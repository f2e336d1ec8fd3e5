"""The denoising wrapper (pyro_air/guides/denoising.py; AIR paper Eq. 13, 16 and 23): exactly the plain
encoder without noise, the closed form of the bound on the linear-Gaussian model, one eps per datapoint."""
import math

import pyro
import pytest
import torch
from torch import nn

from pyro_air import guides, infer, models
from pyro_air.evaluate import log_likelihood
from pyro_air.guides import (
    Denoising,
    ExactPosteriorGuide,
    GaussianEncoder,
    WeightNormEncoder,
)
from pyro_air.infer import log_importance_weights
from tests.conftest import binary_batch


def _tiny_vae():
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    encoder = GaussianEncoder(784, 3, hidden=[16])
    return model, encoder, binary_batch(n=8)


# -- denoising: reduces exactly to the plain encoder -------------------------------------------

@pytest.mark.parametrize("sigma, alpha", [(0.0, 1.0), (0.0, 0.5), (0.7, 0.0)])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_no_noise_gives_exactly_the_plain_encoder_objective(sigma, alpha, objective):
    model, encoder, x = _tiny_vae()
    guide = Denoising(encoder, sigma, alpha)  # wrap first: the plain encoder then runs as its submodule
    obj = infer.build(objective, num_particles=4)
    pyro.set_rng_seed(3)
    plain = obj.differentiable_loss(model, encoder, x, num_data=100)
    plain_grad = torch.autograd.grad(plain, list(encoder.parameters()))
    pyro.set_rng_seed(3)
    wrapped = obj.differentiable_loss(model, guide, x, num_data=100)
    wrapped_grad = torch.autograd.grad(wrapped, list(encoder.parameters()))
    assert torch.equal(plain, wrapped)
    assert all(torch.equal(a, b) for a, b in zip(plain_grad, wrapped_grad))


def test_noise_only_in_training_mode():
    model, encoder, x = _tiny_vae()
    guide = Denoising(encoder, sigma=0.5)
    obj = infer.build("elbo")
    pyro.set_rng_seed(1)
    plain = obj.differentiable_loss(model, encoder, x)
    pyro.set_rng_seed(1)
    noisy = obj.differentiable_loss(model, guide, x)
    assert not torch.equal(plain, noisy)
    guide.eval()
    pyro.set_rng_seed(1)
    assert torch.equal(plain, obj.differentiable_loss(model, guide, x))


# -- denoising on the linear-Gaussian model: closed form of the bound ---------------------------

def _denoising_penalty(model, sigma):
    """E_eps KL(p(z | x + eps) || p(z | x)) = sigma^2 / 2 tr(A^T M A), A = M^-1 W^T / s^2 (same covariance)."""
    s2 = model.noise_scale.detach() ** 2
    W = model.weight.detach()
    M = torch.eye(model.z_dim) + W.T @ W / s2
    A = torch.linalg.solve(M, W.T) / s2
    return 0.5 * sigma ** 2 * torch.trace(A.T @ M @ A).item()


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_denoising_elbo_matches_closed_form_and_lower_bounds_log_px(linear_gaussian, alpha):
    """Encoder optimal for clean inputs (the exact posterior): the clean ELBO is log p(x) exactly, and
    the denoising objective (Eq. 16) is log p(x) - alpha * E_eps KL(q(z|x+eps) || p(z|x)) <= log p(x)."""
    model, x = linear_gaussian
    sigma, n = 0.4, 20000
    guide = Denoising(ExactPosteriorGuide(model), sigma=sigma, alpha=alpha)
    x0 = x[:1].expand(n, -1).contiguous()
    exact = model.exact_log_likelihood(x[:1]).item()
    with torch.no_grad():
        log_w = log_importance_weights(model, guide, x0, num_particles=1).log_w[0]
        clean = log_importance_weights(model, ExactPosteriorGuide(model), x0[:50], num_particles=1).log_w
    assert torch.allclose(clean, torch.full_like(clean, exact), atol=1e-4)  # clean objective = log p(x)
    mean, se = log_w.mean().item(), log_w.std().item() / math.sqrt(n)
    expected = exact - alpha * _denoising_penalty(model, sigma)
    assert expected < exact - 10 * se  # the penalty is resolvable at this sample size
    assert abs(mean - expected) < 4 * se
    assert mean < exact + 3 * se  # a valid lower bound, not above the clean objective beyond MC error


def test_denoising_iwae_bound_is_a_lower_bound_between_elbo_and_log_px(linear_gaussian):
    model, x = linear_gaussian
    n = 4000
    guide = Denoising(ExactPosteriorGuide(model), sigma=0.6)
    x0 = x[:1].expand(n, -1).contiguous()
    exact = model.exact_log_likelihood(x[:1]).item()
    with torch.no_grad():
        iw = infer.iwae_bound(log_importance_weights(model, guide, x0, num_particles=8).log_w)
    mean, se = iw.mean().item(), iw.std().item() / math.sqrt(n)
    assert mean < exact + 3 * se
    assert mean > exact - _denoising_penalty(model, 0.6) - 3 * se  # IWAE-8 is tighter than the ELBO


def test_evaluation_uses_the_clean_encoder(linear_gaussian):
    model, x = linear_gaussian
    guide = Denoising(ExactPosteriorGuide(model), sigma=1.0)
    est = log_likelihood(model, guide, x, num_samples=5)
    assert torch.allclose(est, model.exact_log_likelihood(x).detach(), atol=1e-4)
    assert guide.training  # evaluation restores the mode


# -- denoising: one eps per datapoint, shared by its k importance samples (Eq. 23) ---------------

def test_noise_is_shared_by_all_particles_of_a_datapoint():
    model, encoder, _ = _tiny_vae()
    x = binary_batch(n=300)
    sigma = 0.3
    guide = Denoising(encoder, sigma=sigma)
    seen = []
    encoder.features[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    weights = log_importance_weights(model, guide, x, num_particles=6)
    assert len(seen) == 1 and seen[0].shape == x.shape  # the encoder ran once, on [B, D]: one eps per datapoint
    eps = seen[0] - x
    assert abs(eps.std().item() - sigma) < 0.01
    loc = weights.guide_trace.nodes["z"]["fn"].mean  # [K, B, z]
    assert loc.shape[:2] == (6, 300)
    assert torch.equal(loc, loc[:1].expand_as(loc))  # every particle of datapoint b has the same q(z | x_b + eps_b)


def test_partial_denoising_perturbs_a_bernoulli_alpha_fraction_of_datapoints():
    _, encoder, _ = _tiny_vae()
    x = binary_batch(n=2000)
    guide = Denoising(encoder, sigma=0.3, alpha=0.25)
    pyro.set_rng_seed(0)
    noisy_rows = (guide.encoder_input(x) != x).any(dim=1).float()
    sd = math.sqrt(0.25 * 0.75 / 2000)
    assert abs(noisy_rows.mean().item() - 0.25) < 4 * sd


# -- building by name, and bad hyperparameters ---------------------------------------------------

def test_denoising_builds_by_name_with_a_named_or_nested_encoder():
    g = guides.build("denoising", sigma=0.3, alpha=0.5, encoder="gaussian", x_dim=784, z_dim=50, hidden=[500, 500])
    assert isinstance(g.encoder, GaussianEncoder) and g.encoder.hidden == (500, 500) and g.sigma == 0.3
    g = guides.build("denoising", sigma=0.1, encoder={"name": "weightnorm", "cfg": {"H": 2.0, "hidden": [4]}},
                     x_dim=6, z_dim=2)
    assert isinstance(g.encoder, WeightNormEncoder) and g.encoder.H == 2.0
    assert {n for n, _ in g.named_parameters()} == {f"encoder.{n}" for n, _ in g.encoder.named_parameters()}


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": -0.1}, "sigma"), ({"sigma": float("nan")}, "sigma"), ({"sigma": 0.1, "alpha": 1.5}, "alpha"),
    ({"sigma": 0.1, "alpha": -0.01}, "alpha"),
])
def test_bad_denoising_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Denoising(GaussianEncoder(6, 2, hidden=[4]), **kwargs)
    with pytest.raises(ValueError, match=match):
        guides.build("denoising", x_dim=6, z_dim=2, hidden=[4], **kwargs)


def test_wrapping_an_encoder_that_already_ran_under_pyro_says_to_wrap_first():
    _, encoder, x = _tiny_vae()
    pyro.poutine.trace(encoder).get_trace(x)  # its parameters now have names in the param store
    with pytest.raises(ValueError, match="wrap the encoder before its first use"):
        Denoising(encoder, sigma=0.1)


def test_an_encoder_that_only_ran_outside_pyro_can_still_be_wrapped():
    """The direct path (no Pyro handler active) names no parameter, so nothing needs renaming."""
    model, encoder, x = _tiny_vae()
    infer.build("elbo").loss(model, encoder, x)
    wrapped = Denoising(encoder, sigma=0.1)
    trace = pyro.poutine.trace(pyro.poutine.block(wrapped, hide_types=["sample"])).get_trace(x)
    names = {site["name"] for site in trace.nodes.values() if site["type"] == "param"}
    assert names and all(name.startswith("guide.encoder.") for name in names), names


def test_denoising_needs_an_amortized_guide():
    with pytest.raises(TypeError, match="AmortizedGuide"):
        Denoising(nn.Linear(3, 3), sigma=0.1)


# -- denoising + weight normalization together ----------------------------------------------------

def test_denoising_weightnorm_without_noise_is_the_weightnorm_encoder():
    """Neutral setting: sigma = 0 gives the WNI encoder's objective bit for bit; with noise it differs."""
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    x = binary_batch(n=8)
    torch.manual_seed(2)
    wni = WeightNormEncoder(784, 3, hidden=[16], H=2.0)
    torch.manual_seed(2)
    both = guides.build("denoising-weightnorm", x_dim=784, z_dim=3, hidden=[16], sigma=0.0, H=2.0)
    torch.manual_seed(2)
    noisy = guides.build("denoising-weightnorm", x_dim=784, z_dim=3, hidden=[16], sigma=0.5, H=2.0)
    losses = []
    for guide in (wni, both, noisy):
        pyro.set_rng_seed(4)
        losses.append(infer.build("elbo", num_particles=2).differentiable_loss(model, guide, x))
    assert torch.equal(losses[0], losses[1])
    assert not torch.equal(losses[0], losses[2])
    assert isinstance(both.encoder, WeightNormEncoder) and both.encoder.H == 2.0
