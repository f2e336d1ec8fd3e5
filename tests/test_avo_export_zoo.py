"""experiments/avo/export_zoo.py: tiny AVO Table 1a runs (table1a.py --tiny) enter a zoo of their own with the
numbers the worker measured on them, load (the hierarchical guide and the AVO objective rebuilt from the run
spec) and reproduce their recorded checks; a model without its test evaluation is not exported."""
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
sys.path[:0] = [str(ROOT / "experiments" / "avo"), str(ROOT / "experiments")]

import table1a  # noqa: E402

from pyro_air import zoo  # noqa: E402
from pyro_air.guides import HierarchicalGuide  # noqa: E402
from pyro_air.runs import load_run  # noqa: E402

# experiments/infovae and experiments/air have an export_zoo.py too: this one under a name of its own
_spec = importlib.util.spec_from_file_location("avo_export_zoo", ROOT / "experiments" / "avo" / "export_zoo.py")
export_zoo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_zoo)

TINY = table1a.SCALES["tiny"]
TASKS = ["vae-s0", "avo-s0", "ais-vae-s0", "ais-avo-s0", "vae-s1"]  # (+ the VAE and AVO grids they wait for)


@pytest.fixture(scope="module")
def worker_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("table1a")
    assert table1a.main(["--worker", "--tiny", "--out", str(out), "--only", *TASKS]) == 0
    return out


def _read(out: Path, name: str) -> dict:
    return json.loads((out / "per_image" / f"{name}.json").read_text())


def _ais(out: Path, task: str) -> list:
    chunks = sorted((out / "estimators" / f"ais-{task}").glob("T*_points*.json"),   # one T per model
                    key=lambda p: int(p.stem.split("_points")[1].split("-")[0]))
    return [v for p in chunks for v in json.loads(p.read_text())["log_px"]]


def _mean(values) -> float:
    return sum(values) / len(values)


def _ms(values) -> dict:
    """mean and standard error of the mean, as the entry records them (to its 4 digits)."""
    return {"mean": pytest.approx(_mean(values), abs=1e-4),
            "stderr": pytest.approx(statistics.stdev(values) / math.sqrt(len(values)), abs=1e-4)}


def test_a_model_without_its_test_evaluation_is_not_exported(worker_out, tmp_path):
    out = tmp_path / "table1a"
    shutil.copytree(worker_out, out)
    (out / "per_image" / "avo-s0.json").unlink()           # trained (best.pt on disk), its test not run
    assert (out / "runs" / "avo-s0" / "best.pt").exists()
    assert export_zoo.test_numbers(out, "avo-s0", TINY) is None
    assert export_zoo.export_task(out, "avo-s0", "avo-hvi-avo-mnist", TINY, root=tmp_path / "zoo") is None
    assert export_zoo.export_task(out, "hvi-s0", "avo-hvi-mnist", TINY, root=tmp_path / "zoo") is None  # never run
    assert not (tmp_path / "zoo").exists()
    next((out / "estimators" / "ais-vae-s0").glob("T*_points2-4.json")).unlink()   # a chunk missing: no AIS column yet
    numbers = export_zoo.test_numbers(out, "vae-s0", TINY)
    assert numbers is not None and "ais" not in numbers


def test_the_entries_record_the_workers_numbers_load_and_reproduce_their_checks(worker_out, tmp_path, capsys):
    shipped = (ROOT / "pyro_air" / "zoo" / "manifest.json").read_bytes()
    root = tmp_path / "zoo"
    assert export_zoo.main(["--tiny", "--out", str(worker_out), "--zoo", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "skip avo-hvi-mnist" in printed and "skip avo-hvi-avo-a0.5-mnist" in printed
    assert zoo.names(root=root) == ["avo-hvi-avo-mnist", "avo-vae-mnist"]

    S = TINY["test_samples"]
    per = {task: _read(worker_out, task) for task in ("vae-s0", "avo-s0", "vae-s1")}
    for task, name in (("vae-s0", "avo-vae-mnist"), ("avo-s0", "avo-hvi-avo-mnist")):
        numbers, r = zoo.entry(name, root=root)["test_numbers"], per[task]
        log_px, bound, train = r["log_px"], r["bound"], r["splits"]["train"]["neg_elbo"][0]
        assert numbers["test_images"] == len(log_px) == TINY["test_points"]
        assert numbers[f"nll_iwae{S}"] == _ms([-v for v in log_px])
        assert numbers["neg_bound"] == _ms([-v for v in bound])
        assert numbers["neg_bound_train"]["mean"] == pytest.approx(train, abs=1e-4)
        assert numbers["neg_bound_valid"]["mean"] == pytest.approx(r["splits"]["valid"]["neg_elbo"][0], abs=1e-4)
        assert numbers["gen_gap"] == pytest.approx(-_mean(bound) - train, abs=1e-4)        # -L_te - (-L_tr)
        assert numbers["var_gap"] == _ms([lp - b for lp, b in zip(log_px, bound)])         # -L_te - (-log p_te)
        ais = _ais(worker_out, task)
        assert len(ais) == numbers["ais"]["test_images"] == TINY["ais_points"]
        assert numbers["ais"]["nll"] == _ms([-v for v in ais])
        assert numbers["ais"]["minus_iwae_paired"] == _ms([lp - a for lp, a in zip(log_px, ais)])
        assert numbers["ais"]["steps"] in TINY["ais_ladder"] and numbers["ais"]["chains"] == TINY["ais_chains"]
        method = task[:-3]
        cells = [t for t in table1a.PLAN if t.get("role") == "select" and t["method"] == method]
        best = max(cells, key=lambda t: json.loads((worker_out / "runs" / t["name"] / "train.json").read_text())
                   ["best_valid"])
        assert numbers["chosen"] == {"lr": best["lr"], "warmup": best["warmup"], "cell": best["name"]}

    vae, avo = (zoo.entry(n, root=root)["test_numbers"] for n in ("avo-vae-mnist", "avo-hvi-avo-mnist"))
    # -log p_AVO - (-log p_VAE) on the same images, and on AIS's
    assert avo["minus_vae_paired"] == _ms([v - a for v, a in zip(per["vae-s0"]["log_px"], per["avo-s0"]["log_px"])])
    assert avo["ais"]["minus_vae_paired"] == _ms([v - a for v, a in zip(_ais(worker_out, "vae-s0"),
                                                                        _ais(worker_out, "avo-s0"))])
    assert "minus_vae_paired" not in vae
    assert vae["seeds"] == {t: pytest.approx(-_mean(per[t]["log_px"]), abs=1e-4) for t in ("vae-s0", "vae-s1")}
    assert "seeds" not in avo                                                       # one seed of AVO so far

    for task, name in (("vae-s0", "avo-vae-mnist"), ("avo-s0", "avo-hvi-avo-mnist")):
        e = zoo.entry(name, root=root)
        assert e["spec"] == json.loads((worker_out / "runs" / task / "train.json").read_text())["spec"]
        assert e["seed"] == 0 and e["budget"]["chosen_from"] == e["test_numbers"]["chosen"]["cell"]
        model, guide = zoo.load(name, root=root)
        run_model, run_guide, _ = load_run(worker_out / "runs" / task)
        for loaded, trained in ((model, run_model), (guide, run_guide)):
            a, b = loaded.state_dict(), trained.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k].float()) for k in a)
        assert zoo.reproduce_check(name, root=root) == e["check"]["neg_log_px"]
    spec = zoo.entry("avo-hvi-avo-mnist", root=root)["spec"]
    inner = spec["objective"]["cfg"].get("objective_cfg", spec["objective"]["cfg"])   # under kl-warmup or not
    assert spec["guide"]["name"] == "hierarchical" and inner["a"] == table1a.METHODS["avo"]["a"]
    assert isinstance(guide, HierarchicalGuide) and guide.num_transitions == TINY["transitions"]

    manifest = (root / "manifest.json").read_bytes()
    assert export_zoo.main(["--tiny", "--out", str(worker_out), "--zoo", str(root)]) == 0   # kept, not redone
    assert "keep avo-vae-mnist" in capsys.readouterr().out and (root / "manifest.json").read_bytes() == manifest
    assert (ROOT / "pyro_air" / "zoo" / "manifest.json").read_bytes() == shipped


def test_a_finished_run_whose_weights_are_gone_comes_back_from_its_zoo_entry(worker_out, tmp_path, monkeypatch):
    """A new machine has the committed records but no best.pt: ``load`` takes the weights back from the run's
    zoo entry (same seed, same best epoch) instead of training it again; an entry of another training
    (here: another best epoch) is not taken, and the run is trained again with its record set aside."""
    out, root = tmp_path / "table1a", tmp_path / "zoo"
    shutil.copytree(worker_out, out)
    assert export_zoo.main(["--tiny", "--out", str(out), "--zoo", str(root)]) == 0
    monkeypatch.setenv(zoo.manifest.ZOO_ENV, str(root))
    exported = {k: v.clone() for k, v in torch.load(out / "runs" / "avo-s0" / "best.pt")["guide_state"].items()}
    records = {p: p.read_bytes() for p in (out / "runs" / "avo-s0" / "train.json", out / "per_image" / "avo-s0.json")}
    for task in ("avo-s0", "vae-s0"):
        (out / "runs" / task / "best.pt").unlink()

    worker = table1a.Table1aWorker(out, scale="tiny")
    model, guide, spec = worker.load("avo-s0")
    assert isinstance(guide, HierarchicalGuide) and spec == zoo.entry("avo-hvi-avo-mnist", root=root)["spec"]
    for key, value in guide.state_dict().items():
        assert torch.equal(value, exported[key]), key
    assert all(p.read_bytes() == text for p, text in records.items())   # nothing redone, nothing set aside
    assert not (out / "runs" / "avo-s0" / "first-training").exists()

    train = json.loads((out / "runs" / "vae-s0" / "train.json").read_text())
    (out / "runs" / "vae-s0" / "train.json").write_text(json.dumps({**train, "best_epoch": train["best_epoch"] + 1}))
    assert not worker.restore_from_zoo("vae-s0") and not (out / "runs" / "vae-s0" / "best.pt").exists()
    assert not worker.restore_from_zoo("hvi-s0")   # never trained: nothing to restore
