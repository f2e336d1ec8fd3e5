"""Latent-space metrics against known answers on the linear-Gaussian model, and the CLI flag.

With x ~ p(x) and the exact posterior as guide, the aggregate posterior is the prior N(0, I), so
log det Cov[q(z)] = 0; with the posterior's scale multiplied by s it is
log det(I + (s^2 - 1) S), S = Cov[z | x] = M^{-1}. The per-dimension activity Var_x E[z_j | x] is
the diagonal of I - S, and I_q(x; z) = (1/2) log det M (a Gaussian channel).
"""
import math

import torch

from pyro_air.cli import main
from pyro_air.evaluate import (
    active_units,
    aggregate_log_det_cov,
    latent_mmd,
    mutual_information,
)
from pyro_air.evaluate.latent_metrics import log_det_cov
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.models import LinearGaussianModel

N = 8000


def model_and_data(weight=None, n=N, seed=1):
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, weight=weight, seed=seed)
    x = model.marginal().sample((n,)).detach()
    return model, x


def posterior_cov(model):
    precision = torch.eye(2) + model.weight.T @ model.weight / model.noise_scale ** 2
    return torch.linalg.inv(precision).detach()


def test_log_det_cov_of_gaussian_samples():
    torch.manual_seed(0)
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]])
    z = torch.distributions.MultivariateNormal(torch.zeros(2), cov).sample((N,))
    out = log_det_cov(z)
    # the log det of a sample covariance has standard deviation ~ sqrt(2 d / n) = 0.022 here
    assert abs(out["log_det_cov"] - torch.logdet(cov).item()) < 0.1
    assert out["log_det_cov_per_dim"] == out["log_det_cov"] / 2
    assert torch.allclose(out["log_var"], torch.diagonal(cov).log(), atol=0.1)


def test_aggregate_posterior_of_the_exact_guide_is_the_prior():
    model, x = model_and_data()
    assert abs(aggregate_log_det_cov(ExactPosteriorGuide(model), x)["log_det_cov"]) < 0.1
    s = posterior_cov(model)
    wider = aggregate_log_det_cov(ExactPosteriorGuide(model, scale_factor=3.0), x)["log_det_cov"]
    assert abs(wider - torch.logdet(torch.eye(2) + 8.0 * s).item()) < 0.1


def test_active_units_and_mutual_information_of_the_exact_posterior():
    model, x = model_and_data(n=1000)
    guide = ExactPosteriorGuide(model)
    out = active_units(guide, x)
    expected_activity = torch.diagonal(torch.eye(2) - posterior_cov(model))
    assert out["active_units"] == 2
    # sample variance of n = 1000 Gaussian means: relative s.e. sqrt(2 / n) = 0.045
    assert torch.allclose(out["activity"], expected_activity, rtol=0.15)
    expected_mi = -0.5 * torch.logdet(posterior_cov(model)).item()
    mi = mutual_information(guide, x, chunk_size=500)
    # measured over seeds at n = 1000: s.d. ~0.05 and a bias ~ -0.04 (the mixture over n points)
    assert abs(mi - expected_mi) < 0.2 and mi < math.log(len(x))


def test_a_guide_that_ignores_x_has_no_information_and_no_active_units():
    model, x = model_and_data(weight=torch.zeros(5, 2), n=200)  # p(z | x) = p(z) for every x
    guide = ExactPosteriorGuide(model)
    assert active_units(guide, x)["active_units"] == 0
    assert abs(mutual_information(guide, x)) < 1e-5


def test_full_data_mmd_is_near_zero_for_the_exact_guide_and_grows_with_a_shift():
    model, x = model_and_data(n=2000)
    exact = latent_mmd(model, ExactPosteriorGuide(model), x)
    shifted = latent_mmd(model, ExactPosteriorGuide(model, loc_shift=0.5), x)
    further = latent_mmd(model, ExactPosteriorGuide(model, loc_shift=1.0), x)
    assert abs(exact) < 5e-4 < shifted < further


def test_mutual_information_does_not_depend_on_the_chunk_size():
    model, x = model_and_data(n=300)
    guide = ExactPosteriorGuide(model)
    torch.manual_seed(3)
    a = mutual_information(guide, x, chunk_size=7)
    torch.manual_seed(3)
    b = mutual_information(guide, x, chunk_size=1000)
    assert abs(a - b) < 1e-5


def test_cli_evaluate_with_latent_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--train-size", "200", "--epochs", "1", "--batch-size", "50", "--z-dim", "3",
                 "--hidden", "16", "--objective", "infovae", "--objective-cfg", '{"lam": 100}',
                 "--valid-size", "50", "--valid-num-samples", "2", "--no-progress", "--run-dir", str(run)]) == 0
    assert main(["evaluate", str(run), "--num-samples", "2", "--max-points", "40", "--latent-metrics",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "log det Cov" in out and "active units" in out and "I(x;z)" in out and "/3" in out


def test_log_det_cov_with_fewer_points_than_dimensions_is_not_a_measurement():
    """n <= d points give a singular sample covariance: NaN (printed "n<=d"), never a fake -inf."""
    from pyro_air.evaluate.latent_metrics import format_latent_metrics, log_det_cov

    z = torch.randn(5, 8)
    out = log_det_cov(z)
    assert math.isnan(out["log_det_cov"]) and math.isnan(out["log_det_cov_per_dim"])
    assert out["log_var"].shape == (8,) and torch.isfinite(out["log_var"]).all()
    row = {"mmd": 0.01, "log_det_cov": out["log_det_cov"], "log_det_cov_per_dim": out["log_det_cov_per_dim"],
           "active_units": 3, "z_dim": 8}
    assert "n<=d" in format_latent_metrics({"test": row})
    assert math.isfinite(log_det_cov(torch.randn(50, 8))["log_det_cov"])
