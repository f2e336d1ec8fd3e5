"""IW-SVI, the amortization gap and the upper bounds, against the linear-Gaussian closed forms."""
import pyro.distributions as dist
import pytest
import torch

from pyro_air.cli import main
from pyro_air.evaluate import (
    LocalGaussianGuide,
    amortization_gap,
    iw_svi,
    log_likelihood,
    upper_bound,
)
from pyro_air.guides import AmortizedGuide, ExactPosteriorGuide
from pyro_air.evaluate.gap_decomposition import mean_field_gaussian_optimum
from pyro_air.evaluate.iw_svi import local_fit


def test_iw_svi_beats_iwae_with_a_poor_amortized_guide(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=0.4, loc_shift=1.0)
    exact = model.exact_log_likelihood(x).detach()
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(0)
    amortized = log_likelihood(model, poor, x, num_samples=20)
    refined = iw_svi(model, poor, x, num_steps=40, k_train=10, k_eval=20, lr=0.1, batch_size=7)
    assert refined.shape == (len(x),)
    err_amortized, err_refined = (exact - amortized).mean().item(), (exact - refined).mean().item()
    assert err_refined < 0.2 * err_amortized, (err_refined, err_amortized)
    assert err_refined > -0.05  # still a lower bound (within MC error)
    # the model is fixed: unchanged and without gradients
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


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


def test_exact_guide_makes_upper_bounds_exact(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x)
    for method in ("cubo", "vr"):
        assert torch.allclose(upper_bound(model, exact_guide, x, method=method, num_samples=30), exact, atol=1e-4)


def test_upper_bounds_sandwich_log_px(linear_gaussian):
    model, x = linear_gaussian
    broad = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.2)
    exact = model.exact_log_likelihood(x).detach()
    torch.manual_seed(3)
    cubo = upper_bound(model, broad, x, method="cubo", n=2, num_samples=5000, chunk_size=2500)
    torch.manual_seed(3)
    vr = upper_bound(model, broad, x, method="vr", alpha=-1.0, num_samples=5000, chunk_size=2500)
    assert torch.allclose(cubo, vr, atol=1e-4)  # CUBO_2 is VR at alpha = -1, same samples
    lower = log_likelihood(model, broad, x, num_samples=5)
    assert (cubo - exact).mean() > 0 and (exact - lower).mean() > 0
    # larger n gives a looser (higher) bound (Dieng et al.: the CUBO-ELBO gap grows with n)
    torch.manual_seed(3)
    cubo3 = upper_bound(model, broad, x, method="cubo", n=3, num_samples=5000, chunk_size=2500)
    assert (cubo3 >= cubo - 1e-5).all()


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "chi"}, "unknown upper-bound method"),
    ({"method": "cubo", "n": 1.0}, "n > 1"),
    ({"method": "vr", "alpha": 0.5}, "alpha < 0"),
])
def test_upper_bound_errors(linear_gaussian, exact_guide, kwargs, match):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match=match):
        upper_bound(model, exact_guide, x, num_samples=5, **kwargs)


class _StudentGuide(AmortizedGuide):
    def posterior(self, x):
        return dist.StudentT(3.0, torch.zeros(len(x), self.z_dim), 1.0).to_event(1)


def test_any_guide_gets_per_datapoint_gaussians_that_reach_the_mean_field_optimum(linear_gaussian):
    """A Student-t encoder has no Gaussian posterior(x): the local fit (local_guides.py) starts at the
    moments of its draws and, on the ELBO, reaches the best diagonal Gaussian of the exact Gaussian
    posterior (loc mu, scale 1 / sqrt(Lambda_ii)); IW-SVI from it is close to the exact log p(x)."""
    model, x = linear_gaussian
    x = x[:4]
    student = _StudentGuide(model.x_dim, model.z_dim)
    torch.manual_seed(0)
    local = local_fit(model, student, x, 1500, 100, "elbo", 0.03)
    post = model.exact_posterior(x)
    loc, scale, _ = mean_field_gaussian_optimum(post.loc, post.covariance_matrix)
    assert torch.allclose(local.loc["z"], loc, atol=0.05)
    assert torch.allclose(local.log_scale["z"].exp(), scale, rtol=0.1)
    torch.manual_seed(1)
    fitted = iw_svi(model, student, x, num_steps=200, k_train=10, k_eval=500, lr=0.05)
    assert (fitted - model.marginal().log_prob(x)).abs().mean() < 0.1


def test_iw_svi_refuses_a_guide_without_local_latents_in_one_line(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="no local latent site") as err:
        iw_svi(model, lambda x, num_data=None: None, x, num_steps=1, k_eval=2)
    assert "\n" not in str(err.value)


def test_local_guide_rejects_another_batch(linear_gaussian):
    model, x = linear_gaussian
    local = LocalGaussianGuide(torch.zeros(4, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="holds 4 datapoints"):
        log_likelihood(model, local, x, num_samples=2)


def test_cli_evaluate_adds_the_optional_columns(tiny_cli_run, capsys):
    run = tiny_cli_run
    assert main(["evaluate", str(run), "--num-samples", "10", "--max-points", "12", "--no-progress"]) == 0
    plain = capsys.readouterr().out
    assert "IW-SVI" not in plain and "upper bound" not in plain  # off by default
    assert main(["evaluate", str(run), "--num-samples", "10", "--max-points", "12", "--no-progress",
                 "--iw-svi-steps", "3", "--iw-svi-k-train", "4", "--amortization-gap-steps", "3",
                 "--upper-bound", "cubo"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith(" ") and "-ELBO" in line)
    assert "-IW-SVI" in header and "-upper bound" in header and "amort. gap" in header
