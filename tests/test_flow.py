import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_air import guides
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.infer import IWAE_ELBO, MonteCarloELBO, log_importance_weights


def test_flow_log_q_is_the_transformed_distributions_log_prob(linear_gaussian):
    model, x = linear_gaussian
    guide = guides.build("iaf", x_dim=5, z_dim=2, hidden=(8,), num_flows=2, flow_hidden=(6,))
    w = log_importance_weights(model, guide, x, num_particles=3)
    site = w.guide_trace.nodes["z"]
    assert isinstance(site["fn"], dist.TransformedDistribution)
    z = site["value"].detach().clone()  # a fresh tensor: log_prob must invert the flows, no cache
    q = guide.posterior(x)
    manual_log_q = q.log_prob(z)
    log_joint = model.prior(16, x).log_prob(z) + model.likelihood(z).log_prob(x)
    assert torch.allclose(w.log_w, log_joint - manual_log_q, atol=1e-4)
    # and not the base Gaussian's density: the flows change it
    base_only = q.base_dist.log_prob(z)
    assert not torch.allclose(manual_log_q, base_only, atol=1e-3)


def test_flow_guide_trains_with_elbo_and_iwae_and_evaluates(linear_gaussian):
    model, x = linear_gaussian
    guide = guides.build("iaf", x_dim=5, z_dim=2, hidden=(8,), num_flows=2, flow_hidden=(6,))
    for objective in (MonteCarloELBO(num_particles=2), IWAE_ELBO(num_particles=4)):
        loss = objective.differentiable_loss(model, guide, x, num_data=64)
        loss.backward()
        assert torch.isfinite(loss)
    assert guide.flows[0].arn.layers[0].weight.grad.abs().sum() > 0
    lower = elbo(model, guide, x, num_samples=200)
    iwae = log_likelihood(model, guide, x, num_samples=200)
    exact = model.exact_log_likelihood(x)
    assert (lower <= iwae + 1e-4).all()   # log-mean-exp >= mean, on the same kind of draws
    assert lower.mean() < exact.mean()    # the ELBO is below log p(x) (IWAE of an untrained IAF is too
                                          # heavy-tailed for a per-datapoint check at 200 samples)
    assert "z" in poutine.trace(guide).get_trace(x).nodes


@pytest.mark.parametrize("bad", [dict(num_flows=0), dict(z_dim=1), dict(flow_hidden=(0,))])
def test_flow_guide_rejects_bad_settings(bad):
    cfg = dict(x_dim=5, z_dim=2, hidden=(8,))
    cfg.update(bad)
    with pytest.raises(ValueError):
        guides.build("iaf", **cfg)
