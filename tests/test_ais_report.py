"""What ``pyro-air evaluate`` computes and prints for its AIS, BDMC and gap options
(pyro_air/evaluate/ais_report.py), on the linear-Gaussian model, where AIS from the exact posterior is exact."""
from types import SimpleNamespace

import pytest
import torch

from pyro_air.evaluate import mean_stderr
from pyro_air.evaluate.ais_report import ais_columns, ais_report
from pyro_air.guides import ExactPosteriorGuide


def _args(**overrides):
    """The options as the command line passes them (pyro_air/cli/ais_options.py), at a tiny budget."""
    return SimpleNamespace(**{"ais_steps": 8, "ais_chains": 2, "ais_leapfrog": 1, "ais_from": "guide", "gaps": False,
                              "gap_steps": 3, "bdmc": False, "bdmc_points": 2, "no_progress": True, "seed": 0,
                              **overrides})


def test_ais_from_the_exact_posterior_gives_log_px_at_any_number_of_steps(linear_gaussian, exact_guide):
    """Every intermediate target p(x, z)^b q(z)^(1-b) is then the posterior: each annealing weight is
    p(x)^(b_t - b_(t-1)), whatever the HMC moves do, and they multiply to p(x)."""
    model, x = linear_gaussian
    cols = ais_columns(model, exact_guide, x, _args())
    exact = model.exact_log_likelihood(x).detach()
    assert set(cols) == {"log_px_ais", "nll_ais"}
    assert torch.allclose(cols["log_px_ais"], exact, atol=1e-3)
    assert cols["nll_ais"] == mean_stderr(-cols["log_px_ais"])
    assert cols["nll_ais"].mean == pytest.approx(-exact.mean().item(), abs=1e-3)


def test_ais_from_the_prior_is_a_stochastic_lower_bound(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    cols = ais_columns(model, exact_guide, x, _args(ais_from="prior"))
    exact = model.exact_log_likelihood(x).detach()
    assert torch.isfinite(cols["log_px_ais"]).all()
    assert cols["log_px_ais"].mean() < exact.mean()  # E[log Z_hat] <= log Z (Jensen); 8 steps leave a visible gap


def test_the_same_seed_gives_the_same_column(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    args = _args(ais_from="prior", seed=3)
    first = ais_columns(model, exact_guide, x, args)["log_px_ais"]
    assert torch.equal(first, ais_columns(model, exact_guide, x, args)["log_px_ais"])
    assert not torch.equal(first, ais_columns(model, exact_guide, x, _args(ais_from="prior", seed=4))["log_px_ais"])


def test_the_gap_columns_decompose_log_px(linear_gaussian):
    model, x = linear_gaussian
    x = x[:4]
    cols = ais_columns(model, ExactPosteriorGuide(model), x, _args(gaps=True))
    gaps = cols["gaps"]
    assert torch.equal(cols["log_px_ais"], gaps["log_px"])
    torch.testing.assert_close(gaps["elbo_amortized"] + gaps["amortization_gap"] + gaps["approximation_gap"],
                               gaps["log_px"], atol=1e-4, rtol=0)


def test_the_report_names_the_settings_every_split_bdmc_and_the_gap_plot(linear_gaussian, exact_guide, tmp_path):
    model, x = linear_gaussian
    plot = tmp_path / "gaps.png"
    text = ais_report(model, exact_guide, {"valid": x[:4], "test": x[4:8]}, _args(bdmc=True, gaps=True), plot)
    lines = text.splitlines()
    assert lines[1] == ("AIS with HMC from q(z | x): T=8 steps, C=2 chains, L=1 leapfrog steps; mean ± standard "
                        "error, nats")
    assert lines[2].startswith("  valid: -log p(x) (AIS) = ") and lines[3].startswith("  test: -log p(x) (AIS) = ")
    assert any(line.startswith("BDMC on 2 points simulated from the model: forward AIS ") for line in lines)
    assert any(line.startswith("gap decomposition (Cremer et al. 2018)") and "(3 Adam steps" in line for line in lines)
    assert lines[-1] == f"gap plot: {plot}" and plot.read_bytes()[:4] == b"\x89PNG"


def test_the_report_without_bdmc_or_gaps_is_the_columns_alone(linear_gaussian, exact_guide, tmp_path):
    model, x = linear_gaussian
    text = ais_report(model, exact_guide, {"test": x[:3]}, _args(ais_from="prior"), tmp_path / "unused.png")
    assert "from p(z)" in text and "BDMC" not in text and "gap" not in text
    assert len(text.splitlines()) == 3 and not (tmp_path / "unused.png").exists()
