"""StandardNormal is Normal(0, 1), bit for bit where it scores, and a Normal everywhere else."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air.core.distributions import StandardNormal


def test_log_prob_is_bitwise_normal_0_1_with_gradients():
    z = (torch.randn(8, 100, 50) * 4).requires_grad_()
    ours = StandardNormal((100, 50), z).to_event(1).log_prob(z)
    reference = dist.Normal(torch.zeros(100, 50), 1.0).to_event(1).log_prob(z)
    assert torch.equal(ours, reference)
    (g_ours,) = torch.autograd.grad(ours.sum(), z)
    (g_ref,) = torch.autograd.grad(reference.sum(), z)
    assert torch.equal(g_ours, g_ref)


def test_log_prob_broadcasts_like_normal():
    p = StandardNormal((3, 2), torch.zeros(1))
    assert p.log_prob(torch.zeros(2)).shape == (3, 2)
    assert p.log_prob(torch.zeros(5, 3, 2)).shape == (5, 3, 2)
    assert p.log_prob(torch.zeros(5, 1, 2)).shape == (5, 3, 2)


def test_it_is_a_normal_in_every_other_respect():
    p = StandardNormal((4, 3), torch.zeros(1, dtype=torch.float64))
    assert isinstance(p, dist.Normal) and p.batch_shape == (4, 3) and p.loc.dtype == torch.float64
    assert torch.equal(p.mean, torch.zeros(4, 3, dtype=torch.float64))
    assert torch.equal(p.variance, torch.ones(4, 3, dtype=torch.float64))
    expanded = p.expand(torch.Size([7, 4, 3]))
    assert isinstance(expanded, StandardNormal) and expanded.batch_shape == (7, 4, 3)
    assert expanded.rsample().shape == (7, 4, 3)
    q = dist.Normal(torch.full((4, 3), 0.5, dtype=torch.float64), 2.0)
    torch.testing.assert_close(torch.distributions.kl_divergence(q, p),
                               torch.distributions.kl_divergence(q, dist.Normal(0.0, torch.ones(4, 3, dtype=torch.float64))))


def test_pyro_plates_sample_it_with_the_right_shape():
    def model():
        with pyro.plate("data", 5):
            return pyro.sample("z", StandardNormal((5, 2), torch.zeros(1)).to_event(1))

    trace = pyro.poutine.trace(model).get_trace()
    assert trace.nodes["z"]["value"].shape == (5, 2)
    trace.compute_log_prob()
    assert trace.nodes["z"]["log_prob"].shape == (5,)


@pytest.mark.parametrize("grey", [False, True])
def test_bernoulli_image_scores_like_independent_bernoulli_with_gradients(grey):
    """Same function as Bernoulli(logits).to_event(1) to float32 rounding (float64 reference),
    for binary x and for grey x in [0, 1] (the cross-entropy)."""
    from pyro_air.core.distributions import BernoulliImage

    torch.manual_seed(0)
    logits = (torch.randn(3, 10, 784) * 6).requires_grad_()
    x = torch.rand(10, 784) if grey else (torch.rand(10, 784) < 0.3).float()
    ours = BernoulliImage(logits).log_prob(x)
    reference = dist.Bernoulli(logits=logits.double(), validate_args=False).to_event(1).log_prob(x.double())
    assert ours.shape == (3, 10)
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-3)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_ref,) = torch.autograd.grad(reference.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)


def test_bernoulli_image_is_exact_where_the_logits_saturate():
    from pyro_air.core.distributions import BernoulliImage

    logits = torch.tensor([[40.0, -40.0, 200.0, -200.0]])
    # exactly -2 softplus(-40) = -8.5e-18; softplus returns l above l = 20, dropping e^-l < 2e-9
    likely = BernoulliImage(logits).log_prob(torch.tensor([[1.0, 0.0, 1.0, 0.0]])).item()
    assert abs(likely - (-2 * math.exp(-40))) <= 1e-17
    assert BernoulliImage(logits).log_prob(torch.tensor([[0.0, 1.0, 0.0, 1.0]])).item() == -480.0


def test_bernoulli_image_is_an_independent_bernoulli_otherwise():
    from pyro_air.core.distributions import BernoulliImage

    p = BernoulliImage(torch.zeros(4, 6))
    assert p.batch_shape == (4,) and p.event_shape == (6,)
    expanded = p.expand(torch.Size([2, 4]))
    assert isinstance(expanded, BernoulliImage) and expanded.batch_shape == (2, 4)
    assert expanded.sample().shape == (2, 4, 6)
    torch.testing.assert_close(p.mean, torch.full((4, 6), 0.5))
    torch.testing.assert_close(expanded.log_prob(torch.ones(6)), torch.full((2, 4), -6 * math.log(2.0)))


# -- continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) -------------------------------------------
def test_continuous_bernoulli_log_normalizer_matches_the_closed_form_and_torch():
    from pyro_air.core.distributions import continuous_bernoulli_log_normalizer

    eta = torch.tensor([-8.0, -2.0, -0.3, 0.05, 0.7, 3.0, 8.0], dtype=torch.float64)
    lam = torch.sigmoid(eta)
    closed = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))  # Eq. 7, away from lambda = 1/2
    assert torch.allclose(continuous_bernoulli_log_normalizer(eta), closed, rtol=1e-12, atol=1e-12)
    torch_cb = torch.distributions.ContinuousBernoulli(logits=eta)._cont_bern_log_norm()
    assert torch.allclose(continuous_bernoulli_log_normalizer(eta), torch_cb, rtol=1e-9)


def test_continuous_bernoulli_is_stable_near_one_half_and_for_large_logits():
    from pyro_air.core.distributions import (
        CB_TAYLOR_BELOW,
        continuous_bernoulli_log_normalizer,
    )

    eta = torch.tensor([0.0, 1e-8, -1e-4, CB_TAYLOR_BELOW * 0.999, CB_TAYLOR_BELOW * 1.001], dtype=torch.float64,
                       requires_grad=True)
    value = continuous_bernoulli_log_normalizer(eta)
    u = eta.detach() / 2  # log(2 u coth u) by its series to u^6 (the rest < 1e-20 here)
    series = math.log(2) + u ** 2 / 3 - 7 * u ** 4 / 90 + 62 * u ** 6 / 2835
    assert torch.allclose(value, series, rtol=0, atol=5e-15)  # continuous across the switch to the series
    value.sum().backward()
    assert torch.isfinite(eta.grad).all() and eta.grad[0] == 0  # even function: zero slope at lambda = 1/2
    big = torch.tensor([50.0, -200.0], dtype=torch.float64)  # C -> |eta| (torch's clamped probs are off here)
    assert torch.allclose(continuous_bernoulli_log_normalizer(big), big.abs().log(), rtol=1e-12)


@pytest.mark.parametrize("eta", [-6.0, -0.4, 0.0, 1e-5, 0.003, 2.5])
def test_continuous_bernoulli_density_integrates_to_one(eta):
    from pyro_air.core.distributions import ContinuousBernoulliImage

    x = torch.linspace(0, 1, 20001, dtype=torch.float64).unsqueeze(-1)
    density = ContinuousBernoulliImage(torch.full((len(x), 1), eta, dtype=torch.float64)).log_prob(x).exp()
    assert torch.trapezoid(density, x.squeeze(-1)).item() == pytest.approx(1.0, abs=1e-7)
