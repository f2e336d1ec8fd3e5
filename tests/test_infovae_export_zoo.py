"""experiments/infovae/export_zoo.py: tiny runs of the InfoVAE PixelCNN worker (pixelcnn_table.py --tiny) enter a
zoo of their own with the numbers the worker measured on them (the all-test IWAE and the seeds where they
finished), load, and reproduce their recorded checks; a model without its test evaluation is not exported."""
import importlib.util
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "experiments" / "infovae"), str(ROOT / "experiments")]

import pixelcnn_table  # noqa: E402

from pyro_air import zoo  # noqa: E402
from pyro_air.runs import load_run  # noqa: E402

# experiments/avo and experiments/air have an export_zoo.py too: this one under a name of its own
_spec = importlib.util.spec_from_file_location("infovae_export_zoo", ROOT / "experiments" / "infovae" / "export_zoo.py")
export_zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_zoo)

TINY = pixelcnn_table.SCALES["tiny"]
TASKS = ["elbo-s0", "mmd-s0", "elbo-s1", "fulltest-elbo-s0"]  # no full test of mmd-s0: its entry goes without


@pytest.fixture(scope="module")
def worker_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixelcnn")
    assert pixelcnn_table.main(["--worker", "--tiny", "--out", str(out), "--only", *TASKS]) == 0
    return out


def _read(out: Path, name: str) -> dict:
    return json.loads((out / "per_image" / f"{name}.json").read_text())


def _mean(values) -> float:
    return sum(values) / len(values)


def _ms(values) -> dict:
    """mean and standard error of the mean, as the entry records them (to its 4 digits)."""
    return {"mean": pytest.approx(_mean(values), abs=1e-4),
            "stderr": pytest.approx(statistics.stdev(values) / math.sqrt(len(values)), abs=1e-4)}


def test_a_model_without_its_test_evaluation_is_not_exported(worker_out, tmp_path):
    out = tmp_path / "pixelcnn"
    shutil.copytree(worker_out, out)
    (out / "per_image" / "mmd-s0.json").unlink()            # trained (best.pt on disk), its test not run
    assert (out / "runs" / "mmd-s0" / "best.pt").exists()
    assert export_zoo.test_numbers(out, "mmd-s0", TINY) is None
    assert export_zoo.export_task(out, "mmd-s0", "infovae-mmd-mnist", TINY, root=tmp_path / "zoo") is None
    assert not (tmp_path / "zoo").exists()
    (out / "estimators" / "fulltest-elbo-s0" / "points6-12.json").unlink()  # a chunk missing: no all-test number
    numbers = export_zoo.test_numbers(out, "elbo-s0", TINY)
    assert numbers is not None and "all_test" not in numbers


def test_the_entries_record_the_workers_numbers_load_and_reproduce_their_checks(worker_out, tmp_path, capsys):
    shipped = (ROOT / "pyro_air" / "zoo" / "manifest.json").read_bytes()
    root = tmp_path / "zoo"
    assert export_zoo.main(["--tiny", "--out", str(worker_out), "--zoo", str(root)]) == 0
    assert zoo.names(root=root) == ["infovae-elbo-mnist", "infovae-mmd-mnist"]

    S, C = TINY["test_samples"], TINY["check_samples"]
    per = {task: _read(worker_out, task) for task in ("elbo-s0", "mmd-s0", "elbo-s1")}
    for task, name in pixelcnn_table.ZOO_NAMES.items():
        numbers, r = zoo.entry(name, root=root)["test_numbers"], per[task]
        assert numbers["test_images"] == len(r["log_px"]) == TINY["test_points"]
        assert numbers[f"nll_iwae{S}"] == _ms([-v for v in r["log_px"]])
        assert numbers[f"nll_iwae{C}"] == _ms([-v for v in r["log_px_check"]])
        assert numbers["neg_bound"] == _ms([-v for v in r["bound"]])
        lat, got = r["latent"], numbers["latent"]
        assert got["test_images"] == lat["points"] == TINY["metric_points"]
        assert got["mutual_information"] == pytest.approx(lat["mutual_information"], abs=1e-4)
        assert (got["active_units"], got["z_dim"]) == (lat["active_units"], TINY["z_dim"])
        assert got["kl"] == {"mean": pytest.approx(lat["kl"], abs=1e-4),
                             "stderr": pytest.approx(lat["kl_se"], abs=1e-4)}
        assert got["mmd"] == pytest.approx(lat["mmd"], abs=1e-6)
        assert got["mi_cap"] == pytest.approx(math.log(TINY["metric_points"]), abs=1e-4)
        assert got["collapsed"] == (lat["mutual_information"] < 0.1 and lat["active_units"] == 0)

    elbo, mmd = (zoo.entry(n, root=root)["test_numbers"] for n in pixelcnn_table.ZOO_NAMES.values())
    full = [v for a in range(0, TINY["full_test_points"], TINY["full_test_chunk"]) for v in json.loads(
        (worker_out / "estimators" / "fulltest-elbo-s0" / f"points{a}-{a + TINY['full_test_chunk']}.json").read_text())
        ["log_px"]]
    assert elbo["all_test"] == {"test_images": TINY["full_test_points"], f"nll_iwae{S}": _ms([-v for v in full])}
    assert "all_test" not in mmd                                                    # its full test has not run
    # -log p_MMD - (-log p_ELBO) on the same images
    assert mmd["mmd_minus_elbo_paired"] == _ms([e - m for e, m in zip(per["elbo-s0"]["log_px"],
                                                                       per["mmd-s0"]["log_px"])])
    assert "mmd_minus_elbo_paired" not in elbo
    assert elbo["seeds"] == {t: pytest.approx(-_mean(per[t]["log_px"]), abs=1e-4) for t in ("elbo-s0", "elbo-s1")}
    assert "seeds" not in mmd                                                       # one seed of MMD so far

    for task, name in pixelcnn_table.ZOO_NAMES.items():
        e = zoo.entry(name, root=root)
        assert e["spec"] == json.loads((worker_out / "runs" / task / "train.json").read_text())["spec"]
        assert (e["check"]["points"], e["check"]["num_samples"]) == (TINY["test_points"], C)
        model, guide = zoo.load(name, root=root)
        run_model, run_guide, _ = load_run(worker_out / "runs" / task)
        for loaded, trained in ((model, run_model), (guide, run_guide)):
            a, b = loaded.state_dict(), trained.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k].float()) for k in a)
        assert zoo.reproduce_check(name, root=root) == e["check"]["neg_log_px"]

    manifest = (root / "manifest.json").read_bytes()
    assert export_zoo.main(["--tiny", "--out", str(worker_out), "--zoo", str(root)]) == 0   # kept, not redone
    assert "keep infovae-mmd-mnist" in capsys.readouterr().out
    assert (root / "manifest.json").read_bytes() == manifest
    assert (ROOT / "pyro_air" / "zoo" / "manifest.json").read_bytes() == shipped
