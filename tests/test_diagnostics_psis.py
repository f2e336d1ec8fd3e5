"""Per-datapoint PSIS k-hat: closed-form cases on the linear-Gaussian model, agreement with ArviZ."""
import math

import arviz as az
import numpy as np
import pyro
import pytest
import torch

from pyro_air.diagnostics import (
    CONSTANT_WEIGHTS_KHAT,
    format_khat_summary,
    khat_from_log_weights,
    khat_summary,
    log_weights_matrix,
    psis_khat,
)
from pyro_air.diagnostics.psis import MIN_PSIS_SAMPLES, psis_tail_length
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.models import LinearGaussianModel


@pytest.fixture
def many_points():
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, seed=1)
    x = model.marginal().sample((64,)).detach()
    return model, x


def test_log_weights_of_the_exact_posterior_equal_log_px_in_every_chunk(linear_gaussian, exact_guide):
    """q = p(z|x) makes every weight p(x, z) / p(z|x) = p(x); chunk sizes that do not divide S or N."""
    model, x = linear_gaussian
    log_w = log_weights_matrix(model, exact_guide, x, num_samples=50, chunk_size=7, batch_size=5)
    assert log_w.shape == (16, 50)
    exact = model.exact_log_likelihood(x).detach()
    torch.testing.assert_close(log_w, exact[:, None].expand(-1, 50), atol=1e-4, rtol=0)


def test_exact_posterior_guide_reads_as_a_perfect_fit(linear_gaussian, exact_guide):
    """Constant log weights: ArviZ alone says inf (no tail to fit); psis_khat says 0, a perfect fit."""
    model, x = linear_gaussian
    khat = psis_khat(model, exact_guide, x, num_samples=500)
    assert khat.shape == (16,)
    assert torch.isfinite(khat).all()
    assert (khat < 0.5).all()
    assert (khat == CONSTANT_WEIGHTS_KHAT).all()
    _, arviz_khat = az.psislw(np.zeros((16, 500)))
    assert np.isinf(arviz_khat).all()  # why the constant case is handled explicitly


def test_guide_far_too_narrow_gets_large_khat(many_points):
    """q = N(mu, (0.1)^2 Sigma): w ~ exp(b z^2) has Pareto tail index 1 / (1 - c^2), k = 0.99."""
    model, x = many_points
    khat = psis_khat(model, ExactPosteriorGuide(model, scale_factor=0.1), x, num_samples=4000)
    assert khat.shape == (64,)
    se = khat.std().item() / math.sqrt(len(khat))
    assert khat.mean().item() - 4 * se > 0.7
    assert (khat > 0.7).float().mean().item() >= 0.9


def test_khat_matches_the_closed_form_tail_of_a_narrow_gaussian_guide(many_points):
    """For q = N(mu, c^2 Sigma) and p = N(mu, Sigma), P(w > t) ~ t^(-1/(1-c^2)), so k = 1 - c^2 = 0.75."""
    model, x = many_points
    khat = psis_khat(model, ExactPosteriorGuide(model, scale_factor=0.5), x, num_samples=4000)
    se = khat.std().item() / math.sqrt(len(khat))
    assert abs(khat.mean().item() - 0.75) < 4 * se


def test_overdispersed_guide_has_bounded_weights_and_small_khat(many_points):
    """q wider than p (c = 2): w = p/q is bounded, so k <= 0 in truth; every estimate is < 0.5."""
    model, x = many_points
    khat = psis_khat(model, ExactPosteriorGuide(model, scale_factor=2.0), x, num_samples=1000)
    assert (khat < 0.5).all()


def test_khat_agrees_with_arviz_psislw_on_the_same_log_weights():
    gen = torch.Generator().manual_seed(3)
    log_w = torch.randn(7, 800, generator=gen, dtype=torch.float64) * torch.linspace(0.5, 3.0, 7)[:, None]
    ours = khat_from_log_weights(log_w)
    _, theirs = az.psislw(log_w.numpy().copy())
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6)
    assert ours.shape == (7,)


def test_khat_of_a_guide_from_its_log_weights_equals_psis_khat_under_the_same_seed(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.5)
    pyro.set_rng_seed(5)
    a = psis_khat(model, guide, x, num_samples=300)
    pyro.set_rng_seed(5)
    b = khat_from_log_weights(log_weights_matrix(model, guide, x, num_samples=300))
    torch.testing.assert_close(a, b)


def test_minimum_number_of_samples_is_the_arviz_tail_requirement(linear_gaussian, exact_guide):
    assert psis_tail_length(MIN_PSIS_SAMPLES) > 4 >= psis_tail_length(MIN_PSIS_SAMPLES - 1)
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="num_samples must be an integer >= 21"):
        psis_khat(model, exact_guide, x, num_samples=10)


def test_bad_log_weights_are_clear_errors():
    with pytest.raises(ValueError, match=r"shape \[N, S\]"):
        khat_from_log_weights(torch.zeros(100))
    bad = torch.zeros(2, 100)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        khat_from_log_weights(bad)
    with pytest.raises(ValueError, match="constant_tol"):
        khat_from_log_weights(torch.randn(2, 100), constant_tol=-1.0)


def test_khat_summary_counts_each_range():
    khat = torch.tensor([0.1, 0.49, 0.5, 0.69, 0.7, 1.3, float("inf"), -0.2])
    rows = khat_summary(khat)
    assert [r["count"] for r in rows] == [3, 2, 3]
    assert math.isclose(sum(r["fraction"] for r in rows), 1.0)
    text = format_khat_summary(khat)
    assert "n=8" in text and "bad (k >= 0.7)" in text


def test_the_guide_draws_advance_a_commands_one_bar_to_its_total(linear_gaussian):
    from pyro_air.support.progress import JobProgress
    from pyro_air.guides import ExactPosteriorGuide

    model, x = linear_gaussian
    with JobProgress(len(x) * 40, disable=True) as job:
        psis_khat(model, ExactPosteriorGuide(model), x, num_samples=40, chunk_size=7, progress=True)
    assert job.done == len(x) * 40
