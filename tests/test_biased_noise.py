"""The biased noise model of AVO section 5.1: quadrature log p(x), the IWAE bound with the prior as
proposal, and the bimodal posterior at x = [0, -1] that the paper's Figures 1-2 rely on."""
import math

import pyro
import pytest
import torch

from pyro_air.evaluate import log_likelihood, mean_stderr
from pyro_air.guides import HierarchicalGuide
from pyro_air.models import BiasedNoiseModel, build
from pyro_air.models.biased_noise import local_maxima

X_BIMODAL = torch.tensor([[0.0, -1.0]])


def prior_guide():
    """q(z | x) = p(z) = N(0, 1): the non-amortized hierarchical guide with T = 0."""
    return HierarchicalGuide(x_dim=2, z_dim=1, num_transitions=0, amortized=False, initial_scale=1.0)


def learned_model(seed=0):
    """A learned-decoder model moved away from its start: eta != 0.75 and a z-dependent sigma(z)."""
    torch.manual_seed(seed)
    model = BiasedNoiseModel(eta=0.6, noise_scale=0.15, learn=("eta", "scale"), hidden=[8])
    with torch.no_grad():
        model.scale_net[-1].weight.normal_(0.0, 0.2)
    return model


def grid_integral(model, half_width=2.2, num=111):
    """sum over a 2-D grid of x of p(x) dx1 dx2 (Riemann sum, grid spacing 0.04)."""
    xs = torch.linspace(-half_width, half_width, num)
    xx = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    return (model.log_marginal(xx).exp().sum() * (xs[1] - xs[0]) ** 2).item()


@pytest.mark.parametrize("make_model", [lambda: BiasedNoiseModel(), learned_model], ids=["data", "learned"])
def test_quadrature_density_integrates_to_one(make_model):
    model = make_model()
    with torch.no_grad():
        scale = model.scale(torch.linspace(-8, 8, 101).unsqueeze(-1))
    # a Riemann sum with spacing h <= sigma integrates a Gaussian to ~exp(-2 pi^2 sigma^2 / h^2) ~ 3e-9;
    # the box [-2.2, 2.2]^2 lies > 4 sigma outside the unit circle
    assert 0.04 < scale.min() and scale.max() < 0.3
    assert grid_integral(model) == pytest.approx(1.0, abs=2e-3)


def test_quadrature_matches_the_exact_gaussian_when_eta_is_tiny():
    """eta -> 0: theta(z) ~ pi eta z is linear and sin ~ theta, cos ~ 1, so x1 ~ N(0, (pi eta)^2 + s^2)."""
    eta, s = 1e-3, 0.1
    model = BiasedNoiseModel(eta=eta, noise_scale=s)
    x = torch.tensor([[0.0, 1.0], [0.05, 0.9], [-0.2, 1.1]])
    x1 = torch.distributions.Normal(0.0, ((torch.pi * eta) ** 2 + s ** 2) ** 0.5).log_prob(x[:, 0])
    x2 = torch.distributions.Normal(1.0, s).log_prob(x[:, 1])
    assert torch.allclose(model.log_marginal(x), x1 + x2, atol=1e-4)


def test_iwae_with_the_prior_is_below_quadrature_and_tightens_with_more_samples():
    pyro.set_rng_seed(0)
    model, guide = learned_model(), prior_guide()
    x = torch.cat([X_BIMODAL, model.sample_data(5, seed=1)])
    exact = model.log_marginal(x).mean()
    gaps = {}
    for num_samples in (10, 100, 10000):
        estimates = torch.stack([log_likelihood(model, guide, x, num_samples=num_samples, progress=False).mean()
                                 for _ in range(40)])
        gaps[num_samples] = mean_stderr(exact - estimates)
    for num_samples, gap in gaps.items():  # E[IWAE-S] <= log p(x): never significantly negative
        assert gap.mean > -3 * gap.stderr, (num_samples, gap)
    assert gaps[10].mean - gaps[100].mean > 3 * (gaps[10].stderr ** 2 + gaps[100].stderr ** 2) ** 0.5
    assert gaps[100].mean - gaps[10000].mean > 3 * (gaps[100].stderr ** 2 + gaps[10000].stderr ** 2) ** 0.5
    assert abs(gaps[10000].mean) < 3 * gaps[10000].stderr + 0.01


def test_the_posterior_at_zero_minus_one_is_bimodal_with_a_mode_in_each_tail():
    grid, density = BiasedNoiseModel().posterior_on_grid(X_BIMODAL)
    density = density[0]
    modes = grid[local_maxima(density, min_height=1e-3)]
    assert len(modes) == 2
    assert modes[0] == pytest.approx(-modes[1].item(), abs=1e-6) and modes[1] > 2.0
    between = density[grid.abs() < 1.0].max()
    assert between < 1e-3 * density.max()  # two separated modes: almost nothing between them
    h = grid[1] - grid[0]
    assert (density.sum() * h).item() == pytest.approx(1.0, abs=1e-4)
    assert (density[grid > 0].sum() * h).item() == pytest.approx(0.5, abs=1e-3)


def test_away_from_zero_minus_one_the_posterior_has_one_side():
    """Off the symmetry axis (x1 > 0 needs theta in (0, pi), i.e. z > 0) one tail takes the mass."""
    grid, density = BiasedNoiseModel().posterior_on_grid(torch.tensor([[0.3, -0.95], [0.0, 1.0]]))
    h = grid[1] - grid[0]
    assert (density[0, grid > 0].sum() * h).item() > 0.99
    top_modes = grid[local_maxima(density[1], min_height=1e-3)]
    assert top_modes.tolist() == [pytest.approx(0.0, abs=1e-6)]  # x = [0, 1] comes from z = 0 only


def test_sample_data_lies_near_the_unit_circle():
    """x2 > 0 iff |theta| < pi / 2 iff |z| < atanh(1/2) / eta (up to the noise, symmetric about x2 = 0)."""
    n = 20000
    x = BiasedNoiseModel().sample_data(n, seed=0)
    assert x.norm(dim=-1).mean().item() == pytest.approx(1.0, abs=0.01)
    expected = 2 * torch.distributions.Normal(0.0, 1.0).cdf(torch.tensor(math.atanh(0.5) / 0.75)) - 1  # 0.536
    stderr = (expected * (1 - expected) / n) ** 0.5
    assert abs((x[:, 1] > 0).float().mean() - expected) < 3 * stderr


@pytest.mark.parametrize("cfg,match", [
    (dict(eta=0.0), "eta"), (dict(noise_scale=-1.0), "noise_scale"), (dict(learn=("mean",)), "learn"),
    (dict(x_dim=3), "x_dim=2, z_dim=1"), (dict(noise_scale=1e-4), "min_scale"),
])
def test_bad_hyperparameters_raise(cfg, match):
    with pytest.raises(ValueError, match=match):
        build("biased-noise", **cfg)


def test_only_the_named_parts_are_learned():
    assert not list(BiasedNoiseModel().parameters())
    assert [n for n, _ in BiasedNoiseModel(learn="eta").named_parameters()] == ["log_eta"]
    assert BiasedNoiseModel(eta=0.75, learn=("eta", "scale")).eta.item() == pytest.approx(0.75)
