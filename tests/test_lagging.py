"""Lagging-inference-network training (He et al. 2019): the aggressive encoder phase."""
import itertools

import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit
from pyro_air.train.lagging import LaggingConfig, fit_lagging
from tests.conftest import binary_batch


def _pieces(seed=0):
    torch.manual_seed(seed)
    model = models.build("bernoulli-vae", x_dim=784, z_dim=3, hidden=[16])
    guide = guides.build("gaussian", x_dim=784, z_dim=3, hidden=[16])
    return model, guide


DATA = binary_batch(n=60, seed=1)
VALID = binary_batch(n=20, seed=2)
CONFIG = {"epochs": 4, "batch_size": 20, "lr": 1e-2, "valid_every": 2, "valid_num_samples": 5, "progress": False}


def test_no_aggressive_phase_is_fit_bit_for_bit():
    """Neutral setting: aggressive=False performs fit's computation (same parameters, losses, validation)."""
    model_a, guide_a = _pieces()
    ra = fit(model_a, guide_a, infer.build("elbo"), DATA, VALID, TrainConfig(**CONFIG))
    model_b, guide_b = _pieces()
    rb = fit_lagging(model_b, guide_b, infer.build("elbo"), DATA, VALID, TrainConfig(**CONFIG),
                     LaggingConfig(aggressive=False))
    for a, b in zip(list(model_a.parameters()) + list(guide_a.parameters()),
                    list(model_b.parameters()) + list(guide_b.parameters())):
        assert torch.equal(a, b)
    assert [r["train_loss"] for r in ra.history] == [r["train_loss"] for r in rb.history]
    assert (ra.best_epoch, ra.best_valid) == (rb.best_epoch, rb.best_valid)
    assert not any(r["aggressive"] for r in rb.history)


def test_aggressive_phase_updates_the_encoder_more_and_stops():
    model, guide = _pieces()
    decoder_before = [p.detach().clone() for p in model.parameters()]
    result = fit_lagging(model, guide, infer.build("elbo"), DATA, VALID, TrainConfig(**{**CONFIG, "epochs": 6}),
                         LaggingConfig(max_inner_steps=8, inner_window=2, mi_size=20, max_aggressive_epochs=3))
    flags = [r["aggressive"] for r in result.history]
    assert flags[0] and not any(flags[3:])  # at most max_aggressive_epochs, then joint training
    assert flags == sorted(flags, reverse=True)  # once stopped, never aggressive again
    aggressive = [r for r in result.history if r["aggressive"]]
    # each aggressive epoch takes between 2 (window) and 8 encoder steps per decoder step (3 per epoch)
    assert all(2 * 3 <= r["encoder_steps"] <= 8 * 3 for r in aggressive)
    assert all("mutual_information" in r for r in aggressive)
    assert all(r["encoder_steps"] == 0 for r in result.history if not r["aggressive"])
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, model.parameters()))


def test_mutual_information_criterion_stops_the_phase():
    """Without a cap the phase ends at the first epoch whose I(x; z) is not above the previous one."""
    model, guide = _pieces()
    result = fit_lagging(model, guide, infer.build("elbo"), DATA, VALID, TrainConfig(**{**CONFIG, "epochs": 8}),
                         LaggingConfig(max_inner_steps=4, inner_window=2, mi_size=20))
    mi = [r["mutual_information"] for r in result.history if "mutual_information" in r]
    flags = [r["aggressive"] for r in result.history]
    assert len(mi) == sum(flags) >= 2  # the first epoch has nothing to compare with: it always continues
    assert all(b > a for a, b in itertools.pairwise(mi[:-1]))  # it went on while I(x; z) climbed
    if sum(flags) < len(flags):  # and stopped when it did not
        assert mi[-1] <= mi[-2]


@pytest.mark.parametrize("kwargs,match", [
    ({"max_inner_steps": 0}, "max_inner_steps"), ({"inner_window": 0}, "inner_window"),
    ({"mi_size": 1}, "mi_size"), ({"max_aggressive_epochs": -1}, "max_aggressive_epochs"),
])
def test_bad_hyper_parameters(kwargs, match):
    model, guide = _pieces()
    with pytest.raises(ValueError, match=match):
        fit_lagging(model, guide, infer.build("elbo"), DATA, VALID, TrainConfig(**CONFIG), LaggingConfig(**kwargs))


def test_aggressive_phase_needs_validation_data():
    model, guide = _pieces()
    with pytest.raises(ValueError, match="valid_x"):
        fit_lagging(model, guide, infer.build("elbo"), DATA, None, TrainConfig(**CONFIG))


class _CrashAt:
    """Delegates to an objective; raises at its n-th loss (a process dying mid-run)."""

    def __init__(self, objective, n):
        self.objective, self.n, self.calls = objective, n, 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("simulated crash")
        return self.objective.differentiable_loss(*args, **kwargs)


def test_an_interrupted_aggressive_run_resumes_bit_for_bit(tmp_path):
    """The schedule's state (aggressive flag, last MI, inner minibatch generator) is checkpointed, so a
    run killed mid-way and resumed ends where an uninterrupted one ends."""
    lagging = dict(max_inner_steps=4, inner_window=2, mi_size=20, max_aggressive_epochs=2)
    config = TrainConfig(**{**CONFIG, "checkpoint_every_steps": 2})
    model_a, guide_a = _pieces()
    whole = fit_lagging(model_a, guide_a, infer.build("elbo"), DATA, VALID, config, LaggingConfig(**lagging),
                        run_dir=tmp_path / "whole")
    model_b, guide_b = _pieces()
    with pytest.raises(KeyboardInterrupt):  # dies in the inner steps of epoch 2
        fit_lagging(model_b, guide_b, _CrashAt(infer.build("elbo"), 30), DATA, VALID, config,
                    LaggingConfig(**lagging), run_dir=tmp_path / "resumed")
    model_b, guide_b = _pieces(seed=7)  # whatever the weights, the checkpoint restores them
    resumed = fit_lagging(model_b, guide_b, infer.build("elbo"), DATA, VALID, config, LaggingConfig(**lagging),
                          run_dir=tmp_path / "resumed", resume=True)
    assert [r["aggressive"] for r in resumed.history] == [r["aggressive"] for r in whole.history] == [
        True, True, False, False]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    for a, b in zip(list(model_a.parameters()) + list(guide_a.parameters()),
                    list(model_b.parameters()) + list(guide_b.parameters()), strict=True):
        assert torch.equal(a, b)
