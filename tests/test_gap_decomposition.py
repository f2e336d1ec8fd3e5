"""The gap decomposition (Cremer, Li & Duvenaud 2018) against the linear-Gaussian closed forms.

For the posterior N(mu, Sigma), Lambda = Sigma^-1, the diagonal Gaussian maximizing the ELBO is
N(mu, diag(1 / Lambda_ii)) (the ELBO is log p(x) - KL(q || p(z | x)); setting the gradient of the
KL in the mean and in each log-variance to zero gives m = mu and s_i^2 = 1 / Lambda_ii), and

    approximation gap = KL(q* || p(z|x)) = (sum_i log Lambda_ii - log det Lambda) / 2,

the same for every x. With a correlated posterior (corr = -0.92 below) this is 0.92 nats.
"""
import pytest
import torch
import torch.distributions as tdist

from pyro_air.evaluate import (
    format_gap_table,
    gap_decomposition,
    optimal_local_elbo,
    plot_gaps,
)
from pyro_air.evaluate.gap_decomposition import mean_field_gaussian_optimum
from pyro_air.guides import ExactPosteriorGuide, GaussianEncoder
from pyro_air.models import BernoulliVAE, LinearGaussianModel


@pytest.fixture
def correlated():
    """A linear-Gaussian model whose posterior has correlation -0.92 between its two latents."""
    gen = torch.Generator().manual_seed(0)
    column = torch.randn(5, 1, generator=gen)
    weight = torch.cat([column, 0.8 * column + 0.4 * torch.randn(5, 1, generator=gen)], 1)
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, weight=weight)
    x = model.marginal().sample((12,)).detach()
    with torch.no_grad():
        posterior = model.exact_posterior(x)
        loc, scale, kl = mean_field_gaussian_optimum(posterior.loc, posterior.covariance_matrix)
    return model, x, posterior, loc, scale, kl


def test_the_mean_field_optimum_is_the_closed_form(correlated):
    """Check the closed form itself: a perturbation of q* in mean or scale lowers the ELBO, i.e.
    raises KL(q || p(z | x)) computed exactly."""
    _, _, posterior, loc, scale, kl = correlated
    assert torch.allclose(kl, kl[0].expand_as(kl)) and 0.85 < kl[0] < 1.0

    def kl_diag(m, s):
        return tdist.kl_divergence(tdist.MultivariateNormal(m, scale_tril=torch.diag_embed(s)), posterior)

    assert torch.allclose(kl_diag(loc, scale), kl, atol=1e-4)
    for dm, ds in [(0.05, 1.0), (-0.05, 1.0), (0.0, 1.1), (0.0, 0.9)]:
        assert (kl_diag(loc + dm, scale * ds) > kl + 1e-4).all()


def test_optimal_local_elbo_finds_the_exact_optimum(correlated):
    """Warm-started from a poor amortized guide (loc off by 0.5, scales doubled), 500 Adam steps:
    the fitted mean within 0.1 of mu (posterior sds 0.42, 0.65), scales within 15% of
    1 / sqrt(Lambda_ii), and L[q*] within 0.05 nats of log p(x) - KL (mean over 12 points; 0.15 each).
    Seeds 0-2: mean error <= 0.03, scales within 5%, L[q*] within 0.006 on average, 0.035 each."""
    model, x, _, loc, scale, kl = correlated
    poor = ExactPosteriorGuide(model, scale_factor=2.0, loc_shift=0.5)
    value, fit_loc, fit_scale = optimal_local_elbo(model, poor, x, num_steps=500, num_particles=20, lr=0.02,
                                                   elbo_samples=4000, seed=0, return_fits=True)
    expected = model.exact_log_likelihood(x).detach() - kl
    assert (fit_loc - loc).abs().max() < 0.1
    assert ((fit_scale / scale) - 1).abs().max() < 0.15
    assert abs((value - expected).mean()) < 0.05
    assert (value - expected).abs().max() < 0.15


def test_gap_decomposition_matches_the_closed_forms(correlated):
    """With q_phi = N(mu + 0.5, (2 Sigma)) (full covariance, poor): inference gap = KL(q_phi || p),
    approximation gap = KL(q* || p) (0.92), amortization gap = their difference (11.09). Tolerances
    on the means over 12 points: approximation gap within 0.1 nats, amortization and inference gaps
    within 0.2 nats (seeds 0-2: errors <= 0.05, 0.04 and 0.06)."""
    model, x, posterior, _, _, kl = correlated
    poor = ExactPosteriorGuide(model, scale_factor=2.0 ** 0.5, loc_shift=0.5)
    with torch.no_grad():
        kl_amortized = tdist.kl_divergence(poor.posterior(x), posterior)
    result = gap_decomposition(model, poor, x, ais_steps=100, ais_chains=16, ais_leapfrog=5, local_steps=500,
                               local_particles=20, local_lr=0.02, elbo_samples=4000, seed=0)
    assert set(result) >= {"log_px", "elbo_optimal", "elbo_amortized", "approximation_gap", "amortization_gap"}
    assert all(v.shape == (len(x),) for v in result.values())
    approx, amort, inference = (result[k].mean() for k in ("approximation_gap", "amortization_gap", "inference_gap"))
    assert abs(approx - kl.mean()) < 0.1
    assert abs(amort - (kl_amortized - kl).mean()) < 0.2
    assert abs(inference - kl_amortized.mean()) < 0.2
    assert torch.allclose(result["approximation_gap"] + result["amortization_gap"], result["inference_gap"], atol=1e-4)


def test_orderings_table_and_plot_on_a_small_vae(tmp_path):
    """On a small (untrained) Bernoulli VAE: log p(x) >= L[q*] >= L[q_phi] on average, as the
    definitions require once AIS and the local fit have converged; the table and the plot."""
    torch.manual_seed(0)
    model = BernoulliVAE(x_dim=784, z_dim=4, hidden=(32,))
    guide = GaussianEncoder(x_dim=784, z_dim=4, hidden=(32,))
    x = torch.bernoulli(torch.full((6, 784), 0.2), generator=torch.Generator().manual_seed(0))
    result = gap_decomposition(model, guide, x, ais_steps=50, ais_chains=8, ais_leapfrog=5, local_steps=200,
                               local_particles=10, local_lr=0.05, elbo_samples=500, seed=0)
    assert result["amortization_gap"].mean() > 0.1
    assert result["approximation_gap"].mean() > -0.1
    table = format_gap_table({"VAE, train": result, "VAE, test": result})
    assert "approx. gap" in table and "amort. gap" in table and "VAE, test" in table
    path = tmp_path / "gaps.png"
    plot_gaps({"VAE, train": result}, path)
    assert path.stat().st_size > 1000


def test_bad_input(correlated):
    model, x, *_ = correlated
    guide = ExactPosteriorGuide(model)
    with pytest.raises(ValueError, match="num_steps"):
        optimal_local_elbo(model, guide, x, num_steps=-1)
    with pytest.raises(ValueError, match=r"expects x of shape \[B, 5\]"):   # the model's own check
        optimal_local_elbo(model, guide, x[0])
    with pytest.raises(ValueError, match="elbo_samples"):
        gap_decomposition(model, guide, x, elbo_samples=0)
    with pytest.raises(ValueError, match="num_chains"):
        gap_decomposition(model, guide, x, ais_chains=0)
    with pytest.raises(ValueError, match="at least one row"):
        plot_gaps({}, "unused.png")
