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
