"""Free bits (pyro_air/infer/free_bits.py; Kingma et al. 2016): the value against its definition,
zero gradient of the KL term below the threshold, the ELBO's gradient above it, and bad input."""
import pytest
import torch

from pyro_air import guides, infer, models
from tests.conftest import binary_batch

Z = 3


def _pair(seed=0):
    torch.manual_seed(seed)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=Z, hidden=[8])
    guide = guides.build("gaussian", x_dim=12, z_dim=Z, hidden=[8])
    return model, guide, binary_batch(n=6, d=12)


def _set_posterior(guide, loc, log_scale):
    """q(z | x) = N(loc, exp(log_scale)^2) per dimension for every x (head weights zeroed)."""
    with torch.no_grad():
        guide.head.weight.zero_()
        raw = torch.log(torch.expm1(torch.as_tensor(log_scale).exp() - 1e-4))   # inverse of softplus + 1e-4
        guide.head.bias.copy_(torch.cat([torch.as_tensor(loc), raw]))


def test_value_is_reconstruction_minus_clamped_kl():
    model, guide, x = _pair()
    _set_posterior(guide, torch.tensor([0.0, 2.0, 0.1]), torch.tensor([0.0, -1.0, -0.05]))
    kl = torch.distributions.kl_divergence(guide.posterior(x).base_dist, torch.distributions.Normal(0.0, 1.0))[0]
    assert kl[0] == 0 and kl[1] > 1 and 0 < kl[2] < 0.5
    objective = infer.build("free-bits", free_bits=0.5, num_particles=4)
    torch.manual_seed(1)
    loss = objective.loss(model, guide, x, num_data=60)
    torch.manual_seed(1)
    weights = objective.log_weights(model, guide, x, num_data=60)
    reconstruction = infer.infovae.observed_log_likelihood(weights).mean(0)
    expected = -10.0 * reconstruction.sum() + 60 * torch.clamp(kl, min=0.5).sum()
    assert loss == pytest.approx(expected.item(), rel=1e-6)


def test_kl_term_below_the_threshold_has_zero_gradient():
    """With every dimension's KL below lambda the loss is -(N/B) sum_b E log p(x|z) + N lambda z_dim:
    the guide's gradient is exactly the reconstruction term's (the KL adds nothing), whereas the
    ELBO's guide gradient differs by the KL's."""
    model, guide, x = _pair()
    _set_posterior(guide, torch.tensor([0.3, -0.2, 0.1]), torch.tensor([-0.1, 0.05, -0.2]))
    objective = infer.build("free-bits", free_bits=1.0)

    def guide_grads(loss_fn):
        guide.zero_grad()
        model.zero_grad()
        torch.manual_seed(5)
        loss_fn().backward()
        return [p.grad.clone() for p in guide.head.parameters()]

    def penalty_only():
        weights = objective.log_weights(model, guide, x)
        assert (objective.group_kl(weights) < 1.0).all()
        return objective.rate_penalty(weights)

    penalty_grads = guide_grads(penalty_only)
    assert all((g == 0).all() for g in penalty_grads)

    def reconstruction_only():
        return -objective.reconstruction(objective.log_weights(model, guide, x)).sum()

    full = guide_grads(lambda: objective.differentiable_loss(model, guide, x))
    recon = guide_grads(reconstruction_only)
    assert all(torch.equal(a, b) for a, b in zip(full, recon))
    elbo = guide_grads(lambda: infer.build("elbo").differentiable_loss(model, guide, x))
    assert not all(torch.allclose(a, b) for a, b in zip(full, elbo))


def test_above_the_threshold_the_kl_gradient_is_the_closed_form_one():
    """With every KL above lambda, d/dphi of the penalty is d/dphi of the minibatch KL itself."""
    model, guide, x = _pair()
    _set_posterior(guide, torch.tensor([2.0, -1.5, 1.0]), torch.tensor([-1.0, -0.8, -1.2]))
    objective = infer.build("free-bits", free_bits=0.1)
    weights = objective.log_weights(model, guide, x)
    penalty = objective.rate_penalty(weights)
    grad = torch.autograd.grad(penalty, guide.head.bias)[0]
    q = guide.posterior(x).base_dist
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).mean(0).sum()
    expected = torch.autograd.grad(kl, guide.head.bias)[0]
    assert penalty.item() == pytest.approx(kl.item(), rel=1e-6)
    assert torch.allclose(grad, expected, atol=1e-6)


def test_one_group_with_the_sample_estimator_works_for_a_hierarchical_guide():
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=12, z_dim=Z, hidden=[8])
    guide = guides.build("hierarchical", x_dim=12, z_dim=Z, num_transitions=1, hidden=[8], transition_hidden=8)
    x = binary_batch(n=6, d=12)
    loss = infer.build("free-bits", free_bits=0.5, per_dimension=False, kl="sample").loss(model, guide, x)
    assert torch.isfinite(torch.tensor(loss))
    with pytest.raises(ValueError, match="per_dimension=False, kl='sample'"):
        infer.build("free-bits", free_bits=0.5).loss(model, guide, x)


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match=r"free_bits .* must be > 0, got -0.1"):
        infer.build("free-bits", free_bits=-0.1)
    with pytest.raises(ValueError, match="unknown KL estimator 'exact'"):
        infer.build("free-bits", kl="exact")
    with pytest.raises(ValueError, match="with per_dimension=False use kl='sample'"):
        infer.build("free-bits", per_dimension=False)
