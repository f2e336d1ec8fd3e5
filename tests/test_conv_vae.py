"""The convolutional decoder restores every image shape exactly and scores like the Bernoulli VAE."""
import pytest
import torch

from pyro_air import models
from pyro_air.core.distributions import bernoulli_image_log_density


@pytest.mark.parametrize("shape", [(28, 28), (3, 4), (1, 7), (5, 9)])
@pytest.mark.parametrize("channels", [[4], [4, 8, 8]])
def test_decoder_output_has_the_image_size_for_any_shape_and_depth(shape, channels):
    d = shape[0] * shape[1]
    model = models.build("conv-bernoulli-vae", x_dim=d, z_dim=3, image_shape=shape, channels=channels, hidden=8)
    assert model.decoder(torch.randn(2, 5, 3)).shape == (2, 5, d)


def test_log_joint_is_prior_plus_bernoulli_of_the_conv_logits():
    torch.manual_seed(0)
    model = models.build("conv-bernoulli-vae", x_dim=12, z_dim=2, channels=[4], hidden=8)
    x, z = torch.bernoulli(torch.full((4, 12), 0.5)), torch.randn(3, 4, 2)
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                + bernoulli_image_log_density(model.decoder(z), x.expand(3, 4, 12)))
    assert torch.allclose(model.log_joint(x, z), expected, atol=1e-5)
    with pytest.raises(ValueError, match="image_shape"):
        models.build("conv-bernoulli-vae", x_dim=12, z_dim=2, image_shape=(5, 5))


@pytest.mark.parametrize("shape", [(3, 5, 6), (2, 1, 7), (1, 28, 28)])
def test_multichannel_decoders_give_every_channel_of_the_image(shape):
    d = shape[0] * shape[1] * shape[2]
    for name, outputs in (("conv-bernoulli-vae", 1), ("conv-continuous-bernoulli-vae", 1), ("conv-gaussian-vae", 2)):
        model = models.build(name, x_dim=d, z_dim=3, image_shape=shape, channels=[4, 4], hidden=8)
        assert model.decoder.deconvs[-1].out_channels == outputs * shape[0]
        assert model.decoder(torch.randn(2, 5, 3)).shape == (2, 5, outputs * d)


def test_one_channel_decoder_keeps_its_parameters():
    """(H, W) and (1, H, W) build the same network as before channels existed: old checkpoints load."""
    flat = models.build("conv-bernoulli-vae", x_dim=12, z_dim=2, image_shape=(3, 4), channels=[4], hidden=8)
    chw = models.build("conv-bernoulli-vae", x_dim=12, z_dim=2, image_shape=(1, 3, 4), channels=[4], hidden=8)
    assert {k: v.shape for k, v in flat.state_dict().items()} == {k: v.shape for k, v in chw.state_dict().items()}
    assert flat.decoder.deconvs[-1].weight.shape == (4, 1, 3, 3)


def test_conv_gaussian_likelihood_is_a_normal_of_the_mean_and_scale_channels():
    torch.manual_seed(0)
    model = models.build("conv-gaussian-vae", x_dim=24, z_dim=2, image_shape=(2, 3, 4), channels=[4], hidden=8)
    x, z = torch.randn(4, 24), torch.randn(3, 4, 2)
    out = model.decoder(z).reshape(3, 4, 4, 3, 4)          # [K, B, 2C, H, W]: C mean channels, then C scales
    loc, raw = out[:, :, :2].reshape(3, 4, 24), out[:, :, 2:].reshape(3, 4, 24)
    scale = torch.nn.functional.softplus(raw) + model.min_scale
    m_loc, m_scale = model.loc_scale(z)
    assert torch.allclose(m_loc, loc) and torch.allclose(m_scale, scale, atol=1e-6)
    expected = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                + torch.distributions.Normal(loc, scale).log_prob(x.expand(3, 4, 24)).sum(-1))
    assert torch.allclose(model.log_joint(x, z), expected, atol=1e-4)


def test_bad_multichannel_shapes_are_refused():
    with pytest.raises(ValueError, match=r"image_shape \(3, 5, 5\) has 75 values but x_dim is 90"):
        models.build("conv-gaussian-vae", x_dim=90, z_dim=2, image_shape=(3, 5, 5))
    with pytest.raises(ValueError, match=r"two positive integers \(H, W\) or three \(C, H, W\)"):
        models.build("conv-bernoulli-vae", x_dim=12, z_dim=2, image_shape=(1, 1, 3, 4))
    with pytest.raises(ValueError, match=r"two positive integers \(H, W\), got"):  # PixelCNN: one channel
        models.build("pixelcnn-vae", x_dim=12, z_dim=2, image_shape=(1, 3, 4))
