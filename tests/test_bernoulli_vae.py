"""The Bernoulli VAE (pyro_air/models/bernoulli_vae.py; AIR section 5): p(z) = N(0, I), p(x | z) =
Bernoulli(sigmoid(MLP(z))), and its specialized log_joint, bit for bit the generic one."""
import math

import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_air import models
from pyro_air.core.scoring import generic_scoring
from pyro_air.models import BernoulliVAE
from tests.conftest import binary_batch


def _linear_shapes(model):
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_the_default_is_the_air_papers_decoder():
    model = models.build("bernoulli-vae")
    assert isinstance(model, BernoulliVAE) and (model.x_dim, model.z_dim) == (784, 50)
    assert _linear_shapes(model) == [(50, 500), (500, 500), (500, 784)]


def test_log_joint_is_the_closed_form_normal_prior_plus_bernoulli_likelihood():
    model = BernoulliVAE(x_dim=12, z_dim=3, hidden=(8,))
    x = binary_batch(4, 12)
    z = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0))
    logits = model.decoder(z)
    log_prior = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = log_prior + (x * logits - nn.functional.softplus(logits)).sum(-1)
    torch.testing.assert_close(model.log_joint(x, z), expected)
    torch.testing.assert_close(model.log_joint(x, z), dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
                               + dist.Bernoulli(logits=logits).log_prob(x).sum(-1))


def test_the_specialized_formula_is_the_generic_one_bit_for_bit_with_its_gradients():
    model = BernoulliVAE(x_dim=12, z_dim=3, hidden=(8,))
    x = binary_batch(4, 12)
    z = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    fast = model.log_joint(x, z)
    fast_grads = torch.autograd.grad(fast.sum(), [z, *model.parameters()])
    with generic_scoring():
        generic = model.log_joint(x, z)
    generic_grads = torch.autograd.grad(generic.sum(), [z, *model.parameters()])
    assert torch.equal(fast, generic)
    assert all(torch.equal(a, b) for a, b in zip(fast_grads, generic_grads))


def test_a_subclass_with_another_likelihood_is_scored_by_its_own():
    class Tempered(BernoulliVAE):
        def likelihood(self, z):
            return dist.Bernoulli(logits=0.5 * self.decoder(z)).to_event(1)

    model = Tempered(x_dim=12, z_dim=3, hidden=(8,))
    x, z = binary_batch(4, 12), torch.randn(2, 4, 3)
    log_lik = dist.Bernoulli(logits=0.5 * model.decoder(z)).log_prob(x).sum(-1)
    expected = dist.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_lik
    torch.testing.assert_close(model.log_joint(x, z), expected)


def test_samples_are_pixel_probabilities():
    model = BernoulliVAE(x_dim=12, z_dim=3, hidden=(8,))
    images = model.sample(7)
    assert images.shape == (7, 12) and ((images > 0) & (images < 1)).all()


def test_grey_levels_are_refused_with_the_way_to_binarize():
    model = BernoulliVAE(x_dim=4, z_dim=2, hidden=(3,))
    with pytest.raises(ValueError, match=r"BernoulliVAE has a Bernoulli likelihood and needs binary x in \{0, 1\}, "
                                         r"but x has values in \[0, 0.5\]; binarize first"):
        model.validate(torch.tensor([[0.0, 0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    model.validate(binary_batch(3, 4))
