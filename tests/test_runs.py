"""Run specs (pyro_air/runs.py): the quickstart set-up that `pyro-air quickstart` and tutorial 01 share."""
import contextlib
import io
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from pyro_air import evaluate
from pyro_air.cli import main
from pyro_air.core.seeds import stream_seed
from pyro_air.runs import QUICKSTART_EPOCHS, build_run, load_split, quickstart_setup, vae_spec
from pyro_air.train import checkpoints, fit

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "01_quickstart.ipynb"
TINY = dict(epochs=1, train_size=300, test_points=20, num_samples=10)


def test_quickstart_setup_is_the_air_mnist_vae():
    spec, config = quickstart_setup()
    assert spec == vae_spec()  # 784-500-500-50, Gaussian encoder, ELBO, static MNIST, all 50000 images
    assert spec["model"]["cfg"] == {"x_dim": 784, "z_dim": 50, "hidden": [500, 500]}
    assert (config.epochs, config.batch_size, config.lr, config.valid_size, config.valid_num_samples) == (
        QUICKSTART_EPOCHS, 100, 1e-3, 1000, 50)
    assert quickstart_setup(train_size=500)[0]["data"]["train_size"] == 500


def test_the_tutorial_calls_the_quickstart_setup():
    code = "\n".join("".join(c["source"]) for c in json.loads(TUTORIAL.read_text())["cells"]
                     if c["cell_type"] == "code")
    assert "quickstart_setup(" in code and "build_run(spec, seed=SEED)" in code
    assert 'stream_seed(SEED, "evaluation")' in code
    assert "small=dict(epochs=3, train_size=None, test_points=1000, num_samples=1000)" in code  # the CLI's defaults


def test_the_cli_and_the_tutorials_steps_print_the_same_table(tmp_path):
    """At a tiny budget: `pyro-air quickstart` and the notebook's cells train the same parameters and
    print the same table (same set-up, seed, streams and thread count)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["quickstart", "--epochs", str(TINY["epochs"]), "--train-size", str(TINY["train_size"]),
                     "--test-points", str(TINY["test_points"]), "--num-samples", str(TINY["num_samples"]),
                     "--no-progress", "--run-dir", str(tmp_path / "cli")]) == 0
    cli_table = out.getvalue().split("\n", 1)[1]  # after the "trained ... in N s" line

    seed = 0  # the notebook's cells, at the same budget
    spec, config = quickstart_setup(epochs=TINY["epochs"], train_size=TINY["train_size"], seed=seed, progress=False)
    model, guide, objective = build_run(spec, seed=seed)
    x_train, x_valid = load_split(spec, "train"), load_split(spec, "valid")
    x_test = load_split(spec, "test")[: TINY["test_points"]]
    fit(model, guide, objective, x_train, x_valid, config, run_dir=tmp_path / "notebook", spec=spec)
    rows = {f"VAE test (n={len(x_test)})": evaluate.summarize(model, guide, x_test, num_samples=TINY["num_samples"],
                                                              progress=False, seed=stream_seed(seed, "evaluation"))}
    table = (f"-log p(x) is IWAE-{TINY['num_samples']}; gap = log p(x) - ELBO; mean ± standard error, nats\n"
             f"{evaluate.format_table(rows)}\n")
    assert table == cli_table
    cli, notebook = checkpoints.load(tmp_path / "cli"), checkpoints.load(tmp_path / "notebook")
    assert cli["spec"] == notebook["spec"] and cli["train_config"] == notebook["train_config"] == asdict(config)
    assert all(torch.equal(cli["model_state"][k], v) for k, v in notebook["model_state"].items())


def test_a_directory_of_runs_names_the_runs_it_holds(tmp_path):
    """issue 36: `pyro-air diagnose runs/compare` said only that there was no checkpoint."""
    import pytest

    from pyro_air.runs import load_run
    from pyro_air.train.checkpoints import CheckpointError

    for name in ("wni", "dvae", "vae"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"^{tmp_path} holds no run of its own but the runs vae, dvae, wni: "
                                              f"pass one, e.g. {tmp_path / 'vae'}$"):
        load_run(tmp_path)


@pytest.mark.parametrize("guide, cfg, hidden", [
    ("gaussian", {}, (7, 7)), ("weightnorm", {"H": 1.0}, (7, 7)), ("gaussian-large", {}, (7, 7, 7)),
    ("denoising", {"sigma": 0.2}, (7, 7)),
])
def test_vae_spec_gives_every_encoder_the_decoder_sizes(guide, cfg, hidden):
    _, g, _ = build_run(vae_spec(guide=guide, guide_cfg=cfg, hidden=(7, 7), z_dim=3))
    assert getattr(g, "encoder", g).hidden == hidden
