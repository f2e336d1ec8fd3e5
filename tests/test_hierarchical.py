import pyro
import pytest
import torch
from pyro import poutine

from pyro_air import guides
from pyro_air.evaluate import elbo, log_likelihood
from pyro_air.guides import ExtendedModel, GaussianEncoder, HierarchicalGuide
from pyro_air.infer import IWAE_ELBO, MonteCarloELBO, log_importance_weights
from pyro_air.models import BernoulliVAE, EnergyModel
from tests.conftest import binary_batch


def small_guide(T, **kw):
    return HierarchicalGuide(5, 2, num_transitions=T, hidden=(8,), transition_hidden=8, **kw)


def test_T0_is_the_base_gaussian_and_its_bound_is_the_elbo(linear_gaussian):
    model, x = linear_gaussian
    hvi = small_guide(0)
    gauss = GaussianEncoder(5, 2, hidden=(8,))
    gauss.load_state_dict(hvi.base.state_dict())
    trace = poutine.trace(hvi).get_trace(x)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"] == ["z"]
    assert torch.equal(hvi.posterior(x).base_dist.loc, gauss.posterior(x).base_dist.loc)
    assert hvi.extended_model(model) is model
    for objective in (MonteCarloELBO(num_particles=3), IWAE_ELBO(num_particles=3)):
        torch.manual_seed(0)
        a = objective.differentiable_loss(model, hvi, x)
        torch.manual_seed(0)
        b = objective.differentiable_loss(model, gauss, x)
        assert a.item() == b.item()


def test_extended_log_weight_is_eq3_by_hand(linear_gaussian):
    """log w = log p(x, z_2) + log r_2(z_1|z_2) + log r_1(z_0|z_1) - log q_0(z_0) - log q_1 - log q_2."""
    model, x = linear_gaussian
    guide = small_guide(2)
    w = log_importance_weights(model, guide, x)
    g = {n: w.guide_trace.nodes[n]["value"].squeeze(0) for n in ("z_0", "z_1", "z")}
    ctx = guide.context(x)
    fw, rw = guide.transitions.weights(), guide.reverse_kernels.weights()
    fc, rc = guide.transitions.precompute_context(fw, ctx), guide.reverse_kernels.precompute_context(rw, ctx)
    q, r = guide.transitions.distribution, guide.reverse_kernels.distribution
    log_joint = model.prior(len(x), x).log_prob(g["z"]) + model.likelihood(g["z"]).log_prob(x)
    expected = (log_joint + r(rw, 1, g["z"], rc).log_prob(g["z_1"]) + r(rw, 0, g["z_1"], rc).log_prob(g["z_0"])
                - guide.initial(x).log_prob(g["z_0"]) - q(fw, 0, g["z_0"], fc).log_prob(g["z_1"])
                - q(fw, 1, g["z_1"], fc).log_prob(g["z"]))
    assert torch.allclose(w.log_w.squeeze(0), expected, atol=1e-4)


def test_hvi_bound_below_exact_log_likelihood_and_iwae_above_it(linear_gaussian):
    model, x = linear_gaussian
    pyro.set_rng_seed(0)
    guide = small_guide(2)
    opt = torch.optim.Adam(guide.parameters(), lr=1e-2)
    for _ in range(100):  # fit the guide so the bound is close and the ordering is a real check
        opt.zero_grad()
        MonteCarloELBO(num_particles=4).differentiable_loss(model, guide, x).backward()
        opt.step()
    exact = model.exact_log_likelihood(x).detach()
    lower = elbo(model, guide, x, num_samples=1000)
    iwae = log_likelihood(model, guide, x, num_samples=1000)
    gap = exact - lower
    assert 0 < gap.mean() < 2.0  # the fitted HVI bound is near, and below, log p(x)
    assert (gap > -0.05).all()   # below per datapoint (MC error of a 1000-sample mean << 0.05)
    assert (iwae >= lower).all()
    # E[IWAE] <= log p(x) per datapoint; one estimate may exceed it by its noise, so compare the mean
    diff = iwae - exact
    assert diff.mean() <= 3 * diff.std() / len(diff) ** 0.5
    assert (exact - iwae).mean() < gap.mean() / 2


def test_extended_model_is_applied_once_and_keeps_model_attributes(linear_gaussian):
    model, x = linear_gaussian
    guide = small_guide(3)
    ext = guide.extended_model(model)
    assert isinstance(ext, ExtendedModel) and guide.extended_model(ext) is ext
    assert (ext.x_dim, ext.z_dim) == (5, 2)
    w = log_importance_weights(ext, guide, x, num_particles=2)  # already extended: not extended twice
    assert w.log_w.shape == (2, 16)
    tr = poutine.trace(poutine.replay(ext, trace=w.guide_trace)).get_trace(x)
    assert {"z", "x", "z_0", "z_1", "z_2"} <= set(tr.nodes)
    assert len(list(guide.parameters())) > len(list(guide.base.parameters()))
    assert not list(ext.parameters())  # it owns nothing: model and guide keep their parameters


def test_hierarchical_guide_swaps_in_for_a_vae_with_subsampling():
    model = BernoulliVAE(784, 4, hidden=(16,))
    guide = guides.build("hierarchical", x_dim=784, z_dim=4, num_transitions=2, hidden=(16,), transition_hidden=8)
    x = binary_batch(6)
    loss = IWAE_ELBO(num_particles=3).differentiable_loss(model, guide, x, num_data=60)
    loss.backward()
    assert torch.isfinite(loss)
    assert guide.transitions.h_z.direction.grad.abs().sum() > 0
    assert guide.reverse_kernels.h_z.direction.grad.abs().sum() > 0


def test_non_amortized_guide_on_an_energy_and_its_marginal_estimate():
    model = EnergyModel("u3")
    guide = HierarchicalGuide(1, 2, num_transitions=0, amortized=False)
    x = torch.zeros(300, 1)
    z = guide(x)
    exact = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(guide.log_marginal(x, z, num_samples=3), exact)  # T = 0: exact
    deep = HierarchicalGuide(1, 2, num_transitions=3, amortized=False, transition_hidden=8)
    z = deep(x)
    few, many = deep.log_marginal(x, z, 2).mean(), deep.log_marginal(x, z, 200).mean()
    assert many > few  # the importance-sampled lower bound of log q_T tightens with more samples
    w = log_importance_weights(model, deep, x)
    assert w.log_w.shape == (1, 300) and torch.isfinite(w.log_w).all()


@pytest.mark.parametrize("bad", [dict(num_transitions=-1), dict(num_transitions=1.5), dict(initial_scale=0)])
def test_bad_hyperparameters_raise(bad):
    with pytest.raises(ValueError):
        HierarchicalGuide(5, 2, **bad)


def test_energies_are_finite_and_unknown_names_raise():
    z = torch.randn(50, 2) * 3
    for name in ("u1", "u2", "u3", "u4", "u5", "u6", "mixture4"):
        assert torch.isfinite(EnergyModel(name).log_target(z)).all()
    mix = EnergyModel("mixture4").log_target(torch.tensor([[2.0, 0.0]]))
    assert mix.item() == pytest.approx(torch.log(torch.tensor(0.25 / (2 * torch.pi * 0.2))).item(), abs=1e-3)
    with pytest.raises(ValueError, match="unknown energy"):
        EnergyModel("u7")


def test_pyro_svi_trains_every_part_of_the_hierarchical_guide(linear_gaussian):
    model, x = linear_gaussian
    guide = small_guide(2)
    before = {n: p.detach().clone() for n, p in guide.named_parameters()}
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), MonteCarloELBO())
    assert torch.isfinite(torch.tensor(svi.step(x)))
    changed = {n for n, p in guide.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any(n.startswith("transitions.") for n in changed)
    assert any(n.startswith("reverse_kernels.") for n in changed)
    assert any(n.startswith("base.") for n in changed)


def test_initial_guide_samples_q0_alone_and_ais_from_it_reaches_the_exact_log_likelihood(linear_gaussian):
    """AIS of an HVI model anneals from q_0 (q_T has no density) to p(x, z): it estimates the model's
    log p(x), the normalizer of the extended model too, whatever the transitions do."""
    from pyro_air.evaluate import ais

    model, x = linear_gaussian
    torch.manual_seed(0)
    guide = small_guide(2)
    names = sorted(n for n, _ in guide.named_parameters())
    initial = guide.initial_guide()
    trace = poutine.trace(initial).get_trace(x)
    sites = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]
    assert sites == ["z"]
    q0 = guide.initial(x)
    assert torch.equal(trace.nodes["z"]["fn"].base_dist.loc, q0.base_dist.loc)
    assert sorted(n for n, _ in guide.named_parameters()) == names   # the guide itself is unchanged
    exact = model.exact_log_likelihood(x).detach()
    est = ais(model, initial, x, num_steps=400, num_chains=16, num_leapfrog=5, seed=0)
    iwae = log_likelihood(model, guide, x, num_samples=16, seed=0)   # the extended model's weights
    # measured: mean |error| 0.075 (IWAE-16 over the extended model: 1.16); the bound is the tolerance
    # of AIS from the prior at T = 400 (test_ais.py)
    assert (est - exact).abs().mean() < 0.12
    assert (est - exact).abs().mean() < (iwae - exact).abs().mean()
    assert all(p.requires_grad for p in guide.parameters())   # AIS put the flags back


def test_the_transitions_and_reverse_kernels_start_where_the_guide_is_told():
    import math

    guide = HierarchicalGuide(x_dim=6, z_dim=2, num_transitions=2, hidden=(5,), transition_hidden=4,
                              transition_gate_bias=-4.0, transition_std=0.05)
    for chain in (guide.transitions, guide.reverse_kernels):
        assert torch.all(chain.gate.bias == -4.0)
        assert torch.allclose(torch.nn.functional.softplus(chain.std.bias), torch.full((2, 2), 0.05))
    default = HierarchicalGuide(x_dim=6, z_dim=2, num_transitions=2, hidden=(5,), transition_hidden=4)
    assert torch.allclose(default.reverse_kernels.std.bias, torch.full((2, 2), math.log(math.e - 1.0)))
