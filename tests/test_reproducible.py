"""The same command twice gives the same output and the same final parameters: `pyro-air compare`,
`pyro-air train`, `pyro-air evaluate`, `fit` from Python and the AIR experiment script.

Between the two runs of each test the global random streams are disturbed, so a run that drew
anything (initial weights, evaluation samples) from whatever state the process was in would differ.
"""
import json
import re
import sys
from pathlib import Path

import torch

from pyro_air import guides, infer, models
from pyro_air.cli import main
from pyro_air.core.seeds import seed_all
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit
from pyro_air.train import checkpoints as checkpoint
from tests import signal_worker
from tests.conftest import binary_batch
from tests.helpers import assert_same_tensors

ROOT = Path(__file__).resolve().parents[1]
TIMES = re.compile(r"\d+(\.\d+)? s\b")  # elapsed seconds are the one thing a run may print differently


def _disturb_global_streams():
    torch.rand(17)
    torch.manual_seed(torch.randint(0, 2**31, ()).item() + 1)


def _states(run: Path, name: str = "checkpoint.pt") -> dict:
    state = checkpoint.load(run / name)
    return {"model": state["model_state"], "guide": state["guide_state"]}


def test_build_run_fixes_the_initial_weights_per_component():
    vae, dvae = vae_spec(z_dim=2, hidden=(8,)), vae_spec(z_dim=2, hidden=(8,), guide="denoising",
                                                          guide_cfg={"sigma": 0.3, "encoder": "gaussian"})
    model_a, guide_a, _ = build_run(vae, seed=3)
    _disturb_global_streams()
    model_b, guide_b, _ = build_run(vae, seed=3)
    assert_same_tensors(model_a.state_dict(), model_b.state_dict())
    assert_same_tensors(guide_a.state_dict(), guide_b.state_dict())
    model_c, _, _ = build_run(dvae, seed=3)  # another guide: the model's stream is not shifted
    assert_same_tensors(model_a.state_dict(), model_c.state_dict())
    model_d, _, _ = build_run(vae, seed=4)
    assert not torch.equal(model_a.state_dict()["decoder.0.weight"], model_d.state_dict()["decoder.0.weight"])


def test_fit_from_python_twice_gives_identical_parameters_and_validation_does_not_shift_training(tmp_path):
    spec = vae_spec(z_dim=2, hidden=(8,))
    x = binary_batch(60, seed=1)

    def run(name, valid_every):
        model, guide, objective = build_run(spec, seed=5)
        config = TrainConfig(epochs=3, batch_size=20, lr=1e-2, seed=5, valid_every=valid_every,
                             valid_num_samples=4, progress=False)
        fit(model, guide, objective, x, x[:10], config, run_dir=tmp_path / name, spec=spec)
        _disturb_global_streams()
        return _states(tmp_path / name), checkpoint.load(tmp_path / name)["history"]

    first, history = run("a", valid_every=1)
    second, history_again = run("b", valid_every=1)
    assert_same_tensors(first, second)
    assert [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history] == \
           [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in history_again]
    fewer_validations, _ = run("c", valid_every=3)  # validation draws come from their own stream
    assert_same_tensors(first, fewer_validations)


def test_fit_needs_the_caller_to_seed_modules_it_did_not_build():
    """fit seeds its own streams; modules built after seed_all(s) are as reproducible as build_run's."""
    def run():
        seed_all(11)
        model = models.build("bernoulli-vae", x_dim=16, z_dim=2, hidden=(8,))
        guide = guides.build("gaussian", x_dim=16, z_dim=2, hidden=(8,))
        fit(model, guide, infer.MonteCarloELBO(), binary_batch(20, d=16), config=TrainConfig(epochs=2, batch_size=10,
                                                                                      progress=False))
        _disturb_global_streams()
        return model.state_dict()

    assert_same_tensors(run(), run())


def test_train_twice_gives_identical_output_and_parameters(tmp_path, capsys):
    data_dir = signal_worker.write_tiny_amat(tmp_path)
    outputs = []
    for name in ("a", "b"):
        assert main(signal_worker.train_args(data_dir) + ["--run-dir", str(tmp_path / name)]) == 0
        outputs.append(TIMES.sub("T s", capsys.readouterr().out.replace(str(tmp_path / name), "RUN")))
        _disturb_global_streams()
    assert outputs[0] == outputs[1] and "best validation IWAE-5" in outputs[0]
    assert_same_tensors(_states(tmp_path / "a"), _states(tmp_path / "b"))
    assert_same_tensors(_states(tmp_path / "a", "best.pt"), _states(tmp_path / "b", "best.pt"))


def test_evaluate_twice_prints_the_same_table(tiny_cli_run, capsys):
    tables = []
    for _ in range(2):
        assert main(["evaluate", str(tiny_cli_run), "--num-samples", "7", "--max-points", "20", "--no-progress"]) == 0
        tables.append(capsys.readouterr().out)
        _disturb_global_streams()
    assert tables[0] == tables[1] and "test (n=20)" in tables[0]


def test_compare_twice_prints_the_same_table_and_trains_the_same_parameters(tmp_path, capsys):
    args = ["compare", "--epochs", "1", "--train-size", "200", "--hidden", "16", "--z-dim", "4", "--num-samples",
            "50", "--test-points", "50", "--valid-size", "50", "--no-progress"]
    outputs = []
    for name in ("a", "b"):
        assert main(args + ["--run-dir", str(tmp_path / name)]) == 0
        out = TIMES.sub("T s", capsys.readouterr().out).replace(str(tmp_path / name), "RUN_DIR")
        outputs.append(re.sub(r"\(\d+\.\d MB\)", "(SIZE)", out))  # where the runs went, and their size
        _disturb_global_streams()
    assert outputs[0] == outputs[1]
    table = outputs[0][outputs[0].index("\ntest, first 50 images"):]
    rows = [ln for ln in table.splitlines() if re.match(r"^(VAE|DVAE|WNI-VAE)\s", ln) and "±" in ln]
    assert [r.split()[0] for r in rows] == ["VAE", "DVAE", "WNI-VAE"]
    for method in ("vae", "dvae", "wni"):
        assert_same_tensors(_states(tmp_path / "a" / method, "best.pt"), _states(tmp_path / "b" / method, "best.pt"))


def test_air_experiment_script_twice_gives_identical_tables(tmp_path):
    sys.path.insert(0, str(ROOT / "experiments" / "air"))
    try:
        import run_air
    finally:
        sys.path.remove(str(ROOT / "experiments" / "air"))
    tiny = ["--epochs", "8=0", "--seeds", "1=0,1", "--grid", "dvae=0.25", "--grid", "wni=2",
            "--set", "train_size=200", "--set", "valid_size=50", "--set", "test_size=20", "--set", "valid_every=1",
            "--set", "test_num_samples=10", "--set", 'bound_estimates={"1": 2}',
            "--set", 'epochs={"1": 2, "8": 0, "64": 0}', "--set", 'arch={"hidden": [16], "z_dim": 2}']
    for name in ("a", "b"):
        assert run_air.main(tiny + ["--out", str(tmp_path / name)]) == 0
        _disturb_global_streams()
    results = (tmp_path / "a" / "results.md").read_text()
    assert results == (tmp_path / "b" / "results.md").read_text()
    assert "| VAE | — | 2 |" in results and "| WNI-VAE | H=2 | 2 |" in results
    for run in sorted((tmp_path / "a" / "runs").rglob("best.pt")):
        twin = tmp_path / "b" / run.relative_to(tmp_path / "a")
        assert_same_tensors(_states(run.parent, "best.pt"), _states(twin.parent, "best.pt"))
    record = json.loads((tmp_path / "a" / "runs/mnist/k1/vae/seed1/train.json").read_text())
    assert record["seed"] == 1 and len(record["valid_curve"]) == 2
