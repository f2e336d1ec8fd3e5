"""The training loop: same numbers as pyro.infer.SVI, learning, checkpoints, early stopping."""
import json

import pyro
import pyro.optim
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit, parameters_of
from pyro_air.train import checkpoints as checkpoint
from tests.conftest import binary_batch


def _pair(seed=0):
    torch.manual_seed(seed)
    return models.build("bernoulli-vae", z_dim=3, hidden=(20,)), guides.build("gaussian", z_dim=3, hidden=(20,))


def test_direct_matches_pyro_svi_loss_and_gradients():
    """One torch optimizer over differentiable_loss gives the loss and gradients SVI computes."""
    x = binary_batch(10)
    for objective in (infer.MonteCarloELBO(num_particles=2), infer.IWAE_ELBO(num_particles=4)):
        model, guide = _pair()
        pyro.clear_param_store()
        pyro.set_rng_seed(5)
        fast = objective.differentiable_loss(model, guide, x, num_data=50)
        fast.backward()
        fast_grads = [p.grad.clone() for p in parameters_of(model, guide)]
        for p in parameters_of(model, guide):
            p.grad = None
        pyro.set_rng_seed(5)
        slow = objective.loss_and_grads(model, guide, x, num_data=50)  # what SVI.step calls
        slow_grads = [p.grad for p in parameters_of(model, guide)]
        assert fast.item() == slow
        assert all(torch.equal(a, b) for a, b in zip(fast_grads, slow_grads))


def test_svi_step_updates_every_parameter():
    model, guide = _pair()
    before = [p.detach().clone() for p in parameters_of(model, guide)]
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), infer.MonteCarloELBO())
    svi.step(binary_batch(10), num_data=100)
    after = parameters_of(model, guide)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_training_improves_the_bound_and_writes_a_run(tmp_path):
    model, guide = _pair()
    x = binary_batch(200, p=0.2)
    x[:, :392] = 0  # a learnable structure
    cfg = TrainConfig(epochs=4, batch_size=20, lr=3e-2, valid_num_samples=10, progress=False)
    result = fit(model, guide, infer.MonteCarloELBO(), x, x[:50], cfg, run_dir=tmp_path, spec={"note": "test"})
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "valid_iwae10" in json.loads(lines[-1])
    state = checkpoint.load(tmp_path)
    assert state["epoch"] == 4 and state["spec"] == {"note": "test"}
    assert checkpoint.load(tmp_path / "best.pt")["epoch"] == result.best_epoch


def test_fit_moves_an_old_run_aside_writes_the_run_files_and_check_run_dir_reads_only(tmp_path, capsys):
    """fit is the one place that claims a run directory: overwrite= moves the old run aside, run_files=
    are written under the claim (a caller that keeps them owns the directory); check_run_dir runs the
    same checks writing nothing, and for a resume reads the checkpoint's epochs."""
    from pyro_air.train import check_run_dir
    from pyro_air.train.run_dir import RunDirError

    x, run = binary_batch(40, p=0.2), tmp_path / "run"
    cfg = TrainConfig(epochs=1, batch_size=20, valid_num_samples=2, progress=False)
    fit(*_pair(), infer.MonteCarloELBO(), x, x[:10], cfg, run_dir=run, spec={"n": 1}, run_files={"opts.json": "{}\n"})
    assert (run / "opts.json").read_text() == "{}\n" and check_run_dir(run, {"n": 1}, cfg, resume=True) == 1
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunDirError, match="already holds a run"):
        check_run_dir(run)
    with pytest.raises(RunDirError, match="is not empty"):
        fit(*_pair(), infer.MonteCarloELBO(), x, x[:10], cfg, run_dir=run, run_files={"other.json": "{}\n"})
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    assert check_run_dir(run, overwrite=True) == 0
    fit(*_pair(), infer.MonteCarloELBO(), x, x[:10], cfg, run_dir=run, overwrite=True)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and sorted(p.name for p in moved[0].iterdir()) == before
    assert f"moved the old run to {moved[0]}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="give one of them"):
        fit(*_pair(), infer.MonteCarloELBO(), x, x[:10], cfg, run_dir=run, resume=True, overwrite=True)


def test_early_stopping_restores_the_best_parameters(tmp_path):
    model, guide = _pair()
    x = binary_batch(100)
    cfg = TrainConfig(epochs=6, batch_size=10, lr=0.3, patience=1, valid_num_samples=5, progress=False)
    result = fit(model, guide, infer.MonteCarloELBO(), x, binary_batch(40, seed=9), cfg, run_dir=tmp_path)
    best = checkpoint.load(tmp_path / "best.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, best["model_state"][k])
    if result.stopped_early:
        assert len(result.history) < 6


def test_make_adam_uses_the_fused_kernel_and_exchanges_state_with_the_default_one():
    from pyro_air.train import make_adam

    torch.manual_seed(0)
    params = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    fused = make_adam(params, 1e-3)
    assert fused.param_groups[0]["fused"] is True
    default = torch.optim.Adam([p.detach().clone().requires_grad_() for p in params], lr=1e-3)
    for opt in (fused, default):
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        opt.step()
    # the state written by either kernel loads into an optimizer built by the other, and it steps
    loaded = make_adam([p.detach().clone().requires_grad_() for p in params], 1e-3)
    loaded.load_state_dict(default.state_dict())
    for p in loaded.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    loaded.step()
    reverse = torch.optim.Adam([p.detach().clone().requires_grad_() for p in params], lr=1e-3)
    reverse.load_state_dict(fused.state_dict())
    assert reverse.param_groups[0]["fused"] is True  # the saved kernel choice comes along
    # both kernels took the same first step, to float rounding
    for a, b in zip(fused.param_groups[0]["params"], default.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert make_adam([torch.zeros(2, dtype=torch.int64)], 1e-3).param_groups[0]["fused"] is None


# -- issue 17: denormals, threads, precision ---------------------------------------------------------
def _broad_pair():
    """A tiny pair whose guide starts broad (sigma ~ e^4): IWAE-32 log weights spread ~100 nats."""
    model, guide = _pair()
    with torch.no_grad():
        guide.head.bias[3:] += 4.0
    return model, guide


def _short_fit(objective, broad=False, **config):
    model, guide = _broad_pair() if broad else _pair()
    x = binary_batch(60, p=0.3)
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 20, "lr": 1e-2, "progress": False, **config})
    result = fit(model, guide, objective, x, None, cfg)
    return result, [p.detach().clone() for p in parameters_of(model, guide)]


def test_flushing_denormals_in_training_changes_the_parameters_only_by_rounding():
    """IWAE-32 from initialization: normalized weights underflow into the denormal range (checked),
    and a short fit with them flushed to zero ends with the parameters of one without, to rounding."""
    model, guide = _broad_pair()
    torch.manual_seed(1)
    log_w = infer.log_importance_weights(model, guide, binary_batch(20, p=0.3), num_particles=32).log_w
    w = torch.softmax(log_w.detach(), 0)
    tiny = torch.finfo(torch.float32).tiny
    assert ((w > 0) & (w < tiny)).any(), "the test needs denormal importance weights to mean anything"
    flushed_result, flushed = _short_fit(infer.IWAE_ELBO(num_particles=32), broad=True, flush_denormals=True)
    kept_result, kept = _short_fit(infer.IWAE_ELBO(num_particles=32), broad=True, flush_denormals=False)
    for a, b in zip(flushed, kept):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for ra, rb in zip(flushed_result.history, kept_result.history):
        assert abs(ra["train_loss"] - rb["train_loss"]) <= 1e-5 * abs(rb["train_loss"])


def test_training_flushes_denormals_and_restores_the_setting():
    seen = []

    class Probe(infer.MonteCarloELBO):
        def differentiable_loss(self, *args, **kwargs):
            seen.append(torch.tensor(1e-40).item())  # 0.0 while denormals are flushed
            return super().differentiable_loss(*args, **kwargs)

    _short_fit(Probe(), epochs=1)
    assert seen and all(v == 0.0 for v in seen)
    assert torch.tensor(1e-40).item() != 0.0  # restored after fit
    seen.clear()
    _short_fit(Probe(), epochs=1, flush_denormals=False)
    assert seen and all(v != 0.0 for v in seen)


def test_threads_apply_while_training_and_are_restored():
    seen = []

    class Probe(infer.MonteCarloELBO):
        def differentiable_loss(self, *args, **kwargs):
            seen.append(torch.get_num_threads())
            return super().differentiable_loss(*args, **kwargs)

    before = torch.get_num_threads()
    _short_fit(Probe(), epochs=1, threads=1)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_bad_threads_and_precision_are_refused_with_advice():
    import pytest
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        TrainConfig(threads=0).validate()
    with pytest.raises(ValueError, match="precision must be one of float32, bf16"):
        TrainConfig(precision="fp16").validate()


def test_bf16_training_runs_and_its_loss_is_close_to_float32():
    """bf16 autocast of the training step (allowed with a warning where bf16 is emulated): the epoch
    losses of a short run stay within 2% of float32's, and the parameters stay float32."""
    import warnings

    from pyro_air.backend.precision import bf16_support
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf16_result, bf16_params = _short_fit(infer.MonteCarloELBO(), precision="bf16")
    warned = any("without native bf16" in str(w.message) for w in caught)
    assert warned == (bf16_support()["state"] != "native")
    f32_result, _ = _short_fit(infer.MonteCarloELBO())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in bf16_params)
    for a, b in zip(bf16_result.history, f32_result.history):
        assert abs(a["train_loss"] - b["train_loss"]) <= 0.02 * abs(b["train_loss"])
    assert bf16_result.history[0]["train_loss"] != f32_result.history[0]["train_loss"]  # bf16 really ran


def test_stopping_summary_says_how_a_run_ended():
    from pyro_air.train import TrainResult, stopping_summary

    done = TrainResult(history=[{}] * 10, best_epoch=7, best_valid=-98.314)
    assert stopping_summary(done, 10, 20) == "best validation IWAE-20 -98.31 at epoch 7 of 10"
    early = TrainResult(history=[{}] * 6, best_epoch=3, best_valid=-99.0, stopped_early=True)
    assert stopping_summary(early, 10, 5) == "early-stopped at epoch 6 of 10, best validation IWAE-5 -99.00 at epoch 3"
    assert stopping_summary(TrainResult(history=[{}] * 2), 2, 20) == "no validation set of 2"
