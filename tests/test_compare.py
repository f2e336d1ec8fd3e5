"""`pyro-air compare` (the README's main job) at a tiny budget: one table, three rows, paired Δ; and the
pyro_air.compare package's modules that only it tests (``air``: the comparison behind the command)."""
import inspect
import os
import re
import signal

import pytest

from pyro_air.cli import main


def test_compare_prints_vae_dvae_wni_rows_with_paired_differences(capsys, tmp_path):
    rc = main(["compare", "--epochs", "1", "--train-size", "200", "--hidden", "16", "--z-dim", "3",
               "--valid-size", "40", "--test-points", "20", "--num-samples", "10", "--sigma", "0.3",
               "--alpha", "0.5", "--H", "2", "--run-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = [ln for ln in out.splitlines() if re.match(r"^(VAE|DVAE|WNI-VAE)\s", ln) and "±" in ln]
    assert [r.split()[0] for r in rows] == ["VAE", "DVAE", "WNI-VAE"]
    assert "sigma=0.3, alpha=0.5" in rows[1] and "H=2" in rows[2]
    assert rows[0].rstrip().endswith("0.00 ± 0.00")  # the baseline's paired difference with itself
    assert "Δ(-log p) vs VAE" in out and "IWAE-10" in out
    header = out[out.index("\ntest, first 20 images"):out.index("-log p(x)      gap")].strip().splitlines()
    assert 1 < len(header) < 6 and max(len(line) for line in header) <= 100  # not one 220-character line
    trained = [ln for ln in out.splitlines() if "trained on 200 MNIST images" in ln]
    assert len(trained) == 3 and "early-stopped" not in out  # no --patience: it never stops early
    for line, method in zip(trained, ["vae", "dvae", "wni"]):
        assert re.search(r"best validation IWAE-20 -\d+\.\d\d at epoch 1 of 1; run in ", line), line
        assert line.endswith(str(tmp_path / method))
    assert f"runs (checkpoints, metrics.jsonl, best.pt): {tmp_path}/ (" in out and " MB)" in out


def test_compare_progress_bars_name_the_model_and_checkpoints_follow_the_policy(capsys, tmp_path, monkeypatch):
    from pyro_air.train import checkpoints

    real_save, written = checkpoints.atomic_save, []

    def counting_save(obj, path):
        written.append((path.parent.name, path.name, obj.get("epoch")))
        return real_save(obj, path)

    monkeypatch.setattr(checkpoints, "atomic_save", counting_save)
    rc = main(["compare", "--epochs", "5", "--train-size", "100", "--hidden", "8", "--z-dim", "2",
               "--valid-size", "20", "--test-points", "10", "--num-samples", "5", "--run-dir", str(tmp_path),
               "--checkpoint-every-epochs", "2"])
    err = capsys.readouterr().err
    assert rc == 0
    for model in ("VAE", "DVAE", "WNI-VAE"):
        assert f"{model}: epoch 1/5" in err and f"{model}: epoch 5/5" in err
    for method in ("vae", "dvae", "wni"):  # epochs 2, 4 and the last; not every epoch
        assert [e for run, name, e in written if run == method and name == "checkpoint.pt"] == [2, 4, 5]


def test_compare_rejects_bad_hyperparameters_before_training(capsys, tmp_path):
    assert main(["compare", "--sigma", "-1", "--run-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "sigma" in err and not (tmp_path / "vae").exists()
    assert main(["compare", "--H", "0", "--run-dir", str(tmp_path), "--no-progress"]) == 2
    assert "H" in capsys.readouterr().err


TINY = dict(epochs=1, train_size=100, hidden=[8], z_dim=2, valid_size=20, test_points=5, num_samples=5, threads=1,
            progress=False)


def test_compare_air_returns_the_rows_the_notes_and_the_run_folder_and_writes_no_stderr(capsys, tmp_path):
    """pyro_air.compare.air: the library behind `pyro-air compare` (the command only parses, calls and prints)."""
    from pyro_air.compare import AIR_COLUMNS, compare_air

    result = compare_air(**TINY, H=100.0, run_dir=tmp_path / "cmp")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert list(result.rows) == ["VAE", "DVAE (sigma=0.25, alpha=1)", "WNI-VAE (H=100)"]
    delta = result.rows["VAE"][AIR_COLUMNS[-1]]
    assert (delta.mean, delta.stderr, delta.n) == (0.0, 0.0, 5)  # the baseline's paired difference with itself
    assert all(set(AIR_COLUMNS) <= set(row) for row in result.rows.values())
    assert result.test_points == 5 and result.run_dir == tmp_path / "cmp"
    assert list(result.runs.values()) == [tmp_path / "cmp" / m for m in ("vae", "dvae", "wni")]
    assert all((run / "best.pt").is_file() for run in result.runs.values())
    assert result.notes == ["note: the weight-norm cap H=100 does not bind: every trained encoder row's norm is "
                            "below its cap, so WNI-VAE is the plain VAE up to float rounding; give a smaller --H "
                            "(e.g. 0.5) to regularize"]
    assert [ln.split(":")[0] for ln in captured.out.splitlines()] == [
        "VAE", "DVAE (sigma=0.25, alpha=1)", "WNI-VAE (H=100)"]  # one line per trained model


def test_an_air_comparison_checks_everything_before_it_writes(tmp_path):
    from pyro_air.compare import AirComparison
    from pyro_air.train.run_dir import RunDirError

    with pytest.raises(ValueError, match="sigma"):
        AirComparison(**TINY, sigma=-1.0, run_dir=tmp_path / "new")
    with pytest.raises(ValueError, match="--test-points must be >= 1, got 0"):
        AirComparison(**{**TINY, "test_points": 0}, run_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("keep")
    with pytest.raises(RunDirError, match="a new comparison would mix its files with those"):
        AirComparison(**TINY, run_dir=tmp_path / "old")
    assert os.listdir(tmp_path / "old") == ["notes.txt"]


def test_an_interrupted_compare_prints_the_hint_for_the_model_it_stopped_and_exits_with_the_signals_code(
        capsys, tmp_path, monkeypatch):
    from pyro_air.compare import air
    from pyro_air.train.signals import TrainingInterrupted

    real_fit = air.fit

    def fit_stopped_in_dvae(*args, run_dir=None, **kw):
        if run_dir.name == "dvae":
            raise TrainingInterrupted(signal.SIGTERM, 1, 3, run_dir / "checkpoint.pt")
        return real_fit(*args, run_dir=run_dir, **kw)

    monkeypatch.setattr(air, "fit", fit_stopped_in_dvae)
    rc = main(["compare", "--epochs", "1", "--train-size", "100", "--hidden", "8", "--z-dim", "2", "--valid-size",
               "20", "--test-points", "5", "--num-samples", "5", "--run-dir", str(tmp_path), "--no-progress"])
    assert rc == 143
    assert capsys.readouterr().err == (
        "pyro-air: compare interrupted at DVAE epoch 1 step 3; `pyro-air compare` has no --resume: run the same "
        "command again with --overwrite (the partial runs are moved aside)\n")


def test_compare_air_has_the_commands_defaults():
    """One set of defaults: `pyro-air compare` without options runs AirComparison's."""
    from pyro_air.cli.main import build_parser
    from pyro_air.compare import AirComparison

    args = vars(build_parser().parse_args(["compare"]))
    for name, parameter in inspect.signature(AirComparison).parameters.items():
        if name in ("threads", "progress"):
            continue  # the command's --threads / --no-progress
        assert args[name] == (list(parameter.default) if name == "hidden" else parameter.default), name
