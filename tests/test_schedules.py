import pytest
import torch

from pyro_air import infer
from pyro_air.guides import GaussianEncoder, HierarchicalGuide
from pyro_air.infer import (
    IWAE_ELBO,
    ConstantSchedule,
    KLWarmup,
    LinearSchedule,
    MonteCarloELBO,
)


def test_linear_schedule_start_midway_end_and_after():
    s = LinearSchedule(0.2, 1.0, fraction=0.5)
    assert s(0.0) == pytest.approx(0.2)
    assert s(0.25) == pytest.approx(0.6)   # half of the ramp
    assert s(0.5) == pytest.approx(1.0)
    assert s(0.9) == pytest.approx(1.0)    # constant after the ramp
    assert LinearSchedule(0.0, 1.0, 1.0)(0.3) == pytest.approx(0.3)
    assert LinearSchedule(0.0, 1.0, 0.0)(0.0) == 1.0   # no annealing at all
    assert ConstantSchedule(0.7)(0.4) == 0.7


@pytest.mark.parametrize("bad", [dict(fraction=1.5), dict(fraction=-0.1), dict(start="a")])
def test_linear_schedule_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        LinearSchedule(**bad)
    with pytest.raises(ValueError, match="progress"):
        LinearSchedule()(1.2)


@pytest.mark.parametrize("objective", [MonteCarloELBO(num_particles=3), IWAE_ELBO(num_particles=4)])
def test_warmup_at_beta_one_equals_the_plain_objective(linear_gaussian, objective):
    model, x = linear_gaussian
    guide = GaussianEncoder(5, 2, hidden=(8,))
    warm = KLWarmup(objective, ConstantSchedule(1.0))
    torch.manual_seed(3)
    plain = objective.differentiable_loss(model, guide, x, num_data=100)
    torch.manual_seed(3)
    warmed = warm.differentiable_loss(model, guide, x, num_data=100)
    assert warmed.item() == plain.item()


def test_warmup_scales_the_kl_part_by_beta(linear_gaussian):
    """With one particle: -loss = (N/B) sum_b [log p(x|z) + beta (log p(z) - log q(z|x))]  (Eq. 2)."""
    model, x = linear_gaussian
    guide = GaussianEncoder(5, 2, hidden=(8,))
    warm = KLWarmup(MonteCarloELBO(), LinearSchedule(0.0, 1.0, 0.5))
    warm.set_progress(0.15)
    assert warm.beta == pytest.approx(0.3)
    torch.manual_seed(5)
    weights = infer.log_importance_weights(model, guide, x)
    site = lambda tr, name: tr.nodes[name]["fn"].log_prob(tr.nodes[name]["value"]).squeeze(0)
    log_lik = site(weights.model_trace, "x")
    kl_part = site(weights.model_trace, "z") - site(weights.guide_trace, "z")
    torch.manual_seed(5)
    loss = warm.differentiable_loss(model, guide, x)
    assert loss.item() == pytest.approx(-(log_lik + 0.3 * kl_part).sum().item(), rel=1e-5)


def test_warmup_with_a_hierarchical_guide_and_the_training_loop_advances_beta(linear_gaussian):
    from pyro_air.train import TrainConfig, fit
    model, x = linear_gaussian
    guide = HierarchicalGuide(5, 2, num_transitions=2, hidden=(8,), transition_hidden=8)
    warm = KLWarmup(MonteCarloELBO(), LinearSchedule(0.0, 1.0, 0.5))
    fit(model, guide, warm, x, config=TrainConfig(epochs=2, batch_size=8, progress=False))
    assert warm.progress == pytest.approx(3 / 4)  # 4 steps: the last one at progress 3/4
    assert warm.beta == 1.0


def test_kl_warmup_is_registered_and_rejects_non_objectives():
    obj = infer.build("kl-warmup", objective="iwae", num_particles=3, fraction=0.4)
    assert isinstance(obj, KLWarmup) and obj.objective.num_particles == 3
    assert obj.beta == 0.0
    with pytest.raises(ValueError, match="wraps an objective"):
        KLWarmup("elbo")
