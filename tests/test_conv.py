"""The convolutional Gaussian encoder and the delta-VAE committed rate (pyro_air/guides/conv.py)."""
import math

import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.support.images import image_shape_for
from tests.conftest import binary_batch


@pytest.mark.parametrize("x_dim,shape", [(784, (28, 28)), (12, (3, 4)), (7, (1, 7)), (1, (1, 1))])
def test_default_image_shape_is_the_most_square(x_dim, shape):
    assert image_shape_for(x_dim) == shape
    guide = guides.build("conv-gaussian", x_dim=x_dim, z_dim=3, channels=[4, 4], hidden=8)
    q = guide.posterior(torch.zeros(5, x_dim))
    assert q.batch_shape == (5,) and q.event_shape == (3,)


def test_direct_posterior_is_the_posterior():
    guide = guides.build("conv-gaussian", x_dim=784, z_dim=4, channels=[4, 8], hidden=16)
    x = binary_batch(n=3)
    torch.manual_seed(1)
    direct = guide.direct_posterior(x)
    z = direct.rsample(2)
    assert torch.allclose(direct.log_prob(z), guide.posterior(x).log_prob(z), atol=1e-6)


@pytest.mark.parametrize("delta", [0.05, 0.5, 2.0])
def test_committed_rate_bounds_the_kl_from_below(delta):
    """sigma_u solves (s - 1 - log s) / 2 = delta, and KL(q(z|x) || N(0, I)) >= delta z_dim for any x,
    even when the encoder pushes q towards the prior (loc 0, raw scale large)."""
    sigma_u = guides.committed_rate_max_scale(delta)
    s = sigma_u ** 2
    assert 0 < sigma_u < 1 and (s - 1 - math.log(s)) / 2 == pytest.approx(delta, rel=1e-9)
    guide = guides.build("conv-gaussian", x_dim=16, z_dim=3, channels=[4], hidden=8, committed_rate=delta)
    with torch.no_grad():
        guide.head.weight.zero_()
        guide.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 50.0, 50.0, 50.0]))   # loc 0, scale at its cap
    prior = torch.distributions.Normal(0.0, 1.0)
    q = guide.posterior(binary_batch(n=4, d=16))
    kl = torch.distributions.kl_divergence(q.base_dist, prior).sum(-1)
    assert torch.all(kl >= 3 * delta * (1 - 1e-4))
    assert kl[0].item() == pytest.approx(3 * delta, rel=1e-3)


def test_works_with_the_mlp_decoder_under_svi():
    model = models.build("bernoulli-vae", x_dim=784, z_dim=4, hidden=[16])
    guide = guides.build("conv-gaussian", x_dim=784, z_dim=4, channels=[4], hidden=16)
    loss = infer.build("iwae", num_particles=3).loss(model, guide, binary_batch(n=4), num_data=100)
    assert math.isfinite(loss)


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match=r"committed_rate .* must be > 0, got -1"):
        guides.build("conv-gaussian", x_dim=16, z_dim=2, committed_rate=-1)
    with pytest.raises(ValueError, match="committed_rate must be at most 10"):
        guides.build("conv-gaussian", x_dim=16, z_dim=2, committed_rate=50.0)
    with pytest.raises(ValueError, match="channels must name at least one convolution"):
        guides.build("conv-gaussian", x_dim=16, z_dim=2, channels=[])
    with pytest.raises(ValueError, match="image_shape must be two positive integers"):
        guides.build("conv-gaussian", x_dim=16, z_dim=2, image_shape=(16,))


def test_multichannel_encoder_convolves_the_channels_together():
    """image_shape (C, H, W): the first convolution takes C channels, and the rows are read channel-first."""
    guide = guides.build("conv-gaussian", x_dim=90, z_dim=2, image_shape=(3, 5, 6), channels=[4], hidden=8)
    assert guide.convs[0].in_channels == 3 and guide.input_shape == (3, 5, 6)
    x = torch.rand(4, 90)
    torch.manual_seed(0)
    with torch.no_grad():
        expected = guide.convs(x.reshape(4, 3, 5, 6)).flatten(1)
        feats = guide.head(guide.features(expected))
        loc, _ = guide.loc_scale(x)
    assert torch.allclose(loc, feats[:, :2])
    assert guides.build("conv-gaussian", x_dim=12, z_dim=2, image_shape=(3, 4)).input_shape == (1, 3, 4)
