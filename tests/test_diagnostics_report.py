"""What ``pyro-air diagnose`` writes (pyro_air/diagnostics/report.py): the k-hat table and JSON, the plots a
model and guide allow, and an output folder that cannot send a file elsewhere."""
import json
import re

import pytest
import torch

from pyro_air.diagnostics import khat_summary
from pyro_air.diagnostics.report import OUTPUT_FILES, check_output_dir, khat_note, write_diagnostics
from pyro_air.guides import ExactPosteriorGuide, GaussianEncoder
from pyro_air.models import BernoulliVAE, LinearGaussianModel
from tests.conftest import binary_batch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_posterior_comparison_titles_show_the_khat_table_of_the_same_draws(tmp_path):
    model, guide = BernoulliVAE(x_dim=784, z_dim=3, hidden=(16,)), GaussianEncoder(x_dim=784, z_dim=3, hidden=(16,))
    torch.manual_seed(0)
    x = binary_batch(9, 784)
    report = write_diagnostics(model, guide, x, tmp_path, num_samples=60)
    table = json.loads((tmp_path / "khat.json").read_text())["khat"]
    assert torch.allclose(report.khat, torch.tensor(table, dtype=report.khat.dtype))
    parsed = [re.fullmatch(r"(best|median|worst): x #(\d+): k-hat (-?\d+\.\d\d)", t) for t in report.panel_titles]
    assert all(parsed) and [m[1] for m in parsed] == ["best", "median", "worst"], report.panel_titles
    for m in parsed:  # the title's k-hat is the table's entry for that datapoint, rounded
        assert m[3] == f"{table[int(m[2])]:.2f}"
    assert int(parsed[0][2]) == min(range(9), key=table.__getitem__)
    assert int(parsed[2][2]) == max(range(9), key=table.__getitem__)
    assert sorted(table)[4] == table[int(parsed[1][2])]
    for name in ("khat.txt", "khat.json", "khat.png", "posterior_comparison.png", "aggregate_posterior.png",
                 "reconstructions.png", "samples.png"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "training_curves.png").exists()  # no metrics log given


def test_one_latent_and_non_square_data_get_the_khat_files_and_the_curves_only(tmp_path):
    """z_dim = 1 has no pair of dimensions to plot and 5 values are no square image; the exact posterior
    makes every weight equal, a perfect fit (k-hat 0 for every datapoint)."""
    model = LinearGaussianModel(x_dim=5, z_dim=1, noise_scale=0.5, seed=2)
    x = model.marginal().sample((6,)).detach()
    records = [{"epoch": e, "step": e, "train_loss": 9.0 / e, "lr": 1e-3, "valid_iwae5": -8.0 / e} for e in (1, 2)]
    out = tmp_path / "new" / "folder"
    report = write_diagnostics(model, ExactPosteriorGuide(model), x, out, num_samples=40, metrics=records,
                               label="simulated")
    assert set(report.files) == {"khat table", "khat json", "khat histogram", "training curves"}
    assert sorted(p.name for p in out.iterdir()) == ["khat.json", "khat.png", "khat.txt", "training_curves.png"]
    assert (out / "training_curves.png").read_bytes()[:8] == PNG_MAGIC
    assert torch.equal(report.khat, torch.zeros(6)) and report.panel_titles == []
    saved = json.loads((out / "khat.json").read_text())
    assert saved == {"num_samples": 40, "label": "simulated", "summary": khat_summary(report.khat), "khat": [0.0] * 6}
    assert (out / "khat.txt").read_text() == report.khat_table + "\n"
    assert report.khat_table.startswith("simulated, S=40 guide draws per datapoint\nPSIS k-hat per datapoint (n=6;")


def test_an_output_folder_is_checked_before_anything_is_created(tmp_path):
    assert check_output_dir(tmp_path / "not" / "yet") == tmp_path / "not" / "yet"
    assert not (tmp_path / "not").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"file is a file, not a directory; pass --out DIR for the diagnostics$"):
        check_output_dir(tmp_path / "file")


@pytest.mark.parametrize("name", OUTPUT_FILES)
def test_an_output_file_that_is_a_symbolic_link_is_refused(tmp_path, name):
    out = tmp_path / "diag"
    out.mkdir()
    (out / name).symlink_to(tmp_path / "victim")
    with pytest.raises(ValueError) as err:
        check_output_dir(out)
    assert str(err.value) == (f"{out / name} is a symbolic link (to {tmp_path / 'victim'}); pyro-air writes "
                              f"diagnostics only as regular files inside {out}: remove the link or pass another "
                              "--out DIR")
    assert not (tmp_path / "victim").exists()


def test_the_khat_note_says_what_share_of_bad_is_typical_and_what_to_do():
    """issue 36: `diagnose zoo:air-vae-mnist` printed "bad 99 %" with no word on whether that is expected."""
    note = khat_note(0.99, 50, "gaussian")
    assert note.startswith("note: k-hat >= 0.7 on 99% of the images is typical for an amortized gaussian guide "
                           "with a 50-dimensional latent")
    assert "--iw-svi-steps 100" in note and "--num-samples" in note
    assert "more than usual" in khat_note(0.6, 2, "gaussian")
    assert "IWAE-S is unreliable for those" in khat_note(0.2, 50, "gaussian")
    assert khat_note(0.05, 50, "gaussian") == ("note: k-hat < 0.7 on 95% of the images: the guide is a reliable "
                                               "importance proposal for them")
