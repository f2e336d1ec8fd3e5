import warnings

import pyro
import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning)

from pyro_air.guides import ExactPosteriorGuide
from pyro_air.models import LinearGaussianModel


@pytest.fixture(autouse=True)
def uninitialized_memory_is_nan(monkeypatch):
    """torch.empty / empty_like called from Python hand back NaN-filled floats in tests, so a
    buffer that is allocated and then only partly written fails every run, not only when the
    allocator happens to return garbage (a CI run once failed that way; diagnostics/draws.py)."""
    empty, empty_like = torch.empty, torch.empty_like

    def nan_filled(make):
        def allocate(*args, **kwargs):
            out = make(*args, **kwargs)
            if out.is_floating_point():
                with torch.no_grad():  # a leaf made with requires_grad=True (inductor's own) may be filled too
                    out.fill_(float("nan"))
            return out
        return allocate

    monkeypatch.setattr(torch, "empty", nan_filled(empty))
    monkeypatch.setattr(torch, "empty_like", nan_filled(empty_like))


@pytest.fixture(autouse=True)
def fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(autouse=True)
def one_thread():
    """Tests use tiny networks and pytest-xdist runs two workers on two cores: one intra-op thread
    each avoids oversubscription (tests that time or parallelize set their own)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_choice(tmp_path, monkeypatch):
    """Kernel choices as a new process on a new machine makes them: no overriding environment
    variable, an empty cache (in tmp_path, returned), nothing chosen in this process yet."""
    from pyro_air.backend import choices, onednn, precision, tanh
    monkeypatch.setenv(choices.CACHE_ENV, str(tmp_path))
    for env in (tanh.TANH_ENV, precision.BF16_ENV, onednn.LINEAR_ENV, onednn.LINEAR_TRAINING_ENV,
                onednn.CHUNK_ENV):
        monkeypatch.delenv(env, raising=False)
    choices.forget_choices()
    yield tmp_path
    choices.forget_choices()


@pytest.fixture
def linear_gaussian():
    """A 2-latent, 5-observed linear-Gaussian model with 16 datapoints drawn from it."""
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, seed=1)
    x = model.marginal().sample((16,)).detach()
    return model, x


@pytest.fixture
def exact_guide(linear_gaussian):
    return ExactPosteriorGuide(linear_gaussian[0])


def binary_batch(n=8, d=784, p=0.3, seed=0):
    return torch.bernoulli(torch.full((n, d), p), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def tiny_cli_run(tmp_path_factory):
    """A run directory written once per test session by `pyro-air train` at a tiny budget
    (200 MNIST images, 1 epoch, z = 2); tests that evaluate or diagnose a checkpoint read it."""
    from pyro_air.cli import main

    run = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--train-size", "200", "--epochs", "1", "--batch-size", "50", "--z-dim", "2",
                 "--hidden", "16", "--valid-size", "20", "--valid-num-samples", "5", "--no-progress",
                 "--run-dir", str(run)])
    assert code == 0
    return run

