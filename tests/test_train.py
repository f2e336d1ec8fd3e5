"""The training loop: same numbers as pyro.infer.SVI, learning, checkpoints, early stopping."""
import json

import pyro
import pyro.optim
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
