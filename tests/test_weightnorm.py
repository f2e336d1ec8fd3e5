"""Weight-normalized inference (pyro_air/guides/weightnorm.py; AIR paper Eq. 17-18): every row norm is capped
by H, the layer is plain weight normalization below the cap, and the encoder caps every layer."""
import pyro
import pytest
import torch
from torch import nn

from pyro_air import guides, infer, models
from pyro_air.guides import WeightNormEncoder, WeightNormLinear
from pyro_air.guides.weightnorm import cap_binds
from tests.conftest import binary_batch


@pytest.mark.parametrize("H", [0.01, 1.0, 7.5])
@pytest.mark.parametrize("seed", range(4))
def test_wni_row_norms_never_exceed_H(H, seed):
    layer = WeightNormLinear(30, 20, H=H)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.v.copy_(torch.randn(20, 30, generator=gen) * 10 ** (4 * torch.rand(20, 1, generator=gen) - 2))
        layer.u.copy_(torch.randn(20, generator=gen) * 20)
    norms = layer.weight.norm(dim=1)
    assert (norms <= H * (1 + 1e-5)).all()
    expected = torch.minimum(layer.v.norm(dim=1), H * torch.sigmoid(layer.u))  # Eq. 18
    assert torch.allclose(norms, expected, rtol=1e-5)


def test_wni_with_large_cap_reproduces_the_plain_weight_normalized_layer():
    layer = WeightNormLinear(12, 5, H=1e6)
    x = torch.randn(7, 12)
    reference = nn.utils.parametrizations.weight_norm(nn.Linear(12, 5), dim=0)
    with torch.no_grad():
        reference.parametrizations.weight.original0.copy_(layer.v.norm(dim=1, keepdim=True))  # g = ||v||
        reference.parametrizations.weight.original1.copy_(layer.v)
        reference.bias.copy_(layer.bias)
    assert torch.allclose(layer(x), reference(x), atol=1e-6)
    assert torch.allclose(layer(x), nn.functional.linear(x, layer.v, layer.bias), atol=1e-6)


def test_wni_cap_binds_when_v_is_large():
    layer = WeightNormLinear(12, 5, H=0.5)
    with torch.no_grad():
        layer.v.mul_(100.0)
    assert torch.allclose(layer.weight.norm(dim=1), 0.5 * torch.sigmoid(layer.u), rtol=1e-5)


def test_cap_binds_says_whether_any_row_of_an_encoder_is_held_at_its_cap():
    """||v_i|| > H sigmoid(u_i) for some row (Eq. 18): true for a small cap, false for a large one until one
    row of one layer grows past it; an encoder without weight-normalized layers has no cap."""
    torch.manual_seed(0)
    assert cap_binds(WeightNormEncoder(6, 2, hidden=[4, 4], H=0.01))  # cap 0.005 < every initial row norm
    free = WeightNormEncoder(6, 2, hidden=[4, 4], H=100.0)  # cap 50 > every initial row norm (< 1)
    assert not cap_binds(free)
    layers = [m for m in free.modules() if isinstance(m, WeightNormLinear)]
    with torch.no_grad():
        layers[1].v[2].mul_(1000.0)  # one row of the second layer past its cap
    assert cap_binds(free)
    assert not cap_binds(guides.build("gaussian", x_dim=6, z_dim=2, hidden=[4]))


def test_wni_encoder_caps_every_layer_even_after_training_steps():
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    guide = WeightNormEncoder(784, 3, hidden=[16, 16], H=0.8)
    layers = [m for m in guide.modules() if isinstance(m, WeightNormLinear)]
    assert len(layers) == 3  # two hidden layers and the output head
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.5}), infer.build("elbo"))
    for _ in range(5):
        svi.step(binary_batch(n=8))
    assert guide.max_row_norm() <= 0.8 * (1 + 1e-5)


@pytest.mark.parametrize("H", [0, -1.0, float("nan")])
def test_bad_weight_norm_cap_raises(H):
    with pytest.raises(ValueError, match="H"):
        WeightNormEncoder(6, 2, hidden=[4], H=H)
    with pytest.raises(ValueError, match="H"):
        WeightNormLinear(3, 2, H=H)


def test_an_infinite_weight_norm_cap_is_refused():
    with pytest.raises(ValueError, match=r"H \(the weight-norm cap of Eq. 18\) must be finite, got inf: an infinite "
                                         r"cap is no cap; use the plain encoder \(guide 'gaussian'\)"):
        guides.build("weightnorm", H=float("inf"))


def test_below_the_cap_the_layer_learns_v_and_at_the_cap_the_direction_and_u():
    """s_i = min(||v_i||, H sigmoid(u_i)): the cap starts at H / 2 (u = 0); below it, u gets no gradient; at
    it, v only sets the direction, so its gradient is orthogonal to v row by row."""
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    free = WeightNormLinear(4, 3, H=100.0)
    assert torch.equal(free.u, torch.zeros(3)) and (free.v.norm(dim=1) < 50.0).all()
    free(x).pow(2).sum().backward()
    assert torch.equal(free.u.grad, torch.zeros(3)) and free.v.grad.abs().sum() > 0
    capped = WeightNormLinear(4, 3, H=0.01)
    capped(x).pow(2).sum().backward()
    assert capped.u.grad.abs().min() > 0
    assert torch.allclose((capped.v.grad * capped.v).sum(1), torch.zeros(3), atol=1e-7)


def test_the_encoder_keeps_the_gaussian_encoders_direct_scoring():
    from pyro_air.core.scoring import DiagonalNormalPosterior
    encoder = WeightNormEncoder(6, 2, hidden=[4], H=1.0)
    x = torch.rand(3, 6)
    assert isinstance(encoder.direct_posterior(x), DiagonalNormalPosterior)
    assert encoder.max_row_norm() <= 1.0 and "H=1.0" in repr(encoder)
