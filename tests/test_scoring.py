"""Direct scoring (pyro_air/core/scoring.py): the switch, the consistency rule, and the two posteriors'
draws and densities against the distribution objects a guide's ``pyro.sample`` would use."""
import pyro.distributions as dist
import pytest
import torch

from pyro_air.core.scoring import (
    DiagonalNormalPosterior,
    DistributionPosterior,
    consistent_override,
    generic_scoring,
    keeps,
    owner,
    specialized_scoring_enabled,
)


def test_generic_scoring_turns_the_specialized_formulas_off_and_back_even_after_an_error():
    assert specialized_scoring_enabled()
    with generic_scoring():
        assert not specialized_scoring_enabled()
        with generic_scoring():
            assert not specialized_scoring_enabled()
        assert not specialized_scoring_enabled()  # the inner block restores what it found
    assert specialized_scoring_enabled()
    with pytest.raises(RuntimeError), generic_scoring():
        raise RuntimeError("inside")
    assert specialized_scoring_enabled()


class Base:
    def forward(self):
        pass

    def direct(self):
        pass


class OverridesForward(Base):
    def forward(self):
        pass


class OverridesBoth(OverridesForward):
    def direct(self):
        pass


class OverridesDirect(Base):
    def direct(self):
        pass


class Below(OverridesBoth):
    pass


def test_owner_is_the_class_that_defines_the_name():
    assert owner(Below, "forward") is OverridesForward and owner(Below, "direct") is OverridesBoth
    assert owner(Base, "missing") is None


@pytest.mark.parametrize("cls,consistent", [
    (Base, True),                # both defined together
    (OverridesForward, False),   # a new forward that the inherited direct method does not know about
    (OverridesBoth, True),
    (OverridesDirect, True),     # a direct method below the forward it reproduces
    (Below, True),
])
def test_a_direct_method_stands_in_only_at_or_below_the_forward_it_reproduces(cls, consistent):
    assert consistent_override(cls, "forward", "direct") is consistent


def test_a_missing_method_is_never_consistent():
    assert not consistent_override(Base, "forward", "missing")
    assert not consistent_override(Base, "missing", "direct")


def test_keeps_is_true_only_while_every_name_is_inherited_unchanged():
    assert keeps(Below, OverridesBoth, "forward", "direct")
    assert keeps(OverridesForward, Base, "direct")
    assert not keeps(OverridesForward, Base, "forward", "direct")


def _loc_scale(seed=0, b=6, d=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.rand(b, d, generator=g) + 0.1


def test_the_diagonal_normal_draws_and_scores_the_bits_of_the_expanded_normal():
    """What the guide's pyro.sample does under the particle plate: Normal(loc, scale).to_event(1) expanded to
    [K, B], rsample, log_prob at the draw."""
    loc, scale = _loc_scale()
    torch.manual_seed(3)
    q = DiagonalNormalPosterior(loc, scale)
    z = q.rsample(7)
    log_q = q.log_prob(z)
    torch.manual_seed(3)
    expanded = dist.Normal(loc, scale).to_event(1).expand([7, 6])
    z_ref = expanded.rsample()
    assert z.shape == (7, 6, 5) and log_q.shape == (7, 6)
    assert torch.equal(z, z_ref)
    assert torch.equal(log_q, expanded.log_prob(z_ref))


def test_the_diagonal_normal_scores_the_same_bits_with_and_without_gradients():
    """Without gradients log q broadcasts [B, z] loc and scale instead of their K expanded copies
    (one log per datapoint, not per draw): the same values element by element, so the same bits."""
    loc, scale = (t.requires_grad_() for t in _loc_scale())
    q = DiagonalNormalPosterior(loc, scale)
    z = q.rsample(40)
    with_grad = q.log_prob(z)
    with torch.no_grad():
        without = q.log_prob(z)
    assert with_grad.requires_grad and not without.requires_grad
    assert torch.equal(with_grad.detach(), without)


def test_the_diagonal_normal_is_reparameterized():
    loc, scale = (t.requires_grad_() for t in _loc_scale(b=1, d=1))
    z = DiagonalNormalPosterior(loc, scale).rsample(1)
    dz_dloc, dz_dscale = torch.autograd.grad(z.sum(), [loc, scale])
    assert dz_dloc.item() == 1.0 and torch.allclose(dz_dscale, (z.detach() - loc.detach()) / scale.detach())


def test_the_distribution_posterior_is_the_expanded_distribution():
    loc, scale = _loc_scale()
    q = dist.Normal(loc, scale).to_event(1)
    torch.manual_seed(1)
    posterior = DistributionPosterior(q)
    z = posterior.rsample(4)
    torch.manual_seed(1)
    expected = q.expand([4, 6]).rsample()
    assert torch.equal(z, expected)
    assert torch.equal(posterior.log_prob(z), q.expand([4, 6]).log_prob(z))


def test_a_family_without_rsample_is_sampled():
    probs = torch.tensor([[0.2, 0.9], [0.5, 0.5], [0.99, 0.01]])
    posterior = DistributionPosterior(dist.Bernoulli(probs).to_event(1))
    z = posterior.rsample(500)
    assert z.shape == (500, 3, 2) and not z.requires_grad and set(z.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(z.mean(0), probs, atol=0.08)
    assert torch.allclose(posterior.log_prob(z[:1]), dist.Bernoulli(probs).log_prob(z[0]).sum(-1).unsqueeze(0))
