"""The guide contract (pyro_air/guides/base.py): forward samples "z" in the shared data plate, from
posterior(encoder_input(x)); direct scoring reproduces forward where the class allows it."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_air.core.scoring import DistributionPosterior
from pyro_air.core.sites import DATA_PLATE, LATENT_SITE
from pyro_air.guides import AmortizedGuide


class LinearStudentT(AmortizedGuide):
    """A guide written against the base class: only ``posterior`` (a non-Gaussian family)."""

    def __init__(self, x_dim=4, z_dim=2):
        super().__init__(x_dim, z_dim)
        self.net = nn.Linear(x_dim, z_dim)

    def posterior(self, x):
        return dist.StudentT(4.0, self.net(x), 0.5).to_event(1)


class OwnForward(LinearStudentT):
    """Overrides forward (here: a different plate size) without a matching direct_posterior."""

    def forward(self, x, num_data=None):
        with pyro.plate(DATA_PLATE, len(x)):
            return pyro.sample(LATENT_SITE, self.posterior(x))


def test_forward_samples_z_in_the_data_plate_scaled_by_n_over_b():
    guide = LinearStudentT()
    x = torch.rand(5, 4)
    trace = poutine.trace(guide).get_trace(x, num_data=50)
    site = trace.nodes[LATENT_SITE]
    assert site["value"].shape == (5, 2) and site["scale"] == 10.0
    assert [(f.name, f.dim, f.size) for f in site["cond_indep_stack"]] == [(DATA_PLATE, -1, 5)]


def test_every_network_parameter_is_a_pyro_parameter_named_for_the_guide():
    guide = LinearStudentT()
    trace = poutine.trace(guide).get_trace(torch.rand(3, 4))
    params = {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "param"}
    assert len(params) == 2 and all(name.startswith("guide.net") for name in params)  # pyro.infer.SVI trains them
    assert {id(v) for v in params.values()} == {id(p) for p in guide.parameters()}


def test_the_direct_posterior_draws_and_scores_as_forward_does():
    guide = LinearStudentT()
    x = torch.rand(6, 4)
    pyro.set_rng_seed(0)
    q = guide.direct_posterior(x)
    z = q.rsample(3)
    pyro.set_rng_seed(0)
    with pyro.plate("particles", 3, dim=-2):
        trace = poutine.trace(guide).get_trace(x)
    assert isinstance(q, DistributionPosterior)
    assert torch.equal(z, trace.nodes[LATENT_SITE]["value"])
    assert torch.equal(q.log_prob(z), trace.nodes[LATENT_SITE]["fn"].log_prob(z))
    assert guide.supports_direct_scoring()


def test_a_guide_that_overrides_forward_alone_is_scored_through_its_trace():
    assert not OwnForward().supports_direct_scoring()


def test_input_checks_follow_the_switches():
    guide = LinearStudentT()
    with pytest.raises(ValueError, match=r"LinearStudentT expects x of shape \[B, 4\], got \[3, 5\]"):
        guide(torch.rand(3, 5))
    with pyro.validation_enabled(False):   # the training loop's hot loop: checked once, up front
        with pytest.raises(RuntimeError):  # the network's own shape error, not the contract's
            guide(torch.rand(3, 5))
    guide.validate_inputs = False
    with pytest.raises(RuntimeError):
        guide(torch.rand(3, 5))


def test_the_base_class_needs_a_posterior_and_positive_sizes():
    with pytest.raises(NotImplementedError):
        AmortizedGuide(4, 2)(torch.rand(3, 4))
    with pytest.raises(ValueError, match="x_dim must be an integer >= 1, got 0"):
        LinearStudentT(x_dim=0)
    with pytest.raises(ValueError, match="z_dim must be an integer >= 1, got 2.0"):
        AmortizedGuide(4, 2.0)
