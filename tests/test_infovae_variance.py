"""The InfoVAE variance experiment's library part (pyro_air/toys/infovae_variance.py; InfoVAE Figures 2, 3 and 5)
at a tiny budget, on synthetic binary images in place of MNIST: the fixed step budget, the seed, the figures."""
import matplotlib
import pytest
import torch

from pyro_air import guides, models
from pyro_air.toys import infovae_variance
from tests.conftest import binary_batch

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def small_mnist(monkeypatch):
    """data.load("mnist", "train", train_size=n) answered by n synthetic binary 28 x 28 images."""
    calls = []

    def load(name, split, train_size=None, **kwargs):
        calls.append((name, split, train_size))
        return binary_batch(train_size, 784, seed=train_size)

    monkeypatch.setattr(infovae_variance.data, "load", load)
    return calls


def test_the_objectives_are_the_elbo_and_mmd_infovae_of_eq_6():
    name, cfg = infovae_variance.OBJECTIVES["InfoVAE"]
    assert (name, cfg) == ("infovae", {"alpha": 0.0, "lam": 1000.0, "divergence": "mmd"})
    assert infovae_variance.OBJECTIVES["ELBO"] == ("elbo", {})


@pytest.mark.parametrize("train_size,batch_size,steps,epochs", [(40, 10, 8, 2), (40, 100, 3, 3), (30, 10, 1, 1)])
def test_every_training_set_size_gets_about_the_same_number_of_steps(small_mnist, train_size, batch_size, steps,
                                                                      epochs):
    model, guide, x, taken = infovae_variance.train_one("ELBO", train_size, z_dim=2, steps=steps, hidden=(8,),
                                                        batch_size=batch_size, seed=0)
    assert small_mnist == [("mnist", "train", train_size)] and x.shape == (train_size, 784)
    batches = train_size // min(batch_size, train_size)
    assert taken == epochs * batches  # whole epochs: the step budget rounded to them, at least one
    assert (model.z_dim, guide.z_dim) == (2, 2)


def test_the_seed_fixes_the_trained_weights(small_mnist):
    runs = [infovae_variance.train_one("InfoVAE", 20, z_dim=2, steps=2, hidden=(8,), batch_size=10, seed=s)[0]
            for s in (3, 3, 4)]
    first, again, other = (m.state_dict() for m in runs)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # tensors to contourf
def test_the_figures_are_written(tmp_path):
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", z_dim=2, hidden=(8,))
    pairs = [(label, guides.build("gaussian", z_dim=2, hidden=(8,))) for label in ("ELBO", "InfoVAE")]
    x = binary_batch(16, 784)
    contour = infovae_variance.contour_plot(pairs, x, tmp_path / "contour.png", train_size=500)
    assert [ax.get_title() for ax in contour.axes if ax.get_title()] == ["prior p(z)", "ELBO q(z)", "InfoVAE q(z)"]
    samples = infovae_variance.samples_plot([(label, model, guide) for label, guide in pairs], x, tmp_path / "s.png")
    assert len([ax for ax in samples.axes if ax.get_title()]) == 4
    rows = [{"objective": o, "train_size": n, "log_det_cov_test": v}
            for o, v in (("ELBO", 1.0), ("InfoVAE", 0.1)) for n in (500, 1000)]
    trend = infovae_variance.trend_plot(rows, tmp_path / "trend.png")
    assert [line.get_label() for line in trend.axes[0].get_lines()] == ["ELBO", "InfoVAE", "prior N(0, I)"]
    for name in ("contour.png", "s.png", "trend.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC

