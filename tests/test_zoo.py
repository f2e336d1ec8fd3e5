"""The zoo (pyro_air.zoo): a tiny trained run is exported into a zoo of its own, then loaded, checked,
listed, evaluated and diagnosed from it; damaged files are refused; and every model shipped with
pyro-air still has its file's SHA-256 and reproduces its recorded check."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import pyro_air.zoo
from pyro_air import zoo
from pyro_air.cli import main
from pyro_air.runs import build_run, load_split, vae_spec
from pyro_air.train import TrainConfig, fit
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.zoo import manifest
from tests.signal_worker import write_tiny_amat

SHIPPED = Path(pyro_air.zoo.__file__).resolve().parent
NAME = "tiny-vae"
SEED = 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(run directory, zoo directory, data directory): a 2-epoch VAE (hidden 16, z 2) on 200 random
    binary 784-pixel images, exported with a 20-image, 50-sample check."""
    base = tmp_path_factory.mktemp("zoo")
    (base / "data").mkdir()
    data_dir = write_tiny_amat(base / "data")
    spec = vae_spec(z_dim=2, hidden=(16,), dataset="mnist-amat")
    spec["data"]["data_dir"] = str(data_dir)
    model, guide, objective = build_run(spec, seed=SEED)
    config = TrainConfig(epochs=2, batch_size=20, lr=1e-3, seed=SEED, valid_size=30, valid_num_samples=5,
                         progress=False, threads=1)
    run = base / "run"
    fit(model, guide, objective, load_split(spec, "train"), load_split(spec, "valid"), config, run_dir=run, spec=spec)
    zoo.export(run, NAME, description="a tiny VAE for the tests", command="tests/test_zoo.py::built",
               budget={"epochs": 2, "train_size": 200}, test_numbers={"test -log p(x)": 550.0},
               check_points=20, check_samples=50, check_seed=1, root=base / "zoo")
    return run, base / "zoo", data_dir


@pytest.fixture
def zoo_dir(built, monkeypatch):
    """The built zoo as $PYRO_AIR_ZOO, its data as $PYRO_AIR_DATA (a shipped spec holds no data directory)."""
    run, root, data_dir = built
    monkeypatch.setenv("PYRO_AIR_ZOO", str(root))
    monkeypatch.setenv("PYRO_AIR_DATA", str(data_dir))
    return root


@pytest.fixture
def zoo_copy(built, tmp_path, monkeypatch):
    """A copy of the built zoo that a test may damage, as $PYRO_AIR_ZOO."""
    root = tmp_path / "zoo"
    shutil.copytree(built[1], root)
    monkeypatch.setenv("PYRO_AIR_ZOO", str(root))
    monkeypatch.setenv("PYRO_AIR_DATA", str(built[2]))
    return root


# -- export and load --------------------------------------------------------------------------------
def test_export_records_the_entry_and_a_float32_weights_only_file(zoo_dir, built):
    e = zoo.entry(NAME)
    path = zoo_dir / e["file"]
    assert e["file"] == f"weights/{NAME}.pt" and zoo.names() == [NAME]
    assert e["size_bytes"] == path.stat().st_size and e["sha256"] == manifest.sha256(path)
    assert e["seed"] == SEED and e["budget"]["train_config"]["seed"] == SEED and e["budget"]["epochs"] == 2
    assert e["spec"]["model"] == {"name": "bernoulli-vae", "cfg": {"x_dim": 784, "z_dim": 2, "hidden": [16]}}
    assert "data_dir" not in e["spec"]["data"]  # a local path is not shipped
    assert e["check"] == {**e["check"], "split": "test", "points": 20, "num_samples": 50, "seed": 1}
    assert e["command"] and e["git_commit"] and e["cpu"] and e["test_numbers"] == {"test -log p(x)": 550.0}
    stored = torch.load(path, weights_only=True)
    assert set(stored) == {"format_version", "model_state", "guide_state"}
    tensors = [*stored["model_state"].values(), *stored["guide_state"].values()]
    assert all(t.dtype == torch.float32 for t in tensors if t.is_floating_point())
    assert json.loads((zoo_dir / "manifest.json").read_text())["format_version"] == manifest.FORMAT_VERSION


def test_load_round_trips_the_parameters_exactly_in_eval_mode(zoo_dir, built):
    best = ckpt_io.load(built[0] / "best.pt")
    model, guide = zoo.load(NAME)
    assert not model.training and not guide.training
    for module, state in ((model, best["model_state"]), (guide, best["guide_state"])):
        loaded = module.state_dict()
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_the_recorded_check_is_reproduced(zoo_dir):
    check = zoo.entry(NAME)["check"]
    # the choices that change numbers
    assert set(check["kernels"]) == {"tanh", "linear", "linear_training", "chunk_elements"}
    assert zoo.reproduce_check(NAME) == check["neg_log_px"]  # same machine and threads: exactly


def test_root_argument_and_environment_name_the_same_zoo(zoo_dir, monkeypatch):
    monkeypatch.delenv("PYRO_AIR_ZOO")
    assert zoo.names(root=zoo_dir) == [NAME]
    model, _ = zoo.load(NAME, root=zoo_dir)
    assert model.z_dim == 2


def test_export_again_replaces_the_entry(zoo_copy, built):
    zoo.export(built[0], NAME, description="again", command="c", budget={}, test_numbers={}, check_points=5,
               check_samples=10)
    assert zoo.names() == [NAME] and zoo.entry(NAME)["description"] == "again"
    zoo.export(built[0], "another", description="a second entry", command="c", budget={}, test_numbers={},
               check_points=5, check_samples=10)
    assert zoo.names() == ["another", NAME]


def test_export_refuses_a_name_that_is_not_a_plain_file_name(zoo_copy, built):
    with pytest.raises(ValueError, match="also its file name"):
        zoo.export(built[0], "../escape", description="d", command="c", budget={}, test_numbers={})
    assert not (zoo_copy / "escape.pt").exists()


# -- the command line -------------------------------------------------------------------------------
def test_zoo_list_and_show(zoo_dir, capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "bernoulli-vae / gaussian / elbo" in out and "MB" in out and "IWAE-50" in out
    assert main(["zoo", "show", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == zoo.entry(NAME)
    assert main(["zoo", "show", NAME]) == 0  # a summary (issue 36: 115 lines of JSON)
    assert f"pyro-air evaluate zoo:{NAME}" in capsys.readouterr().out


def test_zoo_list_of_an_empty_zoo_says_how_to_add_one(tmp_path, monkeypatch, capsys):
    manifest.write_manifest({"models": []}, tmp_path)
    monkeypatch.setenv("PYRO_AIR_ZOO", str(tmp_path))
    assert main(["zoo", "list"]) == 0
    assert "holds no trained models yet" in capsys.readouterr().out


def test_evaluate_a_zoo_model_prints_what_its_run_directory_prints(zoo_dir, built, capsys):
    args = ["--num-samples", "10", "--max-points", "10", "--no-progress", "--threads", "1"]
    assert main(["evaluate", f"zoo:{NAME}", *args]) == 0
    from_zoo = capsys.readouterr().out
    assert main(["evaluate", str(built[0]), *args]) == 0
    assert from_zoo == capsys.readouterr().out and "test (n=10)" in from_zoo


def test_diagnose_a_zoo_model_writes_to_runs_zoo_name(zoo_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["diagnose", f"zoo:{NAME}", "--num-samples", "30", "--max-points", "5", "--no-progress"]) == 0
    assert (tmp_path / "runs" / f"zoo-{NAME}" / "khat.txt").is_file()
    assert "k-hat" in capsys.readouterr().out.lower()


# -- refused files ----------------------------------------------------------------------------------
def test_a_weight_file_with_one_flipped_byte_is_refused(zoo_copy):
    path = zoo_copy / zoo.entry(NAME)["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="corrupted or was tampered with, so it is not loaded. To fix it, export"):
        zoo.load(NAME)


def test_an_edited_manifest_hash_is_refused(zoo_copy):
    text = (zoo_copy / "manifest.json").read_text()
    digest = zoo.entry(NAME)["sha256"]
    (zoo_copy / "manifest.json").write_text(text.replace(digest, "0" * 64))
    with pytest.raises(zoo.ZooError, match="the manifest records 0000"):
        zoo.load(NAME)


def test_the_shipped_zoo_is_fixed_by_reinstalling():
    assert manifest.remedy(SHIPPED).startswith("reinstall pyro-air")


def test_an_unknown_name_lists_the_known_ones(zoo_dir):
    with pytest.raises(KeyError, match=f"unknown zoo model 'nope'; the zoo at .* holds: {NAME}"):
        zoo.load("nope")
    assert main(["evaluate", "zoo:nope"]) == 2


def test_a_missing_weight_file_is_a_clear_error(zoo_copy):
    (zoo_copy / zoo.entry(NAME)["file"]).unlink()
    with pytest.raises(zoo.ZooError, match=f"lists '{NAME}' but its weight file .* is missing"):
        zoo.load(NAME)


def test_a_manifest_pointing_outside_the_zoo_is_refused(zoo_copy):
    text = (zoo_copy / "manifest.json").read_text()
    (zoo_copy / "manifest.json").write_text(text.replace(f"weights/{NAME}.pt", "../elsewhere.pt"))
    with pytest.raises(zoo.ZooError, match="outside the zoo directory"):
        zoo.load(NAME)


# -- what ships -------------------------------------------------------------------------------------
def test_the_package_data_ships_the_manifest_and_the_weights():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(SHIPPED.parents[1] / "setup.cfg")
    assert cfg["options.package_data"]["pyro_air.zoo"].split(", ") == ["manifest.json", "weights/*.pt"]
    assert "!pyro_air/zoo/weights/*.pt" in (SHIPPED.parents[1] / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("name", zoo.names(root=SHIPPED))
def test_a_shipped_model_has_its_hash_and_reproduces_its_check(name):
    """Each shipped entry: the weight file's SHA-256 is the manifest's, and -log p(x) on the check's slice
    of test images (same samples, same seed) is the recorded value to within 0.05 nats (another CPU or
    thread count adds floats in another order)."""
    e = zoo.entry(name, root=SHIPPED)
    assert manifest.sha256(manifest.verified_weight_path(e, SHIPPED)) == e["sha256"]
    assert abs(zoo.reproduce_check(name, root=SHIPPED) - e["check"]["neg_log_px"]) < 0.05
