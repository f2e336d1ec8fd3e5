"""`pyro-air compare` (the README's main job) at a tiny budget: one table, three rows, paired Δ."""
import re

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
