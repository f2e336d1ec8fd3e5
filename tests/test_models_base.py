"""The model contract (pyro_air/models/base.py): p(x, z) = p(z) p(x | z) in the shared data plate, and
log_joint, which reproduces forward's densities where the class allows it."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_air.core.sites import DATA_PLATE, LATENT_SITE, OBSERVED_SITE
from pyro_air.models import LatentVariableModel


class PoissonDecoder(LatentVariableModel):
    """A model written against the base class: only ``likelihood`` (counts given z)."""

    def __init__(self, x_dim=4, z_dim=2):
        super().__init__(x_dim, z_dim)
        self.rate = nn.Linear(z_dim, x_dim)

    def likelihood(self, z):
        return dist.Poisson(nn.functional.softplus(self.rate(z))).to_event(1)


class OwnForward(PoissonDecoder):
    def forward(self, x, num_data=None):
        with pyro.plate(DATA_PLATE, len(x)):
            z = pyro.sample(LATENT_SITE, dist.Normal(torch.zeros(len(x), self.z_dim), 2.0).to_event(1))
            pyro.sample(OBSERVED_SITE, self.likelihood(z), obs=x)


def _counts(n=5, d=4):
    return torch.poisson(torch.full((n, d), 2.0), generator=torch.Generator().manual_seed(0))


def test_forward_is_a_standard_normal_prior_and_the_likelihood_in_the_data_plate():
    model = PoissonDecoder()
    x = _counts()
    trace = poutine.trace(model).get_trace(x, num_data=20)
    z_site, x_site = trace.nodes[LATENT_SITE], trace.nodes[OBSERVED_SITE]
    assert z_site["value"].shape == (5, 2) and x_site["is_observed"] and torch.equal(x_site["value"], x)
    for site in (z_site, x_site):
        assert [(f.name, f.dim) for f in site["cond_indep_stack"]] == [(DATA_PLATE, -1)] and site["scale"] == 4.0
    z = z_site["value"]
    torch.testing.assert_close(z_site["fn"].log_prob(z), dist.Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_log_joint_is_the_traced_log_density_of_each_particle():
    model = PoissonDecoder()
    x = _counts()
    z = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(1))
    with pyro.plate("particles", 3, dim=-2):
        trace = poutine.trace(poutine.condition(model, data={LATENT_SITE: z})).get_trace(x)
    expected = sum(trace.nodes[name]["fn"].log_prob(trace.nodes[name]["value"])
                   for name in (LATENT_SITE, OBSERVED_SITE))
    assert model.log_joint(x, z).shape == (3, 5)
    torch.testing.assert_close(model.log_joint(x, z), expected)
    assert model.supports_direct_scoring()


def test_a_model_that_overrides_forward_alone_is_scored_through_its_trace():
    assert not OwnForward().supports_direct_scoring()


def test_parameters_are_named_for_the_model_and_inputs_are_checked():
    model = PoissonDecoder()
    trace = poutine.trace(model).get_trace(_counts())
    assert {n for n, s in trace.nodes.items() if s["type"] == "param"} and all(
        n.startswith("model.") for n, s in trace.nodes.items() if s["type"] == "param")
    with pytest.raises(ValueError, match=r"PoissonDecoder expects x of shape \[B, 4\], got \[5, 3\]"):
        model(_counts(d=3))
    with pytest.raises(TypeError, match="PoissonDecoder expects a floating-point x"):
        model(_counts().long())


def test_the_base_class_needs_a_likelihood_and_positive_sizes():
    with pytest.raises(NotImplementedError):
        LatentVariableModel(4, 2)(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="x_dim must be an integer >= 1, got -4"):
        PoissonDecoder(x_dim=-4)
