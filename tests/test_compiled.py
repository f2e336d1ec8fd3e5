"""The compiled training step (pyro_air.train.compiled, TrainConfig(compile=True)): the same run as
the eager step to float rounding on the CPU, when the compiled kernels use torch's eager draws."""
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.train import TrainConfig, fit
from pyro_air.train.compiled import compile_mode


def test_the_mode_is_cuda_graphs_on_cuda_and_inductors_default_elsewhere():
    assert compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert compile_mode(torch.device("cpu")) == "default"


def _short_run(objective, compile_):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=3, hidden=(16,))
    guide = guides.build("gaussian", x_dim=20, z_dim=3, hidden=(16,))
    x = torch.bernoulli(torch.full((60, 20), 0.3), generator=torch.Generator().manual_seed(1))
    result = fit(model, guide, objective, x, config=TrainConfig(epochs=2, batch_size=20, lr=1e-2, progress=False,
                                                                compile=compile_, threads=1))
    return result, torch.cat([p.detach().flatten() for p in [*model.parameters(), *guide.parameters()]])


def _cxx_compiler() -> bool:
    """Inductor compiles C++ on the CPU: without a compiler torch.compile cannot run here."""
    import os
    import shutil
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)


@pytest.mark.slow
@pytest.mark.skipif(not _cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler (g++ or clang++)")
@pytest.mark.parametrize("objective", [infer.MonteCarloELBO(), infer.IWAE_ELBO(num_particles=4)],
                         ids=["elbo", "iwae4"])
def test_a_compiled_run_is_the_eager_run_to_float_rounding(objective):
    import torch._dynamo
    import torch._inductor.config as inductor_config
    # torch's eager draws (comparable runs), through the config's own patch: restored however the run
    # ends, so one case cannot leave the config broken for the next (issue 36: monkeypatch.setattr
    # on the config module did, in one process)
    with inductor_config.patch(fallback_random=True):
        torch._dynamo.reset()
        try:
            eager, eager_params = _short_run(objective, False)
            compiled, compiled_params = _short_run(objective, True)
        finally:
            torch._dynamo.reset()
    torch.testing.assert_close(compiled_params, eager_params, rtol=1e-4, atol=1e-5)
    for a, b in zip(compiled.history, eager.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert compiled.steps == eager.steps == 6


@pytest.mark.skipif(not _cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler (g++ or clang++)")
@pytest.mark.parametrize("grad", [False, True], ids=["evaluation", "training"])
def test_a_network_compiles_where_its_layers_would_run_through_onednn(grad):
    """Compiled, pyro-air's MLP runs its layers one by one whatever the dense-layer choice; the
    oneDNN kernels are never traced (inductor cannot lower them on unfrozen weights: it failed)."""
    import torch._dynamo
    from pyro_air.backend import report
    from pyro_air.backend.nets import mlp
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = mlp([6, 16, 5])
    z = torch.randn(7, 6)
    with report.pinned_kernels({"linear": "onednn", "linear_training": "onednn"}), torch.set_grad_enabled(grad):
        compiled = torch.compile(net, dynamic=False)(z)
    with report.pinned_kernels({"linear": "torch", "linear_training": "torch"}), torch.set_grad_enabled(grad):
        eager = net(z)
    torch.testing.assert_close(compiled, eager)
    assert compiled.requires_grad == grad


def _compiled_run(run_dir, resume=False, interrupt_at=None):
    """A compiled IWAE-2 run (inductor's own Gaussian draws: fallback_random off, as a long run trains); with
    ``interrupt_at`` the process sends itself SIGINT after that many optimizer steps (outside the compiled
    code, so the traced loss stays one graph)."""
    import os
    import signal

    from pyro_air.train import loop

    torch.manual_seed(0)
    model = models.build("bernoulli-vae", x_dim=20, z_dim=3, hidden=(16,))
    guide = guides.build("gaussian", x_dim=20, z_dim=3, hidden=(16,))
    x = torch.bernoulli(torch.full((60, 20), 0.3), generator=torch.Generator().manual_seed(1))
    real_make_adam, steps = loop.make_adam, [0]

    def signalling_adam(params, lr):
        optimizer = real_make_adam(params, lr)

        class Signalling(type(optimizer)):  # a bound step, as the lr scheduler expects to wrap
            def step(self, *args, **kwargs):
                out = super().step(*args, **kwargs)
                steps[0] += 1
                if steps[0] == interrupt_at:
                    os.kill(os.getpid(), signal.SIGINT)
                return out
        optimizer.__class__ = Signalling
        return optimizer

    loop.make_adam = signalling_adam
    try:
        fit(model, guide, infer.IWAE_ELBO(num_particles=2), x[:40], x[40:],
            TrainConfig(epochs=3, batch_size=10, lr=1e-2, progress=False, compile=True, threads=1, seed=3,
                        valid_num_samples=3),
            run_dir=run_dir, spec={"what": "compiled resume test"}, resume=resume)
    finally:
        loop.make_adam = real_make_adam


@pytest.mark.slow
@pytest.mark.skipif(not _cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler (g++ or clang++)")
def test_an_interrupted_compiled_run_resumes_to_the_uninterrupted_compiled_run(tmp_path):
    """The long PixelCNN runs train compiled and resume on whatever machine the next session gets: the
    compiled kernels draw their noise from seeds taken from torch's generator, which the checkpoint
    restores, so stopping mid-epoch and resuming gives the uninterrupted compiled run bit for bit."""
    import torch._dynamo

    from pyro_air.train.signals import TrainingInterrupted
    from tests.helpers import assert_same_run

    torch._dynamo.reset()
    try:
        _compiled_run(tmp_path / "reference")
        with pytest.raises(TrainingInterrupted, match="SIGINT at epoch 2"):
            _compiled_run(tmp_path / "interrupted", interrupt_at=6)   # 4 steps an epoch: mid-epoch 2
        _compiled_run(tmp_path / "interrupted", resume=True)
    finally:
        torch._dynamo.reset()
    assert_same_run(tmp_path / "interrupted", tmp_path / "reference")


@pytest.mark.slow
@pytest.mark.skipif(not _cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler (g++ or clang++)")
def test_compiled_forward_scores_as_the_eager_network_and_leaves_the_module_as_it_was():
    """The InfoVAE worker evaluates its PixelCNN inside compiled_forward: a seeded IWAE estimate equals the
    eager one to float rounding, the weights (what a resume fingerprint hashes) are untouched, and the
    module is its eager self after the block, even after an error inside it."""
    import torch._dynamo

    from pyro_air.evaluate import log_likelihood
    from pyro_air.train.compiled import compiled_forward

    torch.manual_seed(0)
    model = models.build("pixelcnn-vae", x_dim=64, z_dim=2, channels=4, num_layers=2, kernel_size=3)
    guide = guides.build("gaussian", x_dim=64, z_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((6, 64), 0.4), generator=torch.Generator().manual_seed(2))
    keys = list(model.state_dict())
    eager = log_likelihood(model, guide, x, num_samples=4, chunk_size=2, batch_size=2, seed=5)
    torch._dynamo.reset()
    try:
        with compiled_forward(model.decoder) as net:
            assert net is model.decoder and "forward" in vars(model.decoder)
            compiled = log_likelihood(model, guide, x, num_samples=4, chunk_size=2, batch_size=2, seed=5)
            with pytest.raises(ValueError, match="do not nest"):
                with compiled_forward(model.decoder):
                    pass
        with pytest.raises(RuntimeError, match="inside"):
            with compiled_forward(model.decoder):
                raise RuntimeError("an error inside the block")
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-4)
    assert not torch.equal(compiled, torch.zeros_like(compiled))
    assert "forward" not in vars(model.decoder) and list(model.state_dict()) == keys
    with compiled_forward(model.decoder, enabled=False):
        assert "forward" not in vars(model.decoder)   # disabled: nothing replaced, nothing compiled
