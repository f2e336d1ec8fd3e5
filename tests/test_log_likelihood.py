"""log_likelihood and elbo against the exact linear-Gaussian values."""
import torch

from pyro_air.evaluate import elbo, log_likelihood, summarize
from pyro_air.guides import ExactPosteriorGuide


def test_exact_posterior_guide_gives_exact_log_likelihood(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    estimate = log_likelihood(model, exact_guide, x, num_samples=64, chunk_size=7)
    exact = model.exact_log_likelihood(x)
    assert estimate.shape == (len(x),)
    assert torch.allclose(estimate, exact, atol=1e-4)


def test_poor_guide_is_below_and_approaches_exact(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.6, loc_shift=0.4)
    exact = model.exact_log_likelihood(x).detach()
    gaps = []
    for s in (1, 10, 100, 2000):
        torch.manual_seed(0)
        gaps.append((exact - log_likelihood(model, poor, x, num_samples=s)).mean().item())
    assert all(g > 0 for g in gaps), gaps  # a lower bound in expectation (clearly so here)
    assert gaps == sorted(gaps, reverse=True), gaps  # tightens with more samples
    assert gaps[-1] < 0.5 * gaps[0]


def test_chunking_does_not_change_the_estimate(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.7)
    torch.manual_seed(3)
    a = log_likelihood(model, poor, x, num_samples=50, chunk_size=50, batch_size=16)
    torch.manual_seed(3)
    b = log_likelihood(model, poor, x, num_samples=50, chunk_size=50, batch_size=16)
    assert torch.equal(a, b)
    c = log_likelihood(model, poor, x, num_samples=50, chunk_size=9, batch_size=5)
    # different chunking draws different samples; the estimates agree within MC error
    assert (a - c).abs().mean() < 0.5


def test_elbo_is_below_log_likelihood(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.6, loc_shift=0.4)
    lower = elbo(model, poor, x, num_samples=500)
    log_px = log_likelihood(model, poor, x, num_samples=500)
    assert lower.shape == (len(x),)
    assert (lower < log_px).all()
    # the ELBO's gap to log p(x) is KL(q || p(z|x)) > 0 per datapoint
    assert (model.exact_log_likelihood(x) - lower).min() > 0


def test_summary_gap_equals_difference_of_means(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.6)
    row = summarize(model, poor, x, num_samples=100)
    assert abs(row["inference_gap"].mean - (row["neg_elbo"].mean - row["nll"].mean)) < 1e-6
    assert row["nll"].n == len(x) and row["nll"].stderr > 0
