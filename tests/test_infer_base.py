"""The base of every objective (pyro_air/infer/base.py): loss = -(G + (N / B) sum_b bound_b) from the shared
log weights, the pyro.infer.ELBO interface, the remembered structure and the declared fast path."""
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_air import infer
from pyro_air.guides import ExactPosteriorGuide
from pyro_air.infer import LogWeightObjective, log_importance_weights
from pyro_air.infer import base as base_module
from tests.outside_models import scale_global_guide, scale_global_model


class MaxWeight(LogWeightObjective):
    """A new objective defined by its per-datapoint bound alone: max_k log w_k."""

    def per_datapoint_bound(self, log_w):
        return log_w.max(0).values


def test_a_subclass_defines_the_bound_and_the_base_makes_every_loss_from_it(linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=1.3, loc_shift=0.3)
    objective = MaxWeight(num_particles=4)
    pyro.set_rng_seed(2)
    log_w = log_importance_weights(model, guide, x, num_particles=4).log_w
    expected = -(160 / 16) * log_w.max(0).values.sum().item()
    pyro.set_rng_seed(2)
    assert objective.loss(model, guide, x, num_data=160) == pytest.approx(expected, rel=1e-6)
    pyro.set_rng_seed(2)
    loss = objective.differentiable_loss(model, guide, x, num_data=160)
    assert loss.item() == pytest.approx(expected, rel=1e-6) and loss.requires_grad
    pyro.set_rng_seed(2)
    assert objective.loss_and_grads(model, guide, x, num_data=160) == pytest.approx(expected, rel=1e-6)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_base_class_has_no_bound_of_its_own(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    with pytest.raises(NotImplementedError):
        LogWeightObjective(num_particles=2).loss(model, exact_guide, x)


def test_the_importance_weighted_family_shares_one_global_draw_and_the_elbo_draws_one_per_particle():
    x = torch.randn(5, generator=torch.Generator().manual_seed(0))
    shared = infer.IWAE_ELBO(num_particles=4).log_weights(scale_global_model, scale_global_guide, x)
    per_particle = infer.MonteCarloELBO(num_particles=4).log_weights(scale_global_model, scale_global_guide, x)
    assert shared.log_w.shape == per_particle.log_w.shape == (4, 5)
    assert shared.global_term.shape == (1,) and shared.guide_trace.nodes["s"]["value"].numel() == 1
    assert per_particle.global_term.shape == (4,) and per_particle.guide_trace.nodes["s"]["value"].numel() == 4


def test_the_loss_adds_the_global_term_outside_the_data_scale():
    x = torch.randn(5, generator=torch.Generator().manual_seed(0))
    objective = infer.IWAE_ELBO(num_particles=3)
    pyro.set_rng_seed(1)
    weights = objective.log_weights(scale_global_model, scale_global_guide, x)
    expected = -(weights.global_term.mean() + infer.iwae_bound(weights.log_w).sum()).item()
    pyro.set_rng_seed(1)
    assert objective.loss(scale_global_model, scale_global_guide, x) == pytest.approx(expected, rel=1e-6)


def test_the_structure_is_found_once_per_pair(monkeypatch):
    calls = []
    real = base_module.model_structure
    monkeypatch.setattr(base_module, "model_structure", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(5, generator=torch.Generator().manual_seed(0))
    objective = infer.IWAE_ELBO(num_particles=2)
    for _ in range(3):
        objective.loss(scale_global_model, scale_global_guide, x)
    assert len(calls) == 1
    objective.loss(scale_global_model, lambda x: scale_global_guide(x), x)  # another pair
    assert len(calls) == 2


def test_pyros_elbo_machinery_gets_the_particle_vectorized_traces(linear_gaussian, exact_guide):
    model, x = linear_gaussian
    model_trace, guide_trace = infer.MonteCarloELBO(num_particles=3)._get_trace(model, exact_guide, (x,), {})
    assert guide_trace.nodes["z"]["value"].shape == (3, 16, 2)
    assert model_trace.nodes["x"]["fn"].batch_shape == (3, 16)


def test_a_pair_without_parameters_has_nothing_to_train():
    x = torch.randn(4, generator=torch.Generator().manual_seed(0))

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(x / 2, 0.5 ** 0.5))  # the exact posterior: every weight is p(x)

    loss = infer.IWAE_ELBO(num_particles=3).loss_and_grads(model, guide, x)
    exact = dist.Normal(0.0, 2 ** 0.5).log_prob(x).sum().item()
    assert isinstance(loss, float) and loss == pytest.approx(-exact, rel=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    ({"num_particles": 0}, "num_particles must be an integer >= 1, got 0"),
    ({"data_plate": 3}, "data_plate must be a plate's name (a str) or None, got 3"),
    ({"max_plate_nesting": -1}, "max_plate_nesting must be an integer >= 0, got -1"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        MaxWeight(**kwargs)
    assert str(err.value) == message


def test_the_fast_path_is_declared_and_a_subclass_that_redefines_the_weights_loses_it():
    """The capability is a class attribute (``needs_only_log_weights``), not a method-identity check;
    a subclass that redefines how weights are made or differentiated without declaring it again
    falls back to the traced path, and one that changes nothing keeps its parent's declaration."""
    class Plain(infer.MonteCarloELBO):
        pass

    class Redefined(infer.MonteCarloELBO):
        def surrogate_per_datapoint(self, weights):
            return super().surrogate_per_datapoint(weights)

    class Declared(Redefined):
        needs_only_log_weights = True

    assert Plain().needs_only_log_weights and not Plain().needs_traces()
    assert Redefined().needs_traces() and not Declared().needs_traces()
    assert infer.build("piwae", num_groups=1, group_size=2).needs_only_log_weights
    assert not infer.build("piwae", num_groups=2, group_size=2).needs_only_log_weights
