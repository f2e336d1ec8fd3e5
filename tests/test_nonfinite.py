"""A non-finite loss: stop with a clear message and the good checkpoint intact, or roll back."""
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit, parameters_of
from pyro_air.train import checkpoints as checkpoint
from pyro_air.train.nonfinite import NonFiniteLossError
from tests.conftest import binary_batch

STEPS_PER_EPOCH = 10


class NaNLossAt:
    """Delegates to an objective and returns a NaN loss at the given (1-based) calls."""

    def __init__(self, objective, calls):
        self.objective, self.bad_calls, self.calls = objective, set(calls), 0

    def differentiable_loss(self, *args, **kwargs):
        self.calls += 1
        loss = self.objective.differentiable_loss(*args, **kwargs)
        return loss * float("nan") if self.calls in self.bad_calls else loss


def _run(run_dir, bad_calls, **overrides):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    config = TrainConfig(**{"epochs": 2, "batch_size": 5, "lr": 1e-2, "checkpoint_every_steps": 4,
                            "progress": False, **overrides})
    objective = NaNLossAt(infer.MonteCarloELBO(), bad_calls)
    try:
        return model, guide, fit(model, guide, objective, binary_batch(50, d=16), config=config, run_dir=run_dir)
    finally:
        _run.last = (model, guide)


def _assert_model_is_checkpoint(model, guide, state):
    for module, key in ((model, "model_state"), (guide, "guide_state")):
        for name, value in module.state_dict().items():
            assert torch.equal(value, state[key][name])


def test_nan_loss_stops_with_the_step_and_keeps_the_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 7 \(epoch 1\).*learning rate "
                                                 r"too high \(lr=0\.01.*bad data.*last good state \(step 4\)"):
        _run(tmp_path, bad_calls={7})
    state = checkpoint.load(tmp_path)
    assert state["step"] == 4 and state["position"]["batch"] == 4
    assert all(torch.isfinite(v).all() for v in state["model_state"].values())
    model, guide = _run.last
    _assert_model_is_checkpoint(model, guide, state)  # the caller is left with the good parameters too


def test_deferred_check_names_the_first_bad_step_and_never_saves_nan(tmp_path):
    """As on CUDA: the check runs every 3 steps, so NaN gradients reach the optimizer first."""
    with pytest.raises(NonFiniteLossError, match=r"at step 7 \(epoch 1\)") as info:
        _run(tmp_path, bad_calls={7}, nonfinite_check_every=3, checkpoint_every_steps=8)
    assert "step 0" in str(info.value)  # no checkpoint yet: the last good state is the initial one
    assert "checkpoint.pt" not in str(info.value)
    assert not (tmp_path / "checkpoint.pt").exists()
    model, guide = _run.last
    assert all(torch.isfinite(p).all() for p in parameters_of(model, guide))


def test_rollback_restores_the_last_good_state_and_lowers_the_learning_rate(tmp_path):
    with pytest.warns(RuntimeWarning, match="rolled back to step 4"):
        model, guide, result = _run(tmp_path, bad_calls={7}, on_nonfinite="rollback", rollback_lr_factor=0.25)
    assert len(result.rollbacks) == 1
    event = result.rollbacks[0]
    assert event["step"] == 7 and event["restored_step"] == 4
    assert event["lr"] == pytest.approx(0.25 * 1e-2)  # epoch 1 lr is the initial lr
    assert result.steps == 2 * STEPS_PER_EPOCH
    state = checkpoint.load(tmp_path)
    assert state["lr_scale"] == 0.25 and state["step"] == 2 * STEPS_PER_EPOCH
    lr_final = 1e-2 * 0.1  # exponential decay to lr_final_ratio, then the rollback factor
    assert state["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(0.25 * lr_final)
    assert all(torch.isfinite(p).all() for p in parameters_of(model, guide))


def test_rollback_gives_up_after_max_rollbacks(tmp_path):
    with pytest.warns(RuntimeWarning):
        with pytest.raises(NonFiniteLossError, match="at step 5 .*2 rollbacks with lower learning rates did not help"):
            _run(tmp_path, bad_calls=range(7, 100), on_nonfinite="rollback", max_rollbacks=2)
    assert checkpoint.load(tmp_path)["step"] == 4


def test_nonfinite_parameters_are_never_checkpointed(tmp_path):
    """A finite loss with an infinite gradient gives NaN parameters: caught before the checkpoint."""

    class InfGradientAt(NaNLossAt):
        def differentiable_loss(self, *args, **kwargs):
            self.calls += 1
            loss = self.objective.differentiable_loss(*args, **kwargs)
            if self.calls in self.bad_calls:
                loss = loss.clone()
                loss.register_hook(lambda grad: grad * float("inf"))  # same value, infinite gradient
            return loss

    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    config = TrainConfig(epochs=1, batch_size=5, checkpoint_every_steps=4, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"non-finite parameters at step 8 .*last good state \(step 4\)"):
        fit(model, guide, InfGradientAt(infer.MonteCarloELBO(), {8}), binary_batch(50, d=16), config=config, run_dir=tmp_path)
    assert checkpoint.load(tmp_path)["step"] == 4


class RecordingNaNLossAt(NaNLossAt):
    """Also keeps the finite loss of every call (before the NaN is made), to compare retried steps."""

    def __init__(self, objective, calls):
        super().__init__(objective, calls)
        self.values = {}

    def differentiable_loss(self, *args, **kwargs):
        loss = self.objective.differentiable_loss(*args, **kwargs)
        self.calls += 1
        self.values[self.calls] = loss.item()
        return loss * float("nan") if self.calls in self.bad_calls else loss


def test_rollbacks_lower_the_learning_rate_cumulatively_and_redraw_the_retried_steps(tmp_path):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    objective = RecordingNaNLossAt(infer.MonteCarloELBO(), {7, 9})  # step 7 fails; after the rollback to step 4, step 6 (call 9)
    config = TrainConfig(epochs=1, batch_size=5, lr=1e-2, checkpoint_every_steps=4, on_nonfinite="rollback",
                         progress=False)
    with pytest.warns(RuntimeWarning, match="rolled back to step 4"):
        result = fit(model, guide, objective, binary_batch(50, d=16), config=config, run_dir=tmp_path)
    assert [(e["step"], e["restored_step"]) for e in result.rollbacks] == [(7, 4), (6, 4)]
    # the second rollback restores a state saved before the first: the factors still multiply
    assert [e["lr"] for e in result.rollbacks] == pytest.approx([0.5e-2, 0.25e-2])
    assert checkpoint.load(tmp_path)["lr_scale"] == 0.25
    # step 5 ran three times from the same parameters and batch: each retry drew fresh latent samples
    first, retry, second_retry = objective.values[5], objective.values[8], objective.values[10]
    assert len({first, retry, second_retry}) == 3


def test_nan_before_the_first_checkpoint_names_no_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        _run(tmp_path, bad_calls={3}, checkpoint_every_steps=8)
    message = str(info.value)
    assert "The last good state (step 0) is kept in the model and guide (no checkpoint had been written yet)" in message
    assert "checkpoint.pt" not in message and "Start again with a lower learning rate" in message
    assert not (tmp_path / "checkpoint.pt").exists()


def test_nan_with_a_sparser_checkpoint_policy_writes_the_last_good_state_it_names(tmp_path):
    """checkpoint_every_epochs=2: after epoch 3 the last good state lives in memory only; a NaN in epoch 4
    writes it, so checkpoint.pt holds the state the message names (not the older epoch-2 one)."""
    bad = 3 * STEPS_PER_EPOCH + 2
    with pytest.raises(NonFiniteLossError, match=rf"at step {bad} \(epoch 4\).*last good state \(step 30\) is kept "
                                                 r"in .*checkpoint\.pt"):
        _run(tmp_path, bad_calls={bad}, epochs=5, checkpoint_every_steps=None, checkpoint_every_epochs=2)
    state = checkpoint.load(tmp_path)
    assert state["step"] == 3 * STEPS_PER_EPOCH and state["epoch"] == 3
    _assert_model_is_checkpoint(*_run.last, state)


@pytest.mark.parametrize("on_host", [True, False])
def test_loss_window_names_the_first_bad_step_in_both_storage_modes(on_host):
    """Host floats (the CPU default) and the on-device window (the CUDA default, run here on the CPU)
    report the same first bad step and value, and start afresh after each check."""
    from pyro_air.train.nonfinite import LossWindow
    window = LossWindow(4, torch.device("cpu"), on_host=on_host)
    assert window.on_host is on_host and window.first_bad_step() is None
    for step, value in zip(range(11, 15), [1.0, 2.0, float("inf"), float("nan")]):
        window.record(step, torch.tensor(value, requires_grad=True) * 1)
    assert window.full
    assert window.first_bad_step() == (13, float("inf"))
    assert not window.full
    for step in (15, 16):
        window.record(step, torch.tensor(0.5))
    assert window.first_bad_step() is None
    window.record(17, torch.tensor(float("nan")))
    step, value = window.first_bad_step()
    assert step == 17 and value != value
