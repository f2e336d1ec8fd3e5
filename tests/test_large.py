"""The over-expressive encoder of AIR Appendix A (pyro_air/guides/large.py): one more hidden layer, nothing else."""
import pytest
import torch
from torch import nn

from pyro_air import guides
from pyro_air.core.scoring import DiagonalNormalPosterior, generic_scoring
from pyro_air.guides import GaussianEncoder
from pyro_air.guides.large import LargeGaussianEncoder


def _linear_shapes(guide):
    return [(m.in_features, m.out_features) for m in guide.modules() if isinstance(m, nn.Linear)]


def test_large_encoder_has_one_more_hidden_layer():
    count = lambda g: sum(isinstance(m, nn.Linear) for m in g.modules())
    assert count(guides.build("gaussian-large", x_dim=10, z_dim=2, hidden=[8, 8])) == count(
        guides.build("gaussian", x_dim=10, z_dim=2, hidden=[8, 8])) + 1


def test_the_extra_layer_repeats_the_last_width():
    """hidden=(500, 500) gives x-500-500-500-z (AIR Appendix E: x-d-d-d-z against x-d-d-z)."""
    guide = guides.build("gaussian-large", x_dim=784, z_dim=50, hidden=(500, 500))
    assert isinstance(guide, LargeGaussianEncoder) and guide.hidden == (500, 500, 500)
    assert _linear_shapes(guide) == [(784, 500), (500, 500), (500, 500), (500, 100)]
    assert _linear_shapes(LargeGaussianEncoder(6, 2, hidden=(3, 5))) == [(6, 3), (3, 5), (5, 5), (5, 4)]


def test_it_is_a_gaussian_encoder_with_the_same_direct_scoring():
    guide = LargeGaussianEncoder(6, 2, hidden=(4,))
    x = torch.rand(3, 6)
    assert isinstance(guide, GaussianEncoder) and isinstance(guide.direct_posterior(x), DiagonalNormalPosterior)
    torch.manual_seed(0)
    z = guide.direct_posterior(x).rsample(5)
    with generic_scoring():
        torch.manual_seed(0)
        generic = guide.direct_posterior(x)
        assert torch.equal(generic.rsample(5), z)


@pytest.mark.parametrize("hidden,message", [
    ((), "hidden must name at least one hidden layer, e.g. hidden=(500, 500)"),
    ((8, 0), "every entry of hidden must be an integer >= 1, got 0"),
])
def test_bad_hidden_sizes_are_refused(hidden, message):
    with pytest.raises(ValueError) as err:
        LargeGaussianEncoder(6, 2, hidden=hidden)
    assert str(err.value) == message
