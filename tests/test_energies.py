"""The 2-D target densities of AVO (pyro_air/models/energies.py; Table 2, Fig. 3) as Pyro models:
the energies at known points, the mixtures' normalization, and log p(x, z) = log f(z)."""
import math

import pytest
import torch
from pyro import poutine

from pyro_air.models import EnergyModel
from pyro_air.models.energies import ENERGIES, MIXTURE_CENTRES, u1, u3, u4, u5, u6


def _grid(limit=7.0, n=561):
    axis = torch.linspace(-limit, limit, n, dtype=torch.float64)
    z = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return z, (axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("name", ["u4", "mixture4"])
def test_the_mixtures_are_normalized_densities(name):
    z, cell = _grid()
    mass = (ENERGIES[name](z).exp().sum() * cell).item()
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_the_equal_mixture_peaks_at_its_four_centres():
    at_centres = ENERGIES["mixture4"](MIXTURE_CENTRES)
    one_mode = math.log(0.25) - math.log(2 * math.pi * 0.2)  # each mode's own density at its centre; the rest ~ 0
    torch.testing.assert_close(at_centres, torch.full((4,), one_mode), atol=1e-4, rtol=0)
    assert (ENERGIES["mixture4"](torch.zeros(1, 2)) < at_centres.min() - 5).all()


def test_energies_at_points_of_their_closed_forms():
    on_ring = torch.tensor([[2.0, 0.0], [0.0, 2 * math.sqrt(2)]])  # sqrt(z1^2 + z2^2 / 2) = 2
    assert u3(on_ring).abs().max() < 1e-6
    assert u3(torch.tensor([[0.0, 0.0]])).item() == pytest.approx(-4.0)
    on_sine = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # z2 = sin(pi z1 / 2)
    assert u5(on_sine).tolist() == pytest.approx([0.0, -0.1])
    ridge = torch.tensor([[2.0, -3.0]])  # z2 = w1 - w2 with w1 = sin(pi) = 0, w2 = 3 at z1 = 2: u6's second branch
    assert u6(ridge).item() == pytest.approx(math.log(1 + math.exp(-0.5 * (3 / 0.35) ** 2)) - 0.2, abs=1e-6)
    assert u4(torch.tensor([[0.0, 2.0]])).item() > u4(torch.tensor([[-2.0, 0.0]])).item()  # weights 0.4 and 0.1


def test_u1_is_symmetric_in_z1_and_every_energy_broadcasts():
    z = torch.randn(4, 7, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(u1(z), u1(z * torch.tensor([-1.0, 1.0])))
    for name, energy in ENERGIES.items():
        assert energy(z).shape == (4, 7), name


@pytest.mark.parametrize("name", sorted(ENERGIES))
def test_the_models_joint_density_is_the_target(name):
    """log p(z) + factor = log f(z): the reference N(0, s^2 I) cancels."""
    model = EnergyModel(name, reference_scale=1.5)
    x = torch.zeros(6, 1)
    trace = poutine.trace(model).get_trace(x)
    trace.compute_log_prob()
    z = trace.nodes["z"]["value"]
    torch.testing.assert_close(trace.nodes["z"]["log_prob"] + trace.nodes["x"]["log_prob"], ENERGIES[name](z),
                               atol=1e-4, rtol=1e-5)
    assert trace.nodes["z"]["fn"].base_dist.scale.unique().tolist() == [1.5]


def test_the_batch_sets_how_many_samples_and_its_values_are_ignored():
    model = EnergyModel("u2")
    torch.manual_seed(0)
    a = poutine.trace(model).get_trace(torch.zeros(3, 1)).nodes["z"]["value"]
    torch.manual_seed(0)
    b = poutine.trace(model).get_trace(torch.full((3, 1), 9.0)).nodes["z"]["value"]
    assert a.shape == (3, 2) and torch.equal(a, b)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown energy 'u7'; use one of mixture4, u1, u2, u3, u4, u5, u6"):
        EnergyModel("u7")
    with pytest.raises(ValueError, match="reference_scale must be > 0, got 0"):
        EnergyModel("u1", reference_scale=0)
