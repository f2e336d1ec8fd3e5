"""The Gaussian-decoder VAE (pyro_air/models/gaussian_mlp_vae.py; InfoVAE Proposition 1): p(x | z) =
N(mu(z), diag sigma(z)^2) with a floor on sigma, on real-valued data."""
import math

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_air import guides, infer, models
from pyro_air.models import GaussianMLPVAE


def test_the_default_is_the_infovae_two_point_decoder():
    model = models.build("gaussian-mlp-vae")
    assert isinstance(model, GaussianMLPVAE) and (model.x_dim, model.z_dim) == (1, 1)
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(1, 200), (200, 200), (200, 200), (200, 2)]


def test_the_likelihood_is_the_decoders_two_halves_with_a_floor_on_the_scale():
    model = GaussianMLPVAE(x_dim=3, z_dim=2, hidden=(8,), min_scale=0.05)
    z = torch.randn(4, 2)
    out = model.decoder(z)
    p = model.likelihood(z)
    assert p.batch_shape == (4,) and p.event_shape == (3,)
    torch.testing.assert_close(p.mean, out[:, :3])
    torch.testing.assert_close(p.stddev, nn.functional.softplus(out[:, 3:]) + 0.05)
    with torch.no_grad():
        model.decoder[-1].bias[3:] = -1e4
    assert torch.equal(model.likelihood(z).stddev, torch.full((4, 3), 0.05))  # the ELBO cannot grow without bound


def test_log_joint_is_the_closed_form_gaussian_density():
    model = GaussianMLPVAE(x_dim=3, z_dim=2, hidden=(8,))
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    z = torch.randn(5, 4, 2, generator=torch.Generator().manual_seed(1))
    loc, scale = model.loc_scale(z)
    log_lik = (-0.5 * ((x - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(model.log_joint(x, z), dist.Normal(0.0, 1.0).log_prob(z).sum(-1) + log_lik)


def test_real_valued_data_is_scored_by_the_objectives():
    """No binary check: negative and large values are accepted (the two-point data set is {-1, 1})."""
    model = GaussianMLPVAE(x_dim=1, z_dim=1, hidden=(8,))
    guide = guides.build("gaussian", x_dim=1, z_dim=1, hidden=(8,))
    x = torch.tensor([[-1.0], [1.0], [-1.0], [1.0]])
    for name in ("elbo", "iwae"):
        loss = infer.build(name, num_particles=3).differentiable_loss(model, guide, x)
        assert torch.isfinite(loss)
    trace = poutine.trace(model).get_trace(torch.tensor([[-250.0], [3.5]]))
    assert torch.equal(trace.nodes["x"]["value"], torch.tensor([[-250.0], [3.5]]))


def test_samples_are_the_decoders_means():
    model = GaussianMLPVAE(x_dim=3, z_dim=2, hidden=(8,))
    torch.manual_seed(0)
    means = model.sample(6)
    torch.manual_seed(0)
    z = torch.randn(6, 2)
    torch.testing.assert_close(means, model.loc_scale(z)[0])


@pytest.mark.parametrize("kwargs,message", [
    ({"min_scale": 0.0}, "min_scale (the decoder's smallest standard deviation) must be > 0, got 0.0"),
    ({"hidden": (4, 0)}, "every entry of hidden must be an integer >= 1, got 0"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        GaussianMLPVAE(**kwargs)
    assert str(err.value) == message
