"""The toy energy-fitting set-up of AVO (pyro_air/toys/avo_energies.py; sections 5.2-5.3) at a tiny budget: the
objectives it compares, training fixed by the seed, the layers' samples and the mode count of Figure 3.
AVO covering more modes than the ELBO is tested in tests/test_avo.py."""
import pytest
import torch

from pyro_air.guides import HierarchicalGuide
from pyro_air.infer import AVO_ELBO, MonteCarloELBO
from pyro_air.models import EnergyModel
from pyro_air.models.energies import MIXTURE_CENTRES
from pyro_air.toys import avo_energies


def test_the_compared_objectives():
    avo = avo_energies.make_objective("avo")
    assert isinstance(avo, AVO_ELBO) and avo.num_transitions == avo_energies.T
    assert isinstance(avo_energies.make_objective("elbo"), MonteCarloELBO)


def test_modes_are_counted_by_the_share_of_samples_nearest_each_centre():
    at_centres = MIXTURE_CENTRES.repeat(25, 1) + 0.1
    assert avo_energies.modes_covered(at_centres) == 4
    assert avo_energies.modes_covered(MIXTURE_CENTRES[:1].expand(100, 2)) == 1
    lopsided = torch.cat([MIXTURE_CENTRES[:1].expand(97, 2), MIXTURE_CENTRES[1:]])  # 1% in each of three modes
    assert avo_energies.modes_covered(lopsided) == 1
    assert avo_energies.modes_covered(lopsided, min_share=0.01) == 4


@pytest.mark.parametrize("method,anneal", [("avo", None), ("elbo", 0.5)])
def test_training_is_fixed_by_the_seed(method, anneal):
    runs = [avo_energies.train("mixture4", method, updates=3, anneal_fraction=anneal, seed=s, hidden=8)
            for s in (0, 0, 1)]
    (model, guide), (_, again), (_, other) = runs
    assert isinstance(model, EnergyModel) and model.energy == "mixture4"
    assert isinstance(guide, HierarchicalGuide) and guide.num_transitions == avo_energies.T
    state, same, different = (g.state_dict() for g in (guide, again, other))
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert any(not torch.equal(state[k], different[k]) for k in state)


def test_annealing_changes_the_updates():
    plain = avo_energies.train("u1", "elbo", updates=3, anneal_fraction=None, seed=0, hidden=8)[1].state_dict()
    annealed = avo_energies.train("u1", "elbo", updates=3, anneal_fraction=1.0, seed=0, hidden=8)[1].state_dict()
    assert any(not torch.equal(plain[k], annealed[k]) for k in plain)


def test_layer_samples_are_z_0_to_z_t_and_the_score_is_finite():
    model, guide = avo_energies.train("mixture4", "avo", updates=2, anneal_fraction=None, seed=0, hidden=8)
    layers = avo_energies.layer_samples(guide, n=50)
    assert len(layers) == avo_energies.T + 1 and all(z.shape == (50, 2) for z in layers)
    torch.manual_seed(0)
    score = avo_energies.negative_kl(model, guide, num_points=100, num_samples=20)
    torch.manual_seed(0)
    assert score == avo_energies.negative_kl(model, guide, num_points=100, num_samples=20)
    assert -50.0 < score < 1.0  # E_q[log f - log q_T] with f normalized: -KL, up to the estimator's upward bias
