"""CUDA: training and evaluation give the CPU's numbers to float rounding; bf16 training runs.
Skipped without a GPU (``benchmarks/gpu_check.sh`` runs them on one)."""
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.evaluate import log_likelihood
from pyro_air.train import TrainConfig, fit, parameters_of
from tests.conftest import binary_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair():
    torch.manual_seed(0)
    return models.build("bernoulli-vae", z_dim=3, hidden=(20,)), guides.build("gaussian", z_dim=3, hidden=(20,))


def _eval_draws_equal(model, guide, x, device):
    model.to(device), guide.to(device)
    return log_likelihood(model, guide, x.to(device), num_samples=50, seed=3).cpu()


def test_cuda_training_step_matches_cpu_to_rounding():
    x = binary_batch(20, p=0.3)
    grads = {}
    for device in ("cpu", "cuda"):
        model, guide = _pair()
        model.to(device), guide.to(device)
        eps = torch.randn(1, 20, 3, generator=torch.Generator().manual_seed(1)).to(device)
        post = guide.direct_posterior(x.to(device))
        post.rsample(1)  # the [K, B] shapes log_prob scores against
        z = post.loc + eps * post.scale  # the same draw on both devices
        loss = -(model.log_joint(x.to(device), z) - post.log_prob(z)).sum()
        loss.backward()
        grads[device] = [p.grad.cpu() for p in parameters_of(model, guide)]
    for a, b in zip(grads["cpu"], grads["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_cuda_fit_runs_float32_and_bf16_and_losses_agree():
    x = binary_batch(60, p=0.3)
    losses = {}
    for precision in ("float32", "bf16"):
        model, guide = _pair()
        cfg = TrainConfig(epochs=2, batch_size=20, lr=1e-2, progress=False, device="cuda", precision=precision)
        losses[precision] = [r["train_loss"] for r in fit(model, guide, infer.MonteCarloELBO(), x, None, cfg).history]
        assert all(p.dtype == torch.float32 for p in parameters_of(model, guide))
    for a, b in zip(losses["bf16"], losses["float32"]):
        assert abs(a - b) <= 0.02 * abs(b)


def test_cuda_evaluation_matches_cpu_on_the_same_weights():
    x = binary_batch(10, p=0.3)
    model, guide = _pair()
    cpu = _eval_draws_equal(model, guide, x, "cpu")
    gpu = _eval_draws_equal(model, guide, x, "cuda")
    assert torch.isfinite(gpu).all()
    assert (cpu - gpu).abs().max() < 1.0  # different random streams on the two devices: same estimate to MC error


def test_cuda_compiled_training_matches_eager_to_rounding(monkeypatch):
    """--compile on CUDA (CUDA graphs, mode="reduce-overhead"): with the compiled kernels drawing
    torch's eager noise, a short run ends where the eager run ends, to float rounding."""
    import torch._dynamo
    import torch._inductor.config as inductor_config
    monkeypatch.setattr(inductor_config, "fallback_random", True)
    x = binary_batch(60, p=0.3)
    params = {}
    for compile_ in (False, True):
        torch._dynamo.reset()
        model, guide = _pair()
        cfg = TrainConfig(epochs=2, batch_size=20, lr=1e-2, progress=False, device="cuda", compile=compile_, seed=0)
        result = fit(model, guide, infer.IWAE_ELBO(num_particles=4), x, None, cfg)
        assert result.steps == 6 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
        params[compile_] = torch.cat([p.detach().flatten().cpu() for p in parameters_of(model, guide)])
    torch._dynamo.reset()
    torch.testing.assert_close(params[True], params[False], rtol=1e-3, atol=1e-4)
