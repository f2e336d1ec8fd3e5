"""experiments/air/export_recipe_zoo.py: a tiny recipe run of fidelity.py's plan enters a zoo of its own
with the numbers the worker measured on it, loads, and reproduces its recorded check."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "experiments" / "air"), str(ROOT / "experiments")]

import export_recipe_zoo  # noqa: E402
import fidelity  # noqa: E402

from pyro_air import zoo  # noqa: E402


class RecipeOnly(fidelity.Worker):
    """The recipe's VAE (seed 0, an empty recipe: the base's twin) and its full-test evaluation."""
    plan = [fidelity.train("base", "-", "base", role="baseline"),
            {**fidelity.train("r-vae-s0", "recipe", "the recipe", role="recipe"), "baseline": None, "recipe": {},
             "own": ["seed"]},
            {**fidelity.TASKS["r-vae-s0@full"]}]


@pytest.fixture(scope="module")
def worker_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity")
    assert fidelity.run_main(RecipeOnly, ["--worker", "--tiny", "--out", str(out), "--set", "test_samples=10",
                                          "--set", "epochs=2", "--only", "base", "r-vae-s0"]) == 0
    return out


def test_a_model_without_its_full_test_is_not_exported(worker_out, tmp_path):
    s = dict(fidelity.SCALES["tiny"], test_samples=10)
    assert export_recipe_zoo.test_numbers(worker_out, "r-vae-s0", s) is None
    assert export_recipe_zoo.export_task(worker_out, "r-vae-s0", "air-vae-mnist-v2", s, root=tmp_path / "zoo") is None
    assert not (tmp_path / "zoo").exists()


def test_the_exported_entry_records_the_workers_numbers_and_reproduces_its_check(worker_out, tmp_path):
    s = dict(fidelity.SCALES["tiny"], test_samples=10)
    assert fidelity.run_main(RecipeOnly, ["--worker", "--tiny", "--out", str(worker_out), "--set", "test_samples=10",
                                          "--set", "epochs=2", "--only", "r-vae-s0@full"]) == 0
    root = tmp_path / "zoo"
    entry = export_recipe_zoo.export_task(worker_out, "r-vae-s0", "air-vae-mnist-v2", s, root=root)
    full = json.loads((worker_out / "per_image" / "r-vae-s0@full.json").read_text())
    numbers = entry["test_numbers"]
    assert numbers["test_images"] == len(full["log_px"]) == s["full_test_points"]
    assert numbers["nll_iwae5000"]["mean"] == pytest.approx(-sum(full["log_px"]) / len(full["log_px"]), abs=1e-4)
    subset = json.loads((worker_out / "per_image" / "r-vae-s0.json").read_text())["log_px"]
    assert numbers["seeds_first_1000"] == {"r-vae-s0": pytest.approx(-sum(subset) / len(subset), abs=1e-4)}
    assert entry["budget"]["twin_of"] == "base" and entry["seed"] == 0
    assert zoo.names(root=root) == ["air-vae-mnist-v2"]
    model, guide = zoo.load("air-vae-mnist-v2", root=root)
    assert zoo.reproduce_check("air-vae-mnist-v2", root=root) == entry["check"]["neg_log_px"]


def test_each_entry_names_the_network_its_task_trained():
    assert "784-500-500-50" in export_recipe_zoo.network(fidelity.TASKS["r-vae-s0"])
    v3 = export_recipe_zoo.network(fidelity.TASKS["v3-wni-iwae8-s0"])
    assert "784-300-300-40" in v3 and "gated" in v3
    assert fidelity.ZOO_NAMES["v3-wni-iwae8-s0"] == "air-wni-iwae8-mnist-v3"
    assert export_recipe_zoo.WHAT["v3-wni-iwae8-s0"] == "Table 2 WNI-IWAE-8"
