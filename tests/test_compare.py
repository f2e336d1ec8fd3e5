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


def test_compare_rejects_bad_hyperparameters_before_training(capsys, tmp_path):
    assert main(["compare", "--sigma", "-1", "--run-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "sigma" in err and not (tmp_path / "vae").exists()
    assert main(["compare", "--H", "0", "--run-dir", str(tmp_path), "--no-progress"]) == 2
    assert "H" in capsys.readouterr().err
