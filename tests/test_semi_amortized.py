"""The semi-amortized guide (SA-VAE, Kim et al. 2018): refinement of the encoder's q by SVI steps."""
import pyro
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.guides import GaussianEncoder, SemiAmortized
from tests.conftest import binary_batch


def _kl_to_exact_posterior(model, q, x):
    """KL(q(z | x_b) || p(z | x_b)) per datapoint for the linear-Gaussian model (closed form)."""
    post = model.exact_posterior(x)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    q_full = torch.distributions.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    return torch.distributions.kl_divergence(q_full, post)


def test_zero_steps_is_exactly_the_encoder():
    """Neutral setting: num_steps = 0 gives the wrapped encoder's objective bit for bit."""
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    encoder = GaussianEncoder(784, 3, hidden=[16])
    guide = SemiAmortized(encoder, num_steps=0)
    x = binary_batch(n=8)
    for name in ("elbo", "iwae"):
        pyro.set_rng_seed(3)
        a = infer.build(name, num_particles=3).differentiable_loss(model, encoder, x, num_data=100)
        ga = torch.autograd.grad(a, list(encoder.parameters()))
        pyro.set_rng_seed(3)
        b = infer.build(name, num_particles=3).differentiable_loss(model, guide, x, num_data=100)
        gb = torch.autograd.grad(b, list(encoder.parameters()))
        assert torch.equal(a, b)
        assert all(torch.equal(u, v) for u, v in zip(ga, gb))


@pytest.mark.parametrize("backprop", ["full", "stop"])
def test_refinement_moves_q_towards_the_exact_posterior(linear_gaussian, backprop):
    """On the linear-Gaussian model KL(q || p(z | x)) = log p(x) - ELBO(q) in closed form: after the
    SVI steps it is smaller for every datapoint, i.e. the refined local ELBO is >= the encoder's."""
    model, x = linear_gaussian
    encoder = GaussianEncoder(5, 2, hidden=[8])
    guide = SemiAmortized(encoder, num_steps=20, lr=0.05, backprop=backprop, num_particles=32, model=model)
    with torch.no_grad():
        q0 = encoder.posterior(x)
    pyro.set_rng_seed(0)
    q = guide.posterior(x)
    before = _kl_to_exact_posterior(model, q0, x)
    after = _kl_to_exact_posterior(model, q, x)
    assert (after < before).all()
    assert after.mean() < 0.5 * before.mean()


def test_refined_elbo_is_at_least_the_encoders_on_a_vae_batch():
    """The same statement on a (trained-for-a-while) Bernoulli VAE, by Monte Carlo with 2000 draws."""
    pyro.set_rng_seed(0)
    model = models.build("bernoulli-vae", x_dim=784, z_dim=4, hidden=[32])
    encoder = GaussianEncoder(784, 4, hidden=[32])
    guide = SemiAmortized(encoder, num_steps=10, lr=0.05, num_particles=8, model=model)
    x = binary_batch(n=16, seed=5)
    opt = torch.optim.Adam(list(model.parameters()) + list(encoder.parameters()), lr=1e-2)
    for _ in range(50):  # a few joint steps so the decoder is no longer at its initialization
        opt.zero_grad()
        infer.build("elbo").differentiable_loss(model, encoder, x).backward()
        opt.step()
    pyro.set_rng_seed(1)
    refined = elbo(model, guide, x, num_samples=2000)
    amortized = elbo(model, encoder, x, num_samples=2000)
    assert refined.mean() > amortized.mean() + 0.5
    # per datapoint, up to the Monte Carlo error of two 2000-draw ELBO estimates (s.e. ~0.2 nats here)
    assert (refined >= amortized - 1.0).all()


def test_full_backprop_reaches_the_encoder_through_the_steps():
    """Full: the encoder's gradient includes d lambda_T / d lambda_0 (differs from the stop variant's
    identity Jacobian); both give the model a finite gradient."""
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    x = binary_batch(n=8)
    grads = {}
    for backprop in ("full", "stop"):
        torch.manual_seed(0)
        encoder = GaussianEncoder(784, 3, hidden=[16])
        guide = SemiAmortized(encoder, num_steps=3, lr=0.2, backprop=backprop)
        pyro.set_rng_seed(2)
        loss = infer.build("elbo").differentiable_loss(model, guide, x, num_data=100)
        grads[backprop] = torch.autograd.grad(loss, list(encoder.parameters()) + list(model.parameters()))
    assert all(torch.isfinite(g).all() for gs in grads.values() for g in gs)
    assert not torch.allclose(grads["full"][0], grads["stop"][0])


def test_evaluation_states_which_posterior_and_binds_through_the_objective():
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    guide = guides.build("semi-amortized", x_dim=784, z_dim=3, hidden=[16], num_steps=2)
    assert guide.evaluation_posterior.startswith("refined")
    x = binary_batch(n=4)
    with pytest.raises(RuntimeError, match="bind"):
        guide.posterior(x)
    lp = log_likelihood(model, guide, x, num_samples=10)  # the primitive binds the model
    assert torch.isfinite(lp).all() and guide.bound_model is model
    assert "bound_model" not in dict(guide.named_modules()) and not any("decoder" in k for k in guide.state_dict())
    off = SemiAmortized(GaussianEncoder(784, 3, hidden=[16]), num_steps=2, refine_in_eval=False)
    assert off.evaluation_posterior.startswith("encoder")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"num_steps": -1}, ValueError, "num_steps"), ({"lr": 0.0}, ValueError, "lr"),
    ({"backprop": "half"}, ValueError, "backprop"), ({"num_particles": 0}, ValueError, "num_particles"),
    ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm"),
])
def test_bad_hyper_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        SemiAmortized(GaussianEncoder(784, 3, hidden=[4]), **kwargs)


def test_mismatched_model_is_refused():
    guide = SemiAmortized(GaussianEncoder(784, 3, hidden=[4]))
    with pytest.raises(ValueError, match="does not fit"):
        guide.bind(models.build("bernoulli-vae", x_dim=784, z_dim=5, hidden=[4]))
