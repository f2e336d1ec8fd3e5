"""The gated PixelCNN decoder (pyro_air/models/pixelcnn_vae.py): autoregressive by perturbation,
normalized over all binary images of a tiny size, and a model under the site contract."""
import itertools

import pyro
import pytest
import torch

from pyro_air import guides, infer, models
from tests.conftest import binary_batch


def _randomized(model, scale=0.3, seed=0):
    """Non-trivial weights (the default init leaves many paths near zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.mark.parametrize("kernel_size,num_layers", [(3, 3), (5, 2)])
def test_a_pixels_logit_depends_only_on_earlier_pixels(kernel_size, num_layers):
    """Flipping pixel d changes no logit at positions <= d, and does change later ones (the
    network does see the past: no blind spot right above-right of a pixel, van den Oord 2016)."""
    model = _randomized(models.build("pixelcnn-vae", x_dim=64, z_dim=2, image_shape=(8, 8), channels=8,
                                     num_layers=num_layers, kernel_size=kernel_size))
    x, z = binary_batch(n=1, d=64, p=0.5), torch.randn(1, 2)
    base = model.decoder(x, z)[0]
    for d in range(64):
        flipped = x.clone()
        flipped[0, d] = 1 - flipped[0, d]
        changed = (model.decoder(flipped, z)[0] - base).abs() > 0
        assert not changed[: d + 1].any(), f"pixel {d} influences logits at {changed[: d + 1].nonzero().flatten().tolist()}"
        if (d + 1) % 8:
            assert changed[d + 1], f"the next pixel in the row does not see pixel {d}"
    # the pixel up and to the right (row above, next column) is seen: the gated stacks have no blind spot
    flipped = x.clone()
    flipped[0, 1 * 8 + 5] = 1 - flipped[0, 1 * 8 + 5]
    assert (model.decoder(flipped, z)[0] - base)[2 * 8 + 4].abs() > 0


def test_likelihood_is_normalized_over_all_3x3_binary_images():
    model = _randomized(models.build("pixelcnn-vae", x_dim=9, z_dim=2, image_shape=(3, 3), channels=4,
                                     num_layers=2, kernel_size=3))
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9)))      # all 512
    for z in torch.randn(3, 2):
        log_p = model.likelihood(z.expand(512, 2)).log_prob(images).double()
        assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-5)


def test_log_joint_and_traced_primitive_agree_for_particles():
    """Direct scoring (contract 6) through the default log_joint equals the traced [K, B] weights."""
    model = models.build("pixelcnn-vae", x_dim=16, z_dim=3, channels=4, num_layers=2, kernel_size=3)
    guide = guides.build("conv-gaussian", x_dim=16, z_dim=3, channels=[4], hidden=8)
    assert model.supports_direct_scoring()
    x = binary_batch(n=5, d=16)
    pyro.set_rng_seed(3)
    traced = infer.log_importance_weights(model, guide, x, num_particles=4).log_w
    pyro.set_rng_seed(3)
    q = guide.direct_posterior(x)
    z = q.rsample(4)
    direct = model.log_joint(x, z) - q.log_prob(z)
    assert traced.shape == (4, 5)
    assert torch.allclose(traced, direct, atol=1e-5)


def test_sample_draws_binary_images_from_the_conditional():
    model = models.build("pixelcnn-vae", x_dim=12, z_dim=2, image_shape=(3, 4), channels=4, num_layers=2,
                         kernel_size=3)
    with torch.no_grad():
        model.decoder.head[-1].bias.fill_(-30.0)      # every pixel off, whatever the context
    torch.manual_seed(0)
    x = model.sample(5)
    assert x.shape == (5, 12) and (x == 0).all()
    with torch.no_grad():
        model.decoder.head[-1].bias.fill_(30.0)
    assert (model.sample(2, z=torch.zeros(2, 2)) == 1).all()


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) has 9 pixels but x_dim is 10"):
        models.build("pixelcnn-vae", x_dim=10, z_dim=2, image_shape=(3, 3))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        models.build("pixelcnn-vae", x_dim=9, z_dim=2, kernel_size=4)
    with pytest.raises(ValueError, match="channels must be an integer >= 1"):
        models.build("pixelcnn-vae", x_dim=9, z_dim=2, channels=0)
    model = models.build("pixelcnn-vae", x_dim=9, z_dim=2)
    with pytest.raises(ValueError, match="binary x"):
        model(torch.full((2, 9), 0.5))
