"""The amortized Gaussian encoder (pyro_air/guides/gaussian.py): q(z | x) = N(mu(x), diag sigma(x)^2) from an
x-d-d-z network, and its specialized direct scoring, bit for bit the distribution's."""
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from pyro_air import guides
from pyro_air.core.scoring import DiagonalNormalPosterior, DistributionPosterior, generic_scoring
from pyro_air.guides import GaussianEncoder


def _linear_shapes(guide):
    return [(m.in_features, m.out_features) for m in guide.modules() if isinstance(m, nn.Linear)]


def test_the_default_is_the_air_papers_encoder():
    """AIR Appendix E: x-d-d-z with d = 500, z = 50, tanh; the head gives loc and scale."""
    guide = guides.build("gaussian")
    assert isinstance(guide, GaussianEncoder) and (guide.x_dim, guide.z_dim, guide.hidden) == (784, 50, (500, 500))
    assert _linear_shapes(guide) == [(784, 500), (500, 500), (500, 100)]
    assert any(type(m).__name__.lower() == "tanh" for m in guide.modules())


def test_the_posterior_is_a_diagonal_normal_of_the_heads_two_halves():
    guide = GaussianEncoder(6, 3, hidden=(8,))
    x = torch.rand(4, 6)
    q = guide.posterior(x)
    assert q.batch_shape == (4,) and q.event_shape == (3,)
    out = guide.head(guide.features(x))
    torch.testing.assert_close(q.mean, out[:, :3])
    torch.testing.assert_close(q.stddev, nn.functional.softplus(out[:, 3:]) + 1e-4)


def test_the_scale_stays_positive_however_negative_the_network_output():
    guide = GaussianEncoder(6, 3, hidden=(8,))
    with torch.no_grad():
        guide.head.bias[3:] = -1e4
    assert torch.equal(guide.posterior(torch.rand(2, 6)).stddev, torch.full((2, 3), 1e-4))


def test_direct_scoring_is_the_distributions_draws_and_densities_bit_for_bit():
    guide = GaussianEncoder(6, 3, hidden=(8,))
    x = torch.rand(5, 6)
    torch.manual_seed(2)
    fast = guide.direct_posterior(x)
    z = fast.rsample(4)
    with generic_scoring():
        torch.manual_seed(2)
        generic = guide.direct_posterior(x)
        z_generic = generic.rsample(4)
    assert isinstance(fast, DiagonalNormalPosterior) and isinstance(generic, DistributionPosterior)
    assert torch.equal(z, z_generic) and torch.equal(fast.log_prob(z), generic.log_prob(z_generic))


class Wider(GaussianEncoder):
    def posterior(self, x):
        loc, scale = self.loc_scale(x)
        return dist.Normal(loc, 2 * scale).to_event(1)


class Shifted(GaussianEncoder):
    def loc_scale(self, x):
        loc, scale = super().loc_scale(x)
        return loc + 1.0, scale


@pytest.mark.parametrize("cls", [Wider, Shifted])
def test_a_subclass_that_changes_the_posterior_leaves_the_specialized_formula(cls):
    guide = cls(6, 2, hidden=(4,))
    x = torch.rand(3, 6)
    q = guide.direct_posterior(x)
    assert isinstance(q, DistributionPosterior)
    torch.manual_seed(0)
    z = q.rsample(2)
    torch.testing.assert_close(q.log_prob(z), guide.posterior(x).log_prob(z))


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden": ()}, "hidden must name at least one hidden layer, e.g. hidden=(500, 500)"),
    ({"hidden": (8, -1)}, "every entry of hidden must be an integer >= 1, got -1"),
    ({"activation": "sigmoid"}, "unknown activation 'sigmoid'; use one of elu, relu, softplus, tanh"),
    ({"z_dim": 0}, "z_dim must be an integer >= 1, got 0"),
])
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        GaussianEncoder(**{"x_dim": 6, "z_dim": 2, "hidden": (4,), **kwargs})
    assert str(err.value) == message
