"""pyro_air.evaluate.local_guides: per-datapoint Gaussians in each local site's unconstrained space."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_air.evaluate.local_guides import SiteGaussians, local_site_draws
from tests import outside_models as om


def test_only_local_sites_are_swapped_and_their_values_keep_the_support():
    case = om.constrained()
    (x,) = case.data(5)
    draws = local_site_draws(case.model, case.guide, (x,), {}, 40)
    assert set(draws) == {"rate", "p", "w"}
    assert draws["w"].shape == (40, 5, 2)    # the simplex of 3 is 2 unconstrained coordinates
    local = SiteGaussians(case.guide, {k: (v.mean(0), v.std(0)) for k, v in draws.items()})
    trace = poutine.trace(local).get_trace(x)
    assert (trace.nodes["rate"]["value"] > 0).all() and ((0 < trace.nodes["p"]["value"]) & (trace.nodes["p"]["value"] < 1)).all()
    assert torch.allclose(trace.nodes["w"]["value"].sum(-1), torch.ones(5))
    assert isinstance(trace.nodes["rate"]["fn"], dist.TransformedDistribution)


def test_a_global_site_keeps_the_guides_distribution():
    case = om.factor()
    (x,) = case.data(4)
    pyro.clear_param_store()
    draws = local_site_draws(case.model, case.guide, (x,), {}, 8)
    assert set(draws) == {"z"}
    local = SiteGaussians(case.guide, {"z": (draws["z"].mean(0), draws["z"].std(0))})
    trace = poutine.trace(local).get_trace(x)
    assert isinstance(trace.nodes["mu"]["fn"], dist.Independent)   # the guide's own Normal(...).to_event(1)


def test_the_start_is_the_moments_of_the_guides_draws():
    def model(x):
        with pyro.plate("items", len(x)):
            pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def guide(x):
        with pyro.plate("items", len(x)):
            pyro.sample("z", dist.Normal(x, 0.5))

    x = torch.tensor([-1.0, 2.0])
    torch.manual_seed(0)
    draws = local_site_draws(model, guide, (x,), {}, 4000)["z"]
    assert torch.allclose(draws.mean(0), x, atol=0.03) and torch.allclose(draws.std(0), torch.full((2,), 0.5), atol=0.02)


def test_a_discrete_local_site_is_refused_in_one_line():
    case = om.mixture()
    with pytest.raises(ValueError, match="'c' is discrete") as err:
        local_site_draws(case.model, case.guide, case.data(3), {}, 2)
    assert "\n" not in str(err.value)
