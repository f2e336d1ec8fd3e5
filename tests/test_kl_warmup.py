"""KL warm-up (pyro_air/infer/kl_warmup.py; AVO Eq. 2, Sonderby et al. 2016): every latent term of any objective
scaled by beta, beta following a schedule over training; at beta = 1 the plain objective, bit for bit."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_air import infer
from pyro_air.guides import GaussianEncoder, HierarchicalGuide
from pyro_air.infer import (
    IWAE_ELBO,
    ConstantSchedule,
    KLWarmup,
    LinearSchedule,
    MonteCarloELBO,
)
from pyro_air.infer.kl_warmup import LatentScale


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


def test_only_unobserved_sites_are_scaled():
    def program():
        pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))
        with poutine.scale(scale=2.0):
            pyro.sample("w", dist.Normal(0.0, 1.0))

    with LatentScale(0.25):
        trace = poutine.trace(program).get_trace()
    assert (trace.nodes["z"]["scale"], trace.nodes["x"]["scale"], trace.nodes["w"]["scale"]) == (0.25, 1.0, 0.5)


def test_the_default_schedule_ramps_beta_from_0_to_1_over_half_of_training():
    warm = KLWarmup(MonteCarloELBO())
    betas = []
    for progress in (0.0, 0.25, 0.5, 0.9):
        warm.set_progress(progress)
        betas.append(warm.beta)
    assert betas == [0.0, 0.5, 1.0, 1.0]


def test_progress_reaches_a_wrapped_objective_that_follows_it_too():
    class Follows(MonteCarloELBO):
        seen = None

        def set_progress(self, progress):
            self.seen = progress

    inner = Follows()
    KLWarmup(inner).set_progress(0.3)
    assert inner.seen == 0.3


def test_the_wrapped_programs_keep_their_attributes_and_structure(linear_gaussian):
    """Hooks and sizes stay reachable through the tempered model and guide (e.g. a guide's extended_model)."""
    model, x = linear_gaussian
    guide = GaussianEncoder(5, 2, hidden=(8,))
    tempered_model, tempered_guide = KLWarmup(MonteCarloELBO(), ConstantSchedule(0.5))._tempered(model, guide)
    assert tempered_model.x_dim == 5 and tempered_guide.z_dim == 2 and tempered_guide.__wrapped__ is guide
    trace = poutine.trace(tempered_model).get_trace(x)
    assert trace.nodes["z"]["scale"] == 0.5 and trace.nodes["x"]["scale"] == 1.0


def test_a_bad_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule must map progress in \\[0, 1\\] to beta, got 0.5"):
        KLWarmup(MonteCarloELBO(), 0.5)
