"""Every plot writes a non-empty PNG and returns its Figure; `pyro-air diagnose` end to end."""
import json

import matplotlib
import pytest
import torch
from matplotlib.figure import Figure

from pyro_air.cli import main
from pyro_air.diagnostics import plots, psis_khat
from pyro_air.guides import ExactPosteriorGuide, GaussianEncoder
from pyro_air.models import BernoulliVAE
from tests.conftest import binary_batch

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path, fig):
    assert isinstance(fig, Figure)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000


@pytest.fixture
def tiny_vae():
    return BernoulliVAE(x_dim=784, z_dim=3, hidden=(16,)), GaussianEncoder(x_dim=784, z_dim=3, hidden=(16,))


def test_posterior_comparison_and_aggregate_posterior(tmp_path, linear_gaussian):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model, scale_factor=0.7)
    path = tmp_path / "cmp.png"
    assert_png(path, plots.plot_posterior_comparison(model, guide, x[:2], path, num_samples=200))
    path = tmp_path / "agg.png"
    assert_png(path, plots.plot_aggregate_posterior(model, guide, x, path))


def test_khat_histogram(tmp_path, linear_gaussian):
    model, x = linear_gaussian
    khat = psis_khat(model, ExactPosteriorGuide(model, scale_factor=0.5), x, num_samples=200)
    path = tmp_path / "sub" / "khat.png"
    assert_png(path, plots.plot_khat(torch.cat([khat, torch.tensor([float("inf")])]), path))


def test_training_curves_from_a_metrics_log(tmp_path):
    records = [{"epoch": e, "step": 10 * e, "train_loss": 200.0 / e, "lr": 1e-3 * 0.9 ** e, "epoch_seconds": 1.0,
                "valid_iwae5": -190.0 / e} for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    path = tmp_path / "curves.png"
    assert_png(path, plots.plot_training_curves(tmp_path, path))
    with pytest.raises(FileNotFoundError, match="no metrics log"):
        plots.plot_training_curves(tmp_path / "missing", path)


def test_reconstruction_and_sample_grids(tmp_path, tiny_vae):
    model, guide = tiny_vae
    path = tmp_path / "recon.png"
    assert_png(path, plots.plot_reconstructions(model, guide, binary_batch(12), path))
    path = tmp_path / "samples.png"
    assert_png(path, plots.plot_samples(model, path, num_samples=16))


def test_rgb_grids_use_the_models_image_shape(tmp_path):
    from pyro_air import guides, models

    model = models.build("conv-gaussian-vae", x_dim=75, z_dim=2, image_shape=(3, 5, 5), channels=[4], hidden=8)
    guide = guides.build("conv-gaussian", x_dim=75, z_dim=2, image_shape=(3, 5, 5), channels=[4], hidden=8)
    path = tmp_path / "recon.png"
    fig = plots.plot_reconstructions(model, guide, torch.rand(6, 75), path)
    assert_png(path, fig)
    assert fig.axes[0].images[0].get_array().shape == (7, 37, 3)  # one row of 6 RGB 5 x 5 tiles with borders
    path = tmp_path / "samples.png"
    assert_png(path, plots.plot_samples(model, path, num_samples=4))
    red = torch.zeros(1, 75)
    red[0, :25] = 1.0  # channel-first rows: the first 25 values are the red channel
    tile = plots._mosaic(red.numpy(), (3, 5, 5), 1)[1:6, 1:6]
    assert (tile == [1.0, 0.0, 0.0]).all()
    with pytest.raises(ValueError, match="images of 2 channels cannot be shown"):
        plots.plot_samples(models.build("conv-gaussian-vae", x_dim=50, z_dim=2, image_shape=(2, 5, 5)), path)


def test_plot_argument_errors(tmp_path, linear_gaussian, tiny_vae):
    model, x = linear_gaussian
    guide = ExactPosteriorGuide(model)
    with pytest.raises(ValueError, match="two different latent dimensions"):
        plots.plot_aggregate_posterior(model, guide, x, tmp_path / "a.png", dims=(0, 0))
    with pytest.raises(ValueError, match="does not hold x_dim=784"):
        plots.plot_samples(tiny_vae[0], tmp_path / "s.png", image_shape=(27, 27))
    with pytest.raises(ValueError, match="1 to 12 chosen datapoints"):
        plots.plot_posterior_comparison(model, guide, x, tmp_path / "c.png")


def test_diagnose_cli_end_to_end(tiny_cli_run, tmp_path, capsys):
    run = tiny_cli_run
    out_dir = tmp_path / "diag"
    assert main(["diagnose", str(run), "--num-samples", "50", "--max-points", "12", "--out", str(out_dir),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PSIS k-hat per datapoint (n=12" in out and "bad (k >= 0.7)" in out
    summary = json.loads((out_dir / "khat.json").read_text())
    assert len(summary["khat"]) == 12 and sum(r["count"] for r in summary["summary"]) == 12
    for name in ("khat.png", "posterior_comparison.png", "aggregate_posterior.png", "reconstructions.png",
                 "samples.png", "training_curves.png"):
        assert str(out_dir / name) in out
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC


def test_diagnose_cli_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nowhere")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_draws_on_a_few_points_are_plotted_without_a_density():
    """Resampled draws of a heavy-tailed datapoint repeat a few points; seaborn's contour fails on them
    ("Contour levels must be increasing"), so the panel shows the points and names their count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from pyro_air.diagnostics.plots import density_panel as kde

    fig, ax = plt.subplots()
    z = np.zeros((2000, 2))
    z[:3] = [[0.1, 0.2], [0.3, 0.1], [0.2, 0.5]]
    kde(ax, z, "tab:blue", "resampled p(z|x)")
    assert ax.collections[-1].get_label() == "resampled p(z|x) (4 distinct draws: no density)"
    plt.close(fig)
