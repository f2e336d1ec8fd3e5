import pyro
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import GaussianEncoder, HierarchicalGuide
from pyro_air.infer import AVO_ELBO, KLWarmup, LinearSchedule, MonteCarloELBO
from pyro_air.models import EnergyModel
from pyro_air.models.energies import MIXTURE_CENTRES

T = 3


def hvi(T=T):
    return HierarchicalGuide(5, 2, num_transitions=T, hidden=(8,), transition_hidden=8)


@pytest.mark.parametrize("t", [1, 2, 3])
def test_gradient_of_term_t_reaches_only_transition_t(linear_gaussian, t):
    model, x = linear_gaussian
    guide = hvi()
    terms, _ = AVO_ELBO(T).step_terms(model, guide, x)
    assert len(terms) == T
    terms[t - 1].sum().backward()
    for kernels in (guide.transitions, guide.reverse_kernels):
        for name, p in kernels.named_parameters():
            per_transition = p.grad.flatten(1).abs().sum(1)  # parameters are stacked [T, ...]
            assert per_transition[t - 1] > 0, name
            others = torch.cat([per_transition[: t - 1], per_transition[t:]])
            assert torch.all(others == 0), name
    head = guide.base.head.weight.grad
    assert head is None or torch.all(head == 0)  # q_0 is held fixed by the detach


def test_term_matches_eq4_by_hand_for_the_last_transition(linear_gaussian):
    """L_T = log p(x, z_T) + log r_T(z_{T-1}|z_T) - log q_T(z_T|z_{T-1})  (alpha_T = 1)."""
    model, x = linear_gaussian
    guide = hvi()
    pyro.set_rng_seed(4)
    terms, _ = AVO_ELBO(T).step_terms(model, guide, x)
    pyro.set_rng_seed(4)
    w = infer.log_importance_weights(model, guide, x)
    # log w = log p(x, z_T) + sum_t (log r_t - log q_t) - log q_0; remove every t < T part
    g, m = w.guide_trace.nodes, w.model_trace.nodes
    lp = lambda s: s["fn"].log_prob(s["value"]).squeeze(0)
    expected = w.log_w.squeeze(0) + lp(g["z_0"])
    for t in range(1, T):
        expected = expected - lp(m[f"z_{t - 1}"]) + lp(g[f"z_{t}"])
    assert torch.allclose(terms[-1], expected, atol=1e-4)


def test_intermediate_target_interpolates_likelihood(linear_gaussian):
    """L_t(alpha) is linear in alpha with slope log p(x | z_t): compare two schedules."""
    model, x = linear_gaussian
    guide = hvi(2)
    pyro.set_rng_seed(1)
    linear = AVO_ELBO(2).step_terms(model, guide, x)[0][0]
    pyro.set_rng_seed(1)
    w = infer.log_importance_weights(model, guide, x)  # same draws as above
    z_1 = w.guide_trace.nodes["z_1"]["value"].squeeze(0)
    pyro.set_rng_seed(1)
    square = AVO_ELBO(2, schedule=lambda p: p ** 2).step_terms(model, guide, x)[0][0]
    log_lik = model.likelihood(z_1).log_prob(x)
    assert torch.allclose(linear - square, (0.5 - 0.25) * log_lik, atol=1e-4)


def test_a_zero_is_exactly_the_hvi_elbo(linear_gaussian):
    model, x = linear_gaussian
    guide = hvi()
    for seed in range(3):
        torch.manual_seed(seed)
        avo = AVO_ELBO(T, a=0.0, num_particles=2).differentiable_loss(model, guide, x, num_data=50)
        torch.manual_seed(seed)
        plain = MonteCarloELBO(num_particles=2).differentiable_loss(model, guide, x, num_data=50)
        assert avo.item() == plain.item()


def test_loss_calibrated_choice_frequency(linear_gaussian):
    model, x = linear_gaussian
    guide = hvi()
    obj = AVO_ELBO(T, a=0.3, seed=7)
    chosen = [obj._rng.random() < 0.3 for _ in range(2000)]
    assert abs(sum(chosen) / 2000 - 0.3) < 3 * (0.3 * 0.7 / 2000) ** 0.5 + 1e-9
    assert torch.isfinite(obj.differentiable_loss(model, guide, x))


def test_avo_under_kl_warmup_and_registry(linear_gaussian):
    model, x = linear_gaussian
    guide = hvi()
    obj = KLWarmup(infer.build("avo", num_transitions=T), LinearSchedule(0.01, 1.0, 0.5))
    loss = obj.differentiable_loss(model, guide, x)
    loss.backward()
    assert torch.isfinite(loss)


def test_avo_rejects_bad_settings_and_guides(linear_gaussian):
    model, x = linear_gaussian
    with pytest.raises(ValueError, match="num_transitions"):
        AVO_ELBO(0)
    with pytest.raises(ValueError, match="a "):
        AVO_ELBO(2, a=1.5)
    with pytest.raises(ValueError, match="alpha_T = 1"):
        AVO_ELBO(2, schedule=lambda p: 0.5 * p)
    with pytest.raises(ValueError, match="does not match"):
        AVO_ELBO(2).differentiable_loss(model, hvi(3), x)
    with pytest.raises(ValueError, match="hierarchical guide"):
        AVO_ELBO(2).differentiable_loss(model, GaussianEncoder(5, 2, hidden=(8,)), x)


def modes_covered(z, min_share=0.075):
    nearest = torch.cdist(z, MIXTURE_CENTRES)
    near = nearest.min(1).values < 1.0
    counts = torch.bincount(nearest.argmin(1)[near], minlength=4)
    return int((counts >= min_share * len(z)).sum())


def test_avo_covers_more_modes_of_the_mixture_than_the_elbo():
    """Section 5.2 / Figure 3 at a small budget (T = 5, 150 updates at lr 1e-2, 3 seeds).

    Measured once (modes holding >= 7.5% of 2000 samples within distance 1 of a centre):
    ELBO 3 / 2 / 2, AVO 4 / 4 / 4. The margins are thin at this budget (the smallest counted AVO
    mode holds 155 samples against the threshold of 150), see experiments/avo/RESULTS.md.
    """
    model = EnergyModel("mixture4")
    covered = {"elbo": [], "avo": []}
    for seed in range(3):
        for name in covered:
            pyro.set_rng_seed(seed)
            guide = HierarchicalGuide(1, 2, num_transitions=5, amortized=False, transition_hidden=32)
            objective = MonteCarloELBO() if name == "elbo" else AVO_ELBO(5)
            opt = torch.optim.Adam(guide.parameters(), lr=1e-2)
            with pyro.validation_enabled(False):
                for _ in range(150):
                    opt.zero_grad()
                    objective.differentiable_loss(model, guide, torch.zeros(64, 1)).backward()
                    opt.step()
            with torch.no_grad():
                covered[name].append(modes_covered(guide(torch.zeros(2000, 1))))
    assert sum(covered["avo"]) > sum(covered["elbo"]), covered
    assert all(a >= e for a, e in zip(covered["avo"], covered["elbo"])), covered


def test_avo_step_choices_survive_a_checkpoint_round_trip():
    """The trainer saves AVO's step-choice stream, so a resumed run makes the same choices."""
    from pyro_air.infer import AVO_ELBO

    first = AVO_ELBO(num_transitions=3, a=0.5, seed=4)
    [first._rng.random() for _ in range(7)]
    saved = first.state_dict()
    expected = [first._rng.random() for _ in range(5)]
    resumed = AVO_ELBO(num_transitions=3, a=0.5, seed=4)
    resumed.load_state_dict(saved)
    assert [resumed._rng.random() for _ in range(5)] == expected
