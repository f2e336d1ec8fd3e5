"""experiments/infovae/pixelcnn_table.py at --tiny: the whole plan end to end into a temporary folder, and a
run broken by an error in the middle of its second epoch that resumes to the numbers of an
uninterrupted run."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "experiments" / "infovae"), str(ROOT / "experiments")]

import pixelcnn_table  # noqa: E402
from plan_worker import read_json  # noqa: E402


def test_tiny_plan_end_to_end(tmp_path, capsys):
    out = tmp_path / "pixelcnn"
    assert pixelcnn_table.main(["--worker", "--tiny", "--out", str(out)]) == 0
    assert "plan done" in capsys.readouterr().out
    results = read_json(out / "results.json")
    trained = [t["name"] for t in pixelcnn_table.PLAN if t["kind"] == "train"]
    assert sorted(results["runs"]) == sorted(trained)
    tiny = pixelcnn_table.SCALES["tiny"]
    for name in trained:
        run = results["runs"][name]
        latent = run["latent"]
        assert 0.0 - 0.05 <= latent["mutual_information"] <= latent["mi_cap"] + 1e-6
        assert 0 <= latent["active_units"] <= tiny["z_dim"] and len(latent["activity"]) == tiny["z_dim"]
        assert latent["points"] == tiny["metric_points"] and run["points"] == tiny["test_points"]
        assert run["collapsed"] == (latent["mutual_information"] < 0.1 and latent["active_units"] == 0)
    assert set(results["paired_mmd_minus_elbo"]) == {"first", "long", "deep", "first (mmd-rate)"}
    assert sorted(results["paired_mmd_minus_elbo"]["first (mmd-rate)"]["seeds"]) == ["0"]
    first = results["paired_mmd_minus_elbo"]["first"]
    assert sorted(first["seeds"]) == ["0", "1", "2"] and first["over_seeds"] is not None and "0" in first["full"]
    assert "nll_full" in results["runs"]["elbo-s0"] and "80.76" in (out / "table.md").read_text()
    assert pixelcnn_table.main(["--plan", "--tiny", "--out", str(out)]) == 0
    assert all(line.startswith("done") for line in capsys.readouterr().out.splitlines())


def test_an_error_mid_training_then_resume_gives_the_uninterrupted_numbers(tmp_path, monkeypatch, capsys):
    only = ["--only", "mmd-s0"]
    reference = tmp_path / "reference"
    assert pixelcnn_table.main(["--worker", "--tiny", "--out", str(reference), *only]) == 0

    build, calls = pixelcnn_table.PixelCNNTableWorker.build, {"n": 0}

    def breaking_build(self, spec, seed):
        model, guide, objective = build(self, spec, seed)
        loss = objective.differentiable_loss

        def differentiable_loss(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 8:   # step 3 of epoch 2 (5 steps an epoch): the last checkpoint is epoch 1's
                raise RuntimeError("the machine went away")
            return loss(*args, **kwargs)
        objective.differentiable_loss = differentiable_loss
        return model, guide, objective

    monkeypatch.setattr(pixelcnn_table.PixelCNNTableWorker, "build", breaking_build)
    broken = tmp_path / "broken"
    assert pixelcnn_table.main(["--worker", "--tiny", "--out", str(broken), *only]) == 1
    assert "worker failed: RuntimeError: the machine went away" in capsys.readouterr().out
    run_dir = broken / "runs" / "mmd-s0"
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "train.json").exists()
    monkeypatch.undo()

    assert pixelcnn_table.main(["--worker", "--tiny", "--out", str(broken), *only]) == 0
    assert read_json(run_dir / "train.json")["resumed"] is True
    a, b = (read_json(d / "per_image" / "mmd-s0.json") for d in (reference, broken))
    for key in ("log_px", "log_px_check", "bound", "latent"):
        assert a[key] == b[key], key
    ra, rb = (read_json(d / "runs" / "mmd-s0" / "train.json") for d in (reference, broken))
    assert ra["valid_curve"] == rb["valid_curve"] and ra["final_train_loss"] == rb["final_train_loss"]


def test_spec_is_the_chosen_pixelcnn_and_the_papers_mmd_setting(tmp_path):
    worker = pixelcnn_table.PixelCNNTableWorker(tmp_path)
    elbo, mmd = (worker.spec(t) for t in pixelcnn_table.PLAN[:2])
    assert elbo["model"] == {"name": "pixelcnn-vae", "cfg": {"x_dim": 784, "z_dim": 5, "channels": 16,
                                                             "num_layers": 4, "kernel_size": 5}}
    assert elbo["objective"] == {"name": "elbo", "cfg": {}}
    assert mmd["objective"] == {"name": "infovae", "cfg": {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"}}
    assert elbo["model"] == mmd["model"] and elbo["guide"] == mmd["guide"]


def test_the_deep_pair_differs_from_the_first_only_in_its_decoder_depth(tmp_path):
    worker = pixelcnn_table.PixelCNNTableWorker(tmp_path)
    tasks = {t["name"]: t for t in pixelcnn_table.PLAN}
    for method in ("elbo", "mmd"):
        first, deep = worker.spec(tasks[f"{method}-s0"]), worker.spec(tasks[f"{method}-deep-s0"])
        assert deep["model"]["cfg"].pop("num_layers") == 8 and first["model"]["cfg"].pop("num_layers") == 4
        assert deep == first
    # the earlier tasks' records are unchanged: only deep tasks carry the key
    assert "deep" not in tasks["elbo-s0"] and tasks["mmd-deep-s0"]["deep"] is True


def test_the_bounded_scale_mmd_run_differs_from_the_mmd_run_only_in_its_encoders_committed_rate(tmp_path):
    worker = pixelcnn_table.PixelCNNTableWorker(tmp_path)
    tasks = {t["name"]: t for t in pixelcnn_table.PLAN}
    mmd, rate = worker.spec(tasks["mmd-s0"]), worker.spec(tasks["mmd-rate-s0"])
    assert rate["guide"]["cfg"].pop("committed_rate") == 0.25
    assert rate == mmd
    from pyro_air.runs import build_run

    import torch

    _, guide, _ = build_run(worker.spec(tasks["mmd-rate-s0"]), seed=0)
    with torch.no_grad():
        _, scale = guide.loc_scale(torch.rand(3, 784) * 50)   # large inputs: the scale still stays below sigma_u
    assert float(scale.max()) <= guide.max_scale < 0.6   # q(z | x) can never be the prior N(0, 1)
