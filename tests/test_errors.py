"""Bad input gets a clear error early (docs/design.md, contract 5); docs/errors.md lists every case."""
import warnings
from pathlib import Path

import pytest
import torch

from pyro_air import guides, infer, models
from pyro_air.data.errors import DataFileError
from pyro_air.data.mnist import mnist_pickle_path, read_mnist_pickle
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit
from pyro_air.train.fit import DataDtypeWarning
from tests import errors as error_table
from tests.conftest import binary_batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def vae_pair():
    return models.build("bernoulli-vae", z_dim=4, hidden=(16,)), guides.build("gaussian", z_dim=4, hidden=(16,))


def test_wrong_shape(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match=r"shape \[B, 784\].*flatten"):
        infer.MonteCarloELBO().loss(model, guide, torch.zeros(4, 28, 28))


def test_wrong_dtype(vae_pair):
    model, guide = vae_pair
    with pytest.raises(TypeError, match="x.float"):
        infer.MonteCarloELBO().loss(model, guide, torch.zeros(4, 784, dtype=torch.long))


def test_non_binary_input_to_bernoulli_model(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match="binary x in \\{0, 1\\}.*binarize"):
        infer.MonteCarloELBO().loss(model, guide, torch.full((4, 784), 0.5))


def test_nan_in_data(vae_pair):
    model, guide = vae_pair
    x = binary_batch(4)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        infer.MonteCarloELBO().loss(model, guide, x)
    with pytest.raises(ValueError, match="NaN or inf"):
        fit(model, guide, infer.MonteCarloELBO(), x, config=TrainConfig(epochs=1, batch_size=2, progress=False))


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


def test_empty_dataset(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match="the training set is empty; load a dataset"):
        fit(model, guide, infer.MonteCarloELBO(), torch.zeros(0, 784), config=TrainConfig(epochs=1, progress=False))


def test_batch_size_larger_than_dataset(vae_pair):
    model, guide = vae_pair
    with pytest.raises(ValueError, match=r"batch_size=100 is larger than the training set \(10 points\); lower"):
        fit(model, guide, infer.MonteCarloELBO(), binary_batch(10), config=TrainConfig(epochs=1, progress=False))


def test_inf_in_data(vae_pair):
    model, guide = vae_pair
    x = binary_batch(4)
    x[2, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf in x; clean the data"):
        infer.IWAE_ELBO(num_particles=2).loss(model, guide, x)


def test_wrong_dtype_in_training_data(vae_pair):
    model, guide = vae_pair
    with pytest.raises(TypeError, match=r"training data expects a floating-point x .*got dtype torch.uint8.*x.float"):
        fit(model, guide, infer.MonteCarloELBO(), binary_batch(10).to(torch.uint8),
            config=TrainConfig(epochs=1, batch_size=5, progress=False))


@pytest.mark.parametrize("option,value,message", [
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("lr", -1e-3, "lr must be > 0"),
    ("batch_size", 2.5, "batch_size must be an integer >= 1"),
    ("on_nonfinite", "ignore", "on_nonfinite must be one of stop, rollback"),
    ("rollback_lr_factor", 1.5, r"rollback_lr_factor must lie in \(0, 1\)"),
    ("checkpoint_every_steps", 0, "checkpoint_every_steps must be an integer >= 1"),
])
def test_invalid_training_option(option, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{option: value}).validate()


def test_truncated_mnist_pickle(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(mnist_pickle_path().read_bytes()[:5000])
    with pytest.raises(DataFileError, match="not a readable gzip file.*reinstall"):
        read_mnist_pickle(path, expected_sha256=None)


def test_cuda_asked_for_without_cuda(vae_pair, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    model, guide = vae_pair
    with pytest.raises(RuntimeError, match="device='cuda' was asked for but CUDA is not available.*device='cpu'"):
        fit(model, guide, infer.MonteCarloELBO(), binary_batch(10),
            config=TrainConfig(epochs=1, batch_size=5, device="cuda", progress=False))


# -- docs/errors.md: its tables are generated from tests/errors/, whose cases run here -------------

@pytest.mark.parametrize("case", error_table.CASES, ids=[c.id for c in error_table.CASES])
def test_documented_error(case, tmp_path, monkeypatch):
    """The documented message is the message a user sees (… = a part that depends on the call)."""
    err = case.trigger(tmp_path, monkeypatch)
    message = error_table.actual_message(err)
    if isinstance(err, error_table.CliFailure):
        assert err.code == error_table.expected_exit(case), err.stderr
        assert "Traceback" not in err.stderr
    else:
        assert case.error.split()[0] == type(err).__name__
    assert error_table.matches(case.message, message), f"documented:\n{case.message}\nactual:\n{message}"
    assert "\n" not in message, f"every refusal is one line (issue 34):\n{message}"


def test_docs_errors_table_is_generated_from_the_cases():
    text = (ROOT / "docs" / "errors.md").read_text()
    assert error_table.documented_table(text) == error_table.render(), "run: python -m tests.errors"
    assert len({c.id for c in error_table.CASES}) == len(error_table.CASES)


def test_every_surface_file_is_in_the_table():
    """A new tests/errors/<surface>.py is run and documented only once SURFACES names it."""
    machinery = {"__init__", "__main__", "table", "builders"}
    files = {p.stem for p in (ROOT / "tests" / "errors").glob("*.py")} - machinery
    assert files == {error_table.surface_name(s) for s in error_table.SURFACES}
    assert all(s.CASES and isinstance(s.TITLE, str) for s in error_table.SURFACES)


def test_float64_training_data_is_cast_to_the_parameters_dtype(tmp_path):
    """NumPy's default float64 trains exactly as the same values in float32 (cast, not refused)."""
    x = binary_batch(40, d=16)
    finals = []
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
        guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
        with warnings.catch_warnings():  # the conversion notice: its own test below
            warnings.simplefilter("ignore", DataDtypeWarning)
            fit(model, guide, infer.MonteCarloELBO(), x.to(dtype), x[:8].to(dtype),
                config=TrainConfig(epochs=2, batch_size=10, progress=False))
        finals.append(model.state_dict())
        assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    for name in finals[0]:
        assert torch.equal(finals[0][name], finals[1][name])


def test_float64_training_data_are_converted_with_a_one_line_notice():
    x = binary_batch(20, d=16).double()
    model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
    guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
    with pytest.warns(DataDtypeWarning) as notices:
        fit(model, guide, infer.MonteCarloELBO(), x, x[:4], config=TrainConfig(epochs=1, batch_size=10, progress=False))
    assert [str(n.message) for n in notices] == [
        f"the {name} data are float64 and the parameters float32: converted (values rounded to float32); pass "
        "x.to(torch.float32) to skip the conversion and this notice" for name in ("training", "validation")]
