"""Bad input gets a clear error early (DESIGN.md contract 5)."""
import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit
from tests.conftest import binary_batch


@pytest.fixture
def vae_pair():
    return models.build("bernoulli-vae", z_dim=4, hidden=(16,)), guides.build("gaussian", z_dim=4, hidden=(16,))


def test_wrong_shape(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match=r"shape \[B, 784\].*flatten"):
        infer.ELBO().loss(model, guide, torch.zeros(4, 28, 28))


def test_wrong_dtype(vae_pair):
    model, guide = vae_pair
    with pytest.raises(TypeError, match="x.float"):
        infer.ELBO().loss(model, guide, torch.zeros(4, 784, dtype=torch.long))


def test_non_binary_input_to_bernoulli_model(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match="binary x in \\{0, 1\\}.*binarize"):
        infer.ELBO().loss(model, guide, torch.full((4, 784), 0.5))


def test_nan_in_data(vae_pair):
    model, guide = vae_pair
    x = binary_batch(4)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        infer.ELBO().loss(model, guide, x)
    with pytest.raises(ValueError, match="NaN or inf"):
        fit(model, guide, infer.ELBO(), x, config=TrainConfig(epochs=1, batch_size=2, progress=False))


@pytest.mark.parametrize("build,kind", [(models.build, "model"), (guides.build, "guide"), (infer.build, "objective")])
def test_unknown_name_lists_known_names(build, kind):
    with pytest.raises(KeyError, match=f"unknown {kind} 'nope'; known {kind}s are: "):
        build("nope")


def test_guide_latent_size_must_fit_model():
    spec = vae_spec(z_dim=8, guide_cfg={"z_dim": 4})
    with pytest.raises(ValueError, match="does not fit model"):
        build_run(spec)


def test_num_particles_must_be_positive():
    with pytest.raises(ValueError, match="num_particles"):
        infer.build("iwae", num_particles=0)


def test_empty_dataset_and_batch_larger_than_data(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match="empty"):
        fit(model, guide, infer.ELBO(), torch.zeros(0, 784), config=TrainConfig(epochs=1, progress=False))
    with pytest.raises(ValueError, match="batch_size=100 is larger"):
        fit(model, guide, infer.ELBO(), binary_batch(10), config=TrainConfig(epochs=1, progress=False))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_asked_for_without_cuda(vae_pair):
    model, guide = vae_pair
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        fit(model, guide, infer.ELBO(), binary_batch(10),
            config=TrainConfig(epochs=1, batch_size=5, device="cuda", progress=False))
