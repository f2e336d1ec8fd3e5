"""The amortization gap (pyro_air/evaluate/gaps.py) against the linear-Gaussian closed forms (Cremer et al. 2018):
ELBO[q*] - ELBO[q] = KL(q || p(z|x)) - KL(q* || p(z|x)), with q* the best diagonal Gaussian."""
import torch

from pyro_air.evaluate import amortization_gap
from pyro_air.evaluate.gaps import amortization_gap_work
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.models import LinearGaussianModel


def _mean_field_kl(model, x):
    """The best diagonal Gaussian for a Gaussian posterior N(mu, Lambda^-1) is N(mu, diag 1/Lambda_ii),
    with KL(q* || p(z|x)) = (sum_i log Lambda_ii - log det Lambda) / 2 (Bishop, PRML 10.1.2)."""
    precision = torch.linalg.inv(model.exact_posterior(x).covariance_matrix[0])
    return 0.5 * (precision.diagonal().log().sum() - torch.logdet(precision))


def test_amortization_gap_matches_the_closed_form(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.5, loc_shift=0.7)
    with torch.no_grad():
        kl_mean_field = _mean_field_kl(model, x)
        kl_amortized = torch.distributions.kl_divergence(poor.posterior(x), model.exact_posterior(x))
    expected = kl_amortized - kl_mean_field  # ELBO[q*] - ELBO[q] = KL(q || p) - KL(q* || p)
    torch.manual_seed(2)
    gap = amortization_gap(model, poor, x, num_steps=120, num_particles=20, elbo_samples=2000, lr=0.05)
    assert gap.shape == (len(x),)
    assert (gap - expected).abs().mean() < 0.05 * expected.mean() + 0.02
    assert (gap > 0).all()


def test_a_full_covariance_guide_can_have_a_negative_gap():
    """The exact posterior is a full-covariance Gaussian, and q* is searched among diagonal ones: the gap
    is -KL(q* || p(z|x)) < 0, not a failure of the optimizer (module docstring)."""
    weight = torch.tensor([[1.0, 0.8], [1.0, 1.2], [0.9, 1.0], [1.1, 1.0], [1.0, 0.9]])  # correlated posterior
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, weight=weight)
    x = model.marginal().sample((6,)).detach()
    with torch.no_grad():
        expected = -_mean_field_kl(model, x)
    assert expected < -0.5  # the posterior's correlation makes the mean-field optimum measurably worse
    torch.manual_seed(0)
    gap = amortization_gap(model, ExactPosteriorGuide(model), x, num_steps=150, num_particles=20, elbo_samples=2000,
                           lr=0.05)
    assert (gap < 0).all() and torch.allclose(gap, expected.expand(6), atol=0.15), (gap, expected)
    assert abs(gap.mean() - expected) < 0.03  # within Monte Carlo error of the closed form


def test_the_work_per_datapoint_counts_every_model_evaluation():
    assert amortization_gap_work(100, 10, 100) == 100 * 10 + 2 * 100
    assert amortization_gap_work(0, 10, 1) == 2
