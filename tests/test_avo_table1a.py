"""experiments/avo/table1a.py at --tiny: the whole plan end to end into a temporary folder, and a run
stopped by SIGTERM in the middle of an epoch that resumes to the numbers of an uninterrupted run."""
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "experiments" / "avo"), str(ROOT / "experiments")]

import table1a  # noqa: E402
from plan_worker import read_json, write_json  # noqa: E402


def test_tiny_plan_end_to_end(tmp_path, capsys):
    out = tmp_path / "table1a"
    assert table1a.main(["--worker", "--tiny", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "plan done" in log and "worker failed" not in log
    results = read_json(out / "results.json")
    full = [t["name"] for t in table1a.PLAN if t.get("role") == "full"]
    assert sorted(results["runs"]) == sorted(full)
    for name in full:
        run = results["runs"][name]
        assert {"nll", "neg_elbo", "neg_elbo_train", "neg_elbo_valid", "gen_gap", "var_gap"} <= set(run)
        assert run["points"] == table1a.SCALES["tiny"]["test_points"]
        per_image = read_json(out / "per_image" / f"{name}.json")
        assert len(per_image["log_px"]) == len(per_image["bound"]) == run["points"]
    for m in ("vae", "avo", "hvi"):
        assert "ais" in results["runs"][f"{m}-s0"] and "nll_valid" in results["runs"][f"{m}-s0"]
        assert results["chosen"][m]["task"].startswith(f"sel-{m}-")
    assert set(results["paired_against_vae"]) == {"hvi", "avo", "avo-a0.5"}
    assert results["paired_against_vae"]["avo"]["over_seeds"] is not None      # three seeds of both
    for m in ("vae", "avo", "hvi"):   # each model's AIS ran at the T its own BDMC ladder chose
        ladder = results["bdmc_widths"][f"{m}-s0"]
        T = results["runs"][f"{m}-s0"]["ais_T"]
        first_narrow = next((int(k) for k, w in ladder.items() if w[0] < table1a.SCALES["tiny"]["max_width"]), None)
        assert T == (first_narrow or table1a.SCALES["tiny"]["ais_ladder"][-1])
        assert sorted(int(k) for k in ladder) == table1a.SCALES["tiny"]["ais_ladder"][:table1a.SCALES["tiny"]["ais_ladder"].index(T) + 1]
    table = (out / "table.md").read_text()
    assert "## Table 1a, seed 0" in table and "87.50" in table                # the paper's numbers beside ours
    # every task is done: a second worker does nothing and the plan says so
    assert table1a.main(["--worker", "--plan", "--tiny", "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("[")]
    assert len(lines) == len(table1a.PLAN) and all(line.startswith("done") for line in lines)
    assert (out / "runs" / "vae-s0" / "metrics.jsonl").exists() and (out / "runs" / "vae-s0" / "best.pt").exists()


def test_sigterm_mid_epoch_then_resume_gives_the_uninterrupted_numbers(tmp_path, monkeypatch):
    """HVI-AVO a = 0.5 at seed 0 takes ELBO, ELBO, AVO, AVO steps at --tiny (its step-choice stream):
    SIGTERM during step 3 (epoch 2 of 2) stops the worker with a mid-epoch checkpoint, and the resumed
    run must take step 4 as the uninterrupted one does, so both end with the same test numbers."""
    only = ["--only", "avo-a0.5-s0"]
    reference = tmp_path / "reference"
    assert table1a.main(["--worker", "--tiny", "--out", str(reference), *only]) == 0

    build, calls = table1a.Table1aWorker.build, {"n": 0}

    def interrupting_build(self, spec, seed):
        model, guide, objective = build(self, spec, seed)
        cfg = spec["objective"]["cfg"]
        if cfg.get("objective_cfg", cfg).get("a") == 0.5:   # avo-a0.5-s0, not its grid (a = 0.2)
            loss = objective.differentiable_loss

            def differentiable_loss(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 3:
                    # the training loop's handler is in place (never the default, which would end pytest)
                    assert callable(signal.getsignal(signal.SIGTERM))
                    os.kill(os.getpid(), signal.SIGTERM)
                return loss(*args, **kwargs)
            objective.differentiable_loss = differentiable_loss
        return model, guide, objective

    monkeypatch.setattr(table1a.Table1aWorker, "build", interrupting_build)
    stopped = tmp_path / "stopped"
    assert table1a.main(["--worker", "--tiny", "--out", str(stopped), *only]) == 143
    assert calls["n"] == 3
    run_dir = stopped / "runs" / "avo-a0.5-s0"
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "train.json").exists()
    assert not (stopped / "per_image" / "avo-a0.5-s0.json").exists()
    monkeypatch.undo()

    assert table1a.main(["--worker", "--tiny", "--out", str(stopped), *only]) == 0
    assert read_json(run_dir / "train.json")["resumed"] is True
    a, b = (read_json(d / "per_image" / "avo-a0.5-s0.json") for d in (reference, stopped))
    assert a["log_px"] == b["log_px"] and a["bound"] == b["bound"] and a["splits"] == b["splits"]
    ra, rb = (read_json(d / "runs" / "avo-a0.5-s0" / "train.json") for d in (reference, stopped))
    assert ra["best_valid"] == rb["best_valid"] and ra["valid_curve"] == rb["valid_curve"]


def test_an_evaluation_cut_short_continues_from_its_last_batch(tmp_path, monkeypatch):
    """A worker that dies in the test evaluation (here: an error in the validation split's ELBO, after the
    test images' IWAE and ELBO and the training split are done) leaves ``partial/<task>/``; the same command
    reads those back and writes the per-image file an uninterrupted worker writes, then drops the folder."""
    only = ["--only", "avo-a0.5-s0"]
    reference = tmp_path / "reference"
    assert table1a.main(["--worker", "--tiny", "--out", str(reference), *only]) == 0

    elbo, calls = table1a.elbo, {"n": 0}

    def failing_elbo(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:   # the validation split: the training split's call has returned
            raise RuntimeError("killed")
        return elbo(*args, **kwargs)

    monkeypatch.setattr(table1a, "elbo", failing_elbo)
    cut = tmp_path / "cut"
    assert table1a.main(["--worker", "--tiny", "--out", str(cut), *only]) == 1
    partial = cut / "partial" / "avo-a0.5-s0"
    assert {f.name for f in partial.rglob("*.pt")} == {"log_px.pt", "bound.pt", "train.pt"}
    assert not (cut / "per_image" / "avo-a0.5-s0.json").exists()
    monkeypatch.undo()

    assert table1a.main(["--worker", "--tiny", "--out", str(cut), *only]) == 0
    a, b = (read_json(d / "per_image" / "avo-a0.5-s0.json") for d in (reference, cut))
    assert a["log_px"] == b["log_px"] and a["bound"] == b["bound"] and a["splits"] == b["splits"]
    assert a["resumed"] is False and b["resumed"] is True
    assert not partial.exists()


@pytest.mark.parametrize("method", ["vae", "hvi", "avo"])
def test_specs_are_the_papers_networks(tmp_path, method):
    worker = table1a.Table1aWorker(tmp_path)
    task = next(t for t in table1a.PLAN if t["name"] == f"{method}-s0")
    spec = worker.spec(task, {"lr": 1e-3, "warmup": 0.25})
    assert spec["model"]["cfg"] == {"x_dim": 784, "z_dim": 40, "hidden": [300, 300], "activation": "gated"}
    assert spec["guide"]["cfg"]["activation"] == "gated" and spec["guide"]["cfg"]["hidden"] == [300, 300]
    assert spec["objective"]["name"] == "kl-warmup" and spec["objective"]["cfg"]["fraction"] == 0.25
    if method != "vae":
        assert spec["guide"]["name"] == "hierarchical" and spec["guide"]["cfg"]["num_transitions"] == 5
    inner = spec["objective"]["cfg"]
    assert (inner["objective"], inner["objective_cfg"].get("a")) == (
        {"vae": ("elbo", None), "hvi": ("elbo", None), "avo": ("avo", 0.2)}[method])
    assert worker.spec(task, {"lr": 1e-3, "warmup": 0.0})["objective"]["name"] == inner["objective"]


def test_the_ais_T_is_the_first_rung_of_the_ladder_whose_bdmc_sandwich_is_narrow(tmp_path):
    import table1a_report

    s = {"ais_ladder": [100, 300, 1000], "bdmc_points": 4, "bdmc_chunk": 2, "max_width": 0.2}

    def rung(T, width, chunks=(0, 2)):
        for start in chunks:
            write_json(tmp_path / f"T{T}_points{start}-{start + 2}.json",
                       {"lower": [-90.0, -91.0], "upper": [-90.0 + width, -91.0 + width]})

    assert table1a_report.chosen_T(tmp_path, s) is None             # nothing run
    rung(100, 0.5)
    assert table1a_report.chosen_T(tmp_path, s) is None             # too wide: the next rung is needed
    rung(300, 0.15, chunks=(0,))
    assert table1a_report.chosen_T(tmp_path, s) is None             # half of the points only
    rung(300, 0.15, chunks=(2,))
    assert table1a_report.chosen_T(tmp_path, s) == 300
    assert table1a_report.bdmc_widths(tmp_path, s)[100][:2] == pytest.approx((0.5, 0.0))
    wide = tmp_path / "wide"
    for T in s["ais_ladder"]:
        for start in (0, 2):
            write_json(wide / f"T{T}_points{start}-{start + 2}.json", {"lower": [0.0, 0.0], "upper": [0.4, 0.4]})
    assert table1a_report.chosen_T(wide, s) == 1000                 # none narrow enough: the ladder's top
