"""The spectrally normalized encoder (Miyato et al. 2018, through torch's spectral_norm parametrization)."""
import math

import pyro
import pytest
import torch

from pyro_air import infer, models
from pyro_air.guides import GaussianEncoder, SpectralNormEncoder, SpectralNormLinear
from tests.conftest import binary_batch


def _train(guide, steps=60, lr=5e-2):
    """Adam steps on the ELBO with a large learning rate, which pushes the weights' norms up."""
    model = models.build("bernoulli-vae", x_dim=784, z_dim=4, hidden=[16])
    x = binary_batch(n=32, seed=2)
    opt = torch.optim.Adam(list(guide.parameters()) + list(model.parameters()), lr=lr)
    objective = infer.build("elbo")
    for _ in range(steps):
        opt.zero_grad()
        objective.differentiable_loss(model, guide, x, num_data=1000).backward()
        opt.step()
    return guide


@pytest.mark.parametrize("mode", ["cap", "normalize"])
def test_largest_singular_value_stays_below_the_bound_after_training(mode):
    """The bound holds for the exact ||W||_2 (by SVD) of every layer after training steps; the
    power-iteration estimate converges to sigma from below, hence the 1e-3 relative slack."""
    bound = 0.5
    guide = _train(SpectralNormEncoder(784, 4, hidden=[32, 32], bound=bound, mode=mode))
    values = guide.largest_singular_values()
    assert len(values) == 3
    assert max(values) <= bound * (1 + 1e-3), values
    if mode == "normalize":
        assert min(values) >= bound * (1 - 1e-2), values  # normalized: every layer sits at the bound
    # the plain encoder trained the same way exceeds the bound: the constraint is doing something
    pyro.set_rng_seed(0)
    plain = _train(GaussianEncoder(784, 4, hidden=[32, 32]))
    assert max(torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()
               for m in plain.modules() if isinstance(m, torch.nn.Linear)) > 2 * bound


def test_cap_is_the_plain_layer_below_the_bound():
    """In cap mode a layer whose sigma is below the bound is the plain linear map (float rounding)."""
    torch.manual_seed(0)
    layer = SpectralNormLinear(20, 10, bound=math.inf)
    plain = torch.nn.Linear(20, 10)
    with torch.no_grad():
        plain.weight.copy_(layer.linear.parametrizations.weight.original)
        plain.bias.copy_(layer.linear.bias)
    x = torch.randn(5, 20)
    assert torch.allclose(layer(x), plain(x), rtol=1e-5, atol=1e-6)


def test_no_bound_is_the_plain_encoder_bit_for_bit():
    """Neutral setting: bound=None builds the plain nn.Linear encoder (same parameters, same loss)."""
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    x = binary_batch(n=8)
    torch.manual_seed(4)
    plain = GaussianEncoder(784, 3, hidden=[16])
    torch.manual_seed(4)
    sn = SpectralNormEncoder(784, 3, hidden=[16], bound=None)
    pyro.set_rng_seed(1)
    a = infer.build("iwae", num_particles=3).differentiable_loss(model, plain, x)
    pyro.set_rng_seed(1)
    b = infer.build("iwae", num_particles=3).differentiable_loss(model, sn, x)
    assert torch.equal(a, b)


def test_infinite_cap_matches_the_plain_encoder_within_rounding():
    models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    x = binary_batch(n=8)
    torch.manual_seed(4)
    plain = GaussianEncoder(784, 3, hidden=[16])
    sn = SpectralNormEncoder(784, 3, hidden=[16], bound=math.inf)
    sn_layers = [m for m in sn.modules() if isinstance(m, SpectralNormLinear)]
    plain_layers = [m for m in plain.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # the plain weights; u, v stay those of other matrices: W = (W / s) * s for any s
        for a, b in zip(sn_layers, plain_layers, strict=True):
            a.linear.parametrizations.weight.original.copy_(b.weight)
            a.linear.bias.copy_(b.bias)
    for a, b in zip(plain.posterior(x).base_dist.loc, sn.posterior(x).base_dist.loc):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_direct_scoring_is_kept():
    guide = SpectralNormEncoder(784, 3, hidden=[16], bound=1.0)
    assert guide.supports_direct_scoring()


@pytest.mark.parametrize("kwargs,match", [
    ({"bound": 0.0}, "bound"), ({"bound": -1.0}, "bound"), ({"bound": "big"}, "bound"),
    ({"bound": 1.0, "mode": "clip"}, "mode"), ({"bound": 1.0, "n_power_iterations": 0}, "n_power_iterations"),
])
def test_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralNormEncoder(784, 3, hidden=[8], **kwargs)
