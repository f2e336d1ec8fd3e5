"""experiments/air/fidelity.py (AIR issue 32's worker) and fidelity_report.py: the plan is well formed,
each task's run spec is the AIR method it names, the choices stage 2 makes from earlier results (the
k = 8 grid, the bf16 check, the AIS steps) follow their stated rules, and a tiny plan runs end to end
into a report."""
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "experiments" / "air"), str(ROOT / "experiments")]

import fidelity  # noqa: E402
import fidelity_report  # noqa: E402

from pyro_air.compare import air_spec  # noqa: E402


def _stage2_plan():
    return fidelity.PLAN + ([] if fidelity.RECIPE is not None else fidelity.stage2({}))


def test_every_task_name_is_unique_and_every_baseline_and_dependency_is_a_task():
    plan = _stage2_plan()
    names = [t["name"] for t in plan]
    assert len(names) == len(set(names))
    for t in plan:
        for key in ("baseline", "of", "run"):
            if t.get(key):
                assert t[key] in names, (t["name"], key, t[key])
        if t.get("select"):
            assert all(g in names for g in fidelity.GRIDS[t["select"]])
    assert all(n in names for n in fidelity.BF16_CHECK)


@pytest.mark.parametrize("name, method, k, kwargs", [
    ("r-dvae-a0.5-s0", "dvae", 1, {"sigma": 0.1, "alpha": 0.5}),
    ("r-wni-s0", "wni", 1, {"H": 2.0}),
    ("t2-iwae8-s0", "vae", 8, {}),
    ("g8-dvae-0.3", "dvae", 8, {"sigma": 0.3, "alpha": 1.0}),
])
def test_a_stage2_task_trains_the_air_method_it_names(name, method, k, kwargs):
    task = {t["name"]: t for t in fidelity.stage2({})}[name]
    spec = fidelity.Worker(Path("unused"), "tiny").spec(task)
    expected = air_spec(method, k, train_size=fidelity.SCALES["tiny"]["train_size"], **kwargs)
    assert spec["guide"] == expected["guide"] and spec["objective"] == expected["objective"]
    assert spec["model"] == expected["model"]


def test_the_screening_base_is_the_zoo_vae_spec():
    spec = fidelity.Worker(Path("unused"), "full").spec(fidelity.TASKS["base"])
    from pyro_air.zoo.manifest import read_manifest

    vae = next(e for e in read_manifest()["models"] if e["name"] == "air-vae-mnist")["spec"]
    assert {k: spec[k] for k in ("model", "guide", "objective")} == {k: vae[k] for k in ("model", "guide", "objective")}


def test_the_v3_vae_is_the_avo_papers_vae_and_its_air_rows_change_only_the_encoder():
    """Stage 3: v3-vae-s0 has the network, objective and seed of the shipped AVO VAE (so it trains to
    the same numbers); its DVAE / WNI rows differ from it only in the encoder, as the recipe's rows do."""
    from pyro_air.runs import build_run
    from pyro_air.zoo.manifest import read_manifest

    worker = fidelity.Worker(Path("unused"), "full")
    v3 = {key: worker.spec(fidelity.TASKS[f"v3-{key}-s0"]) for key in fidelity.TABLE1}
    avo = next(e for e in read_manifest()["models"] if e["name"] == "avo-vae-mnist")
    assert {k: v3["vae"][k] for k in ("model", "guide", "data")} == {k: avo["spec"][k] for k in ("model", "guide", "data")}
    assert fidelity.TASKS["v3-vae-s0"]["seed"] == avo["seed"] == 0
    # the same warm-up, written in two ways: the objectives built from both specs schedule the same beta
    ours, theirs = (build_run({**v3["vae"], "objective": o}, seed=0)[2]
                    for o in (v3["vae"]["objective"], avo["spec"]["objective"]))
    assert (ours.schedule.start, ours.schedule.end, ours.schedule.fraction) == \
        (theirs.schedule.start, theirs.schedule.end, theirs.schedule.fraction) == (0.0, 1.0, 0.25)
    assert type(ours.objective) is type(theirs.objective) and ours.objective.num_particles == theirs.objective.num_particles
    for key, guide in (("dvae-a0.5", "denoising"), ("dvae-a1", "denoising"), ("wni", "weightnorm")):
        assert v3[key]["guide"]["name"] == guide
        assert {k: v3[key]["guide"]["cfg"][k] for k in ("hidden", "z_dim", "activation")} == \
            {"hidden": [300, 300], "z_dim": 40, "activation": "gated"}
        assert {k: v3[key][k] for k in ("model", "objective", "data")} == {k: v3["vae"][k] for k in ("model", "objective", "data")}
    assert fidelity.TASKS["v3-wni-s0"]["H"] == fidelity.SELECTED["H"]
    assert fidelity.TASKS["v3-dvae-a1-s0"]["sigma"] == fidelity.SELECTED["sigma"]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_the_grid_choice_is_the_best_validation_bound_and_waits_for_every_cell(tmp_path):
    grids = {"wni": ["g-a", "g-b", "g-c"]}
    for name, H, valid in (("g-a", 1.0, -95.0), ("g-b", 2.0, -94.2), ("g-c", 4.0, -94.9)):
        _write(tmp_path / "runs" / name / "train.json", {"task": {"H": H, "sigma": None}, "best_valid": valid})
    assert fidelity_report.grid_choice(tmp_path, "wni", grids) == 2.0
    (tmp_path / "runs" / "g-c" / "train.json").unlink()
    with pytest.raises(RuntimeError, match="has not finished"):
        fidelity_report.grid_choice(tmp_path, "wni", grids)


def _bf16_files(out: Path, shifts: dict, noise: dict):
    """Per-image log p of float32 / bf16 runs: bf16 = float32 + shift (per seed)."""
    names = []
    for seed in (0, 1, 2):
        f32 = [-90.0 - noise[seed] - 0.1 * i for i in range(10)]
        for precision, values in (("float32", f32), ("bf16", [v + shifts[seed] for v in f32])):
            name = f"p8-{precision}-s{seed}"
            names.append(name)
            _write(out / "per_image" / f"{name}.json", {"log_px": values})
            _write(out / "runs" / name / "train.json", {"epoch_seconds_median": 10.0 if precision == "float32" else 6.0})
    return names


def test_bf16_is_used_when_the_paired_difference_is_within_seed_noise(tmp_path):
    names = _bf16_files(tmp_path, shifts={0: 0.05, 1: -0.04, 2: 0.01}, noise={0: 0.0, 1: 0.3, 2: -0.2})
    v = fidelity_report.bf16_verdict(tmp_path, names)
    assert v["use_bf16"] and v["epoch_speedup"] == [10.0 / 6.0] * 3
    assert v["mean"] == pytest.approx(-(0.05 - 0.04 + 0.01) / 3)  # log p32 - log p16 = -(shift)
    assert v["seed_sd_float32"] == pytest.approx(math.sqrt(((0.0 - 1 / 30) ** 2 + (0.3 - 1 / 30) ** 2
                                                            + (-0.2 - 1 / 30) ** 2) / 2))


def test_bf16_is_refused_when_it_shifts_the_result_beyond_seed_noise(tmp_path):
    names = _bf16_files(tmp_path, shifts={0: -0.5, 1: -0.52, 2: -0.48}, noise={0: 0.0, 1: 0.05, 2: -0.05})
    assert not fidelity_report.bf16_verdict(tmp_path, names)["use_bf16"]


def test_the_ais_steps_are_the_larger_of_the_bdmc_choice_and_the_real_data_plateau(tmp_path):
    s = dict(fidelity.SCALES["tiny"], bdmc_points=2, ladder_points=2, ladder_steps=[2, 4, 8], ladder_tol=0.1,
             max_width=0.2)
    est = tmp_path / "estimators"
    _write(est / "bdmc-zoo-vae" / "T2_points0-2.json", {"T": 2, "lower": [-1.0, -1.0], "upper": [-0.9, -0.95]})
    assert fidelity_report.chosen_T(tmp_path, s) == (None, False)  # the real-data ladder has not run
    for T, values in ((2, [-10.5, -20.5]), (4, [-10.05, -20.1]), (8, [-10.0, -20.0])):
        _write(est / "ais-ladder-zoo-vae" / f"T{T}_points0-2.json", {"T": T, "log_px": values})
    assert fidelity_report.ladder_T(tmp_path, s) == 4  # 0.075 below T = 8, within 0.1
    assert fidelity_report.chosen_T(tmp_path, s) == (4, True)


def test_a_tiny_plan_runs_and_reports(tmp_path):
    out = tmp_path / "fidelity"
    code = fidelity.run_main(fidelity.Worker, ["--worker", "--tiny", "--out", str(out), "--set", "test_samples=10",
                                               "--set", "epochs=2", "--only", "base", "seed1"])
    assert code == 0
    runs = {name: json.loads((out / "per_image" / f"{name}.json").read_text()) for name in ("base", "seed1")}
    for r in runs.values():
        assert r["points"] == fidelity.SCALES["tiny"]["test_points"] == len(r["log_px"]) == len(r["bound"])
    # the report's paired difference is the mean over the same images of -log p(seed1) - (-log p(base))
    delta = [b - a for a, b in zip(runs["seed1"]["log_px"], runs["base"]["log_px"])]
    row = json.loads((out / "results.json").read_text())["rows"]["seed1"]
    assert row["delta"][0] == pytest.approx(sum(delta) / len(delta))
    assert "| seed1 | seed | seed 1 |" in (out / "table.md").read_text()


def test_the_recipe_takes_each_factors_best_fix_beyond_two_errors(tmp_path):
    """Seed spread from base / seed1 (0.1 nats apart, so the spread is 0.1); "lr" helps by 0.5 (beyond 2
    errors), "batch" by 0.1 (within noise), "act" hurts: the recipe is the "lr" task's change only."""
    plan = [fidelity.train("base", "-", "base", role="baseline"),
            fidelity.train("seed1", "seed", "seed 1", role="nuisance", seed=1),
            fidelity.train("lr", "learning rate", "lr", lr=5e-4),
            fidelity.train("batch", "batch size", "batch", batch_size=20),
            fidelity.train("act", "activation", "act", activation="relu")]
    base = [-90.0 - 0.37 * (i % 7) for i in range(40)]
    for name, shift in (("base", 0.0), ("seed1", 0.1), ("lr", 0.5), ("batch", 0.1), ("act", -1.0)):
        _write(tmp_path / "per_image" / f"{name}.json", {"log_px": [v + shift for v in base], "bound": base,
                                                          "points": 40, "wall_seconds": 1.0})
    s = fidelity.SCALES["tiny"]
    assert fidelity_report.recipe_from_screening(tmp_path, plan, s) == {"lr": 5e-4}
    (tmp_path / "per_image" / "act.json").unlink()
    with pytest.raises(RuntimeError, match="act has not finished"):
        fidelity_report.recipe_from_screening(tmp_path, plan, s)


def _screening(tmp_path, shifts: dict, jitter=0.3):
    """per_image files: base's log p plus, per task, a shift and (except base and seed1) a zero-mean jitter
    of size ``jitter``, so a task's paired Δ is -shift with a s.e. of about jitter / sqrt(40)."""
    base = [-90.0 - 0.37 * (i % 7) for i in range(40)]
    for name, shift in shifts.items():
        noise = 0.0 if name in ("base", "seed1") else jitter
        values = [v + shift + noise * (1 if i % 2 else -1) for i, v in enumerate(base)]
        _write(tmp_path / "per_image" / f"{name}.json", {"log_px": values, "bound": base, "points": 40,
                                                          "wall_seconds": 1.0})


def _fixes_plan():
    return [fidelity.train("base", "-", "base", role="baseline"),
            fidelity.train("seed1", "seed", "seed 1", role="nuisance", seed=1),
            fidelity.train("lr", "learning rate", "lr", lr=5e-4),
            fidelity.train("long", "training length", "300 epochs", epochs_factor=1.5),
            fidelity.train("warm", "KL warm-up", "warm-up", objective="kl-warmup", objective_cfg={"fraction": 0.25}),
            fidelity.train("relu", "activation", "relu", activation="relu"),
            fidelity.train("elu", "activation", "elu", activation="elu")]


def test_the_combined_run_takes_each_factors_best_fix_below_minus_its_standard_error(tmp_path):
    """lr helps by 0.3 and 300 epochs by 0.2 (s.e. ~0.05: kept); warm-up by 0.01 (within its s.e.: left
    out); of the activations ELU beats ReLU, so ELU is the activation factor's fix."""
    _screening(tmp_path, {"base": 0.0, "seed1": 0.1, "lr": 0.3, "long": 0.2, "warm": 0.01, "relu": 0.1, "elu": 0.15})
    s = fidelity.SCALES["tiny"]
    assert fidelity_report.negative_fixes(tmp_path, _fixes_plan(), s) == {"lr": 5e-4, "epochs_factor": 1.5,
                                                                          "activation": "elu"}
    _screening(tmp_path, {"lr": -0.3, "long": -0.2, "elu": -0.1, "relu": -0.1})  # every fix hurts: the base
    assert fidelity_report.negative_fixes(tmp_path, _fixes_plan(), s) == {}
    (tmp_path / "per_image" / "elu.json").unlink()
    with pytest.raises(RuntimeError, match="elu has not finished"):
        fidelity_report.negative_fixes(tmp_path, _fixes_plan(), s)


def test_the_recipe_is_the_combined_run_only_when_it_is_beyond_two_errors_and_beats_each_single_fix(tmp_path):
    """Seed spread 0.1. No single fix is beyond 2 errors (0.15 < 0.2 + ...): the rule alone gives {};
    the combined run at 0.5 is beyond them, so the recipe is its (recorded) settings; at 0.15 it is not."""
    plan = _fixes_plan() + [{**fidelity.train("combined", "combined fixes", "together", role="combined"),
                             "recipe": "negative", "own": []}]
    s = fidelity.SCALES["tiny"]
    _write(tmp_path / "runs" / "combined" / "train.json", {"task": {**plan[-1], "lr": 5e-4, "epochs_factor": 1.5},
                                                          "best_epoch": 3, "epochs": 3, "best_valid": -90.0,
                                                          "epoch_seconds_sum": 3.0, "epoch_seconds_median": 1.0})
    for combined, expected in ((0.5, {"lr": 5e-4, "epochs_factor": 1.5}), (0.15, {})):
        _screening(tmp_path, {"base": 0.0, "seed1": 0.1, "lr": 0.15, "long": 0.1, "warm": 0.0, "relu": -1.0,
                              "elu": -1.0, "combined": combined}, jitter=0.01)
        assert fidelity_report.recipe_from_screening(tmp_path, plan, s) == expected
    # a record written before the network's sizes joined BASE (sessions 1-7) lacks them: their defaults
    _write(tmp_path / "runs" / "combined" / "train.json", {"task": {k: v for k, v in {**plan[-1], "lr": 5e-4}.items()
                                                                    if k not in ("hidden", "z_dim")},
                                                          "best_epoch": 3, "epochs": 3, "best_valid": -90.0,
                                                          "epoch_seconds_sum": 3.0, "epoch_seconds_median": 1.0})
    _screening(tmp_path, {"base": 0.0, "seed1": 0.1, "lr": 0.15, "long": 0.1, "warm": 0.0, "relu": -1.0,
                          "elu": -1.0, "combined": 0.5}, jitter=0.01)
    assert fidelity_report.recipe_from_screening(tmp_path, plan, s) == {"lr": 5e-4}
    (tmp_path / "per_image" / "combined.json").unlink()
    with pytest.raises(RuntimeError, match="combined has not finished"):
        fidelity_report.recipe_from_screening(tmp_path, plan, s)


def test_a_task_with_a_finished_runs_settings_reuses_that_run(tmp_path):
    """The recipe's VAE at seed 0 with an empty recipe is the screening's base: same settings, same seed,
    so its run is copied (recorded as a twin), not trained again, and it measures the same numbers."""
    class Twins(fidelity.Worker):
        plan = [fidelity.train("base", "-", "base", role="baseline"),
                {**fidelity.train("r-vae-s0", "recipe", "the recipe", role="recipe"), "recipe": {}, "own": ["seed"]}]

    out = tmp_path / "fidelity"
    assert fidelity.run_main(Twins, ["--worker", "--tiny", "--out", str(out), "--set", "test_samples=10",
                                     "--set", "epochs=2"]) == 0
    record = json.loads((out / "runs" / "r-vae-s0" / "train.json").read_text())
    assert record["twin_of"] == "base" and record["task"]["name"] == "r-vae-s0"
    assert (out / "runs" / "r-vae-s0" / "best.pt").read_bytes() == (out / "runs" / "base" / "best.pt").read_bytes()
    per_image = [json.loads((out / "per_image" / f"{n}.json").read_text())["log_px"] for n in ("base", "r-vae-s0")]
    assert per_image[0] == per_image[1]


def test_the_bound_and_gap_rows_put_log_p_by_ais_and_the_elbo_beside_the_papers():
    """-ELBO 95.00 on all images; on the subset AIS is 1 nat above IWAE-5000 per image, so -log p(x) is
    90.00 - 1.00 = 89.00 and the gap 95.00 - 89.00 = 6.00, against the paper's 95.48 / 86.93 / 8.54."""
    rows = {"r-vae-s0@full": {"neg_elbo": (95.0, 0.1), "nll": (90.0, 0.1)}}
    est = {"r-vae-s0": {"iwae5000": [-90.0, -91.0, -89.5], "ais-T100": [-89.0, -90.0, -88.5]}}
    lines = fidelity_report.bound_and_gap(rows, est, 100)
    assert "| -L (ELBO) | 95.48 | 95.00 ± 0.10 | -0.48 |" in lines
    assert "| -log p(x) (ours: IWAE-5000 + AIS offset -1.00) | 86.93 | 89.00 | +2.07 |" in lines
    assert "| gap log p(x) - ELBO | 8.54 | 6.00 | -2.54 |" in lines
    assert fidelity_report.bound_and_gap({}, est, 100) == []


def test_the_decomposition_adds_the_schedule_to_the_combined_run_when_it_is_beyond_two_errors():
    """The zoo VAE is 0.93 worse than base (so the schedule explains -0.93); ELU alone (-0.49) is within
    2 errors of a 0.28 seed spread, the combined run (-0.76) beyond them; the estimator -1.35. Left:
    90.65 - 1.35 - 0.93 - 0.76 - 86.93 = +0.68. Without the combined run only the schedule counts."""
    def row(role, factor, delta, baseline="base"):
        return {"role": role, "factor": factor, "delta": (delta, 0.05), "baseline": baseline, "change": factor,
                "task": factor}

    rows = {"zoo-vae": row("reference", "schedule", 0.93), "base": {"role": "baseline"},
            "elu": row("fix", "activation", -0.49), "combined": row("combined", "combined fixes", -0.76)}
    est = {"air-vae-mnist": {"iwae5000": [-90.0, -91.0], "ais-T100": [-88.65, -89.65]}}
    last = fidelity_report.decomposition(rows, 0.28, est, 100)[-1]
    assert last.startswith("| unexplained if the schedule and the fixes measured together (combined fixes) were taken | +0.68 |")
    del rows["combined"]
    last = fidelity_report.decomposition(rows, 0.28, est, 100)[-1]
    assert last.startswith("| unexplained if the best fix of each factor (beyond 2 errors) added up | +1.44 |")


def test_the_decomposition_ends_with_the_recipes_vae_measured_by_its_own_ais_offset():
    rows = {"zoo-vae": {"role": "reference", "factor": "schedule", "delta": (0.93, 0.05), "baseline": "base",
                        "change": "s", "task": "zoo-vae"}, "base": {"role": "baseline"},
            "r-vae-s0@full": {"role": "recipe", "nll": (89.0, 0.2)}}
    est = {"air-vae-mnist": {"iwae5000": [-90.0], "ais-T100": [-88.65]},
           "r-vae-s0": {"iwae5000": [-88.0, -89.0], "ais-T100": [-87.5, -88.5]}}
    last = fidelity_report.decomposition(rows, 0.28, est, 100)[-1]
    assert last.startswith("| measured instead: the recipe's VAE by AIS (IWAE-5000 on all images 89.00, its own AIS "
                           "offset -0.50) - paper | +1.57 | 0.20 |")


def test_the_decomposition_adds_the_network_step_and_stage_3s_vae_by_its_own_ais_offset():
    rows = {"base": {"role": "baseline"},
            "r-vae-s0@full": {"role": "recipe", "nll": (89.0, 0.2), "_log_px": [-88.0, -90.0]},
            "v3-vae-s0@full": {"role": "recipe", "nll": (88.0, 0.2), "_log_px": [-87.2, -88.8]}}
    est = {"air-vae-mnist": {"iwae5000": [-90.0], "ais-T100": [-88.65]},
           "r-vae-s0": {"iwae5000": [-88.0, -89.0], "ais-T100": [-87.5, -88.5]},
           "v3-vae-s0": {"iwae5000": [-87.0, -88.0], "ais-T100": [-86.3, -87.3]}}
    lines = fidelity_report.decomposition(rows, 0.28, est, 100)
    network = next(line for line in lines if line.startswith("| network: v3-vae-s0 vs r-vae-s0"))
    assert "| -1.00 | 0.34 |" in network   # paired (-0.8, -1.2): -1.0 ± 0.2, with the seed spread 0.28
    assert lines[-1].startswith("| measured instead: stage 3's VAE (the AVO paper's network) by AIS (IWAE-5000 on all "
                                "images 88.00, its own AIS offset -0.70) - paper | +0.37 |")


def test_a_run_whose_weights_are_gone_is_trained_again_and_its_first_record_kept(tmp_path):
    """A new machine has only what was committed (train.json, metrics, per-image results, not *.pt):
    a task that needs the run's weights trains it again with its seed, keeps the first record in
    runs/NAME/first-training/, and, on the same machine, gets the same numbers back."""
    class Lost(fidelity.Worker):
        plan = [fidelity.train("base", "-", "base", role="baseline"),
                {"name": "base@full", "kind": "full-test", "of": "base", "factor": "-", "role": "baseline",
                 "baseline": None, "change": "base on more test images"}]

    out = tmp_path / "fidelity"
    args = ["--worker", "--tiny", "--out", str(out), "--set", "test_samples=10", "--set", "epochs=2"]
    assert fidelity.run_main(Lost, args + ["--only", "base"]) == 0
    run = out / "runs" / "base"
    first = json.loads((out / "per_image" / "base.json").read_text())
    first_train = json.loads((run / "train.json").read_text())
    assert first_train["cpu"] and first["cpu"]  # every record names the CPU it ran on
    for weights in run.glob("*.pt"):
        weights.unlink()
    assert fidelity.run_main(Lost, args) == 0
    kept = run / "first-training"
    assert json.loads((kept / "per_image.json").read_text()) == first
    assert json.loads((kept / "train.json").read_text()) == first_train
    assert (run / "best.pt").exists() and (out / "per_image" / "base@full.json").exists()
    again = json.loads((out / "per_image" / "base.json").read_text())
    assert again["log_px"] == first["log_px"]  # same seed, same machine: the same model
    assert json.loads((run / "train.json").read_text())["best_valid"] == first_train["best_valid"]


def test_the_binarization_draw_rows_need_only_draw1s_own_weights():
    rows = {t["name"]: t for t in fidelity.DRAW1}
    assert rows["draw1"]["binarize"] == "static:1" and rows["draw1"]["baseline"] == "base"
    assert rows["draw1@test-draw1"]["of"] == rows["draw1@test-draw1"]["baseline"] == "draw1"
    assert all(t.get("of") in (None, "draw1") for t in fidelity.DRAW1)


def test_the_estimator_table_puts_each_value_under_its_own_method():
    """A model without IW-SVI-1000 gets "—" there, and its AIS value stays in the AIS column (the report
    once shifted it left under IW-SVI-1000)."""
    est = {"zoo": {"iwae5000": [-88.0, -90.0], "iwsvi100": [-87.0, -89.0], "iwsvi1000": [-86.9, -88.9],
                   "ais-T100": [-86.8, -88.8]},
           "run": {"iwae5000": [-87.0, -89.0], "iwsvi100": [-86.5, -88.5], "ais-T100": [-86.4, -88.4]}}
    header, _, zoo, run = fidelity_report.estimator_lines(est, ["iwae5000", "iwsvi100", "iwsvi1000", "ais-T100"])
    assert header.split(" | ")[1:5] == ["iwae5000", "iwsvi100", "iwsvi1000", "ais-T100"]
    assert run.split(" | ")[1:5] == ["88.00 ± 1.00", "87.50 ± 1.00", "—", "87.40 ± 1.00"]
    assert zoo.split(" | ")[4] == "87.80 ± 1.00" and "ais-T100: -0.60 ± 0.00" in run


def test_the_v3_iwae8_row_trains_the_warmed_up_iwae8_bound_and_is_tested_with_k_8(tmp_path):
    out = tmp_path / "fidelity"
    code = fidelity.run_main(fidelity.Worker, ["--worker", "--tiny", "--out", str(out), "--set", "test_samples=10",
                                               "--set", "epochs=2", "--only", "v3-iwae8-s0"])
    assert code == 0
    spec = json.loads((out / "runs" / "v3-iwae8-s0" / "train.json").read_text())["spec"]
    assert spec["objective"] == {"name": "kl-warmup", "cfg": {"objective": "iwae", "objective_cfg": {"num_particles": 8},
                                                              "fraction": 0.25}}
    assert spec["model"]["cfg"]["hidden"] == [300, 300] and spec["model"]["cfg"]["activation"] == "gated"
    r = json.loads((out / "per_image" / "v3-iwae8-s0.json").read_text())
    assert r["k"] == 8 and len(r["log_px"]) == fidelity.SCALES["tiny"]["test_points"]
    assert all(math.isfinite(v) for v in r["log_px"] + r["bound"])


def test_a_v3_table2_row_waits_for_its_grid_and_takes_the_best_validation_cell(tmp_path):
    for name in fidelity.GRIDS["wni-v3"]:
        value = float(name.split("-")[-1])
        _write(tmp_path / "runs" / name / "train.json", {"task": {**fidelity.TASKS[name]}, "best_valid": -90.0 - abs(value - 4.0)})
    worker = fidelity.Worker(tmp_path, "tiny")
    t = worker.resolve(fidelity.TASKS["v3-wni-iwae8-s0"])
    assert t["H"] == 4.0 and t["k"] == 8 and t["hidden"] == [300, 300]
    assert worker.spec(t)["guide"]["cfg"]["H"] == 4.0


def test_stage_3s_vae_comes_back_from_the_avo_entry_it_equals_and_is_not_exported_again(tmp_path):
    """v3-vae-s0 trains avo-vae-mnist's spec with its seed and gave its weights bit for bit: on a machine
    without its best.pt the worker takes them from that entry; no second entry ships the same weights."""
    from pyro_air.zoo.manifest import read_manifest

    avo = next(e for e in read_manifest()["models"] if e["name"] == "avo-vae-mnist")
    _write(tmp_path / "runs" / "v3-vae-s0" / "train.json", {"task": fidelity.TASKS["v3-vae-s0"],
                                                             "best_epoch": avo["budget"]["best_epoch"]})
    worker = fidelity.Worker(tmp_path)
    assert worker.restore_from_zoo("v3-vae-s0") and (tmp_path / "runs" / "v3-vae-s0" / "best.pt").exists()
    from pyro_air.runs import load_run

    model, guide, _ = load_run(tmp_path / "runs" / "v3-vae-s0")
    assert guide.z_dim == 40
    assert "v3-vae-s0" not in fidelity.ZOO_NAMES and "avo-vae-mnist" not in fidelity.ZOO_NAMES.values()


def test_a_rows_seed_summary_pairs_each_seed_with_the_baseline_of_the_same_seed():
    """Mean -log p over the seeds present, and the paired Δ per seed (each against its own seed's VAE),
    averaged with its standard error over seeds; a single seed has no error bar."""
    rows = {"v3-vae-s0": {"nll": (87.0, 0.7)}, "v3-vae-s1": {"nll": (87.2, 0.7)},
            "v3-dvae-s0": {"nll": (87.1, 0.7), "delta": (0.1, 0.05)},
            "v3-dvae-s1": {"nll": (87.5, 0.7), "delta": (0.3, 0.05)},
            "v3-wni-s0": {"nll": (86.8, 0.7), "delta": (-0.2, 0.05)}}
    assert fidelity_report.seed_summary(rows, "v3", "vae") == "87.10 ± 0.10 (2 seeds)"
    assert fidelity_report.seed_summary(rows, "v3", "dvae") == "87.30 ± 0.20 (2 seeds); Δ +0.20 ± 0.10 (+0.10, +0.30)"
    assert fidelity_report.seed_summary(rows, "v3", "wni") == "86.80 (1 seed); Δ -0.20 (-0.20)"
    assert fidelity_report.seed_summary(rows, "v3", "iwae8") == "—"


def test_the_long_v3_rows_differ_from_stage_3s_only_in_their_length():
    """v3long-*: the seed-0 VAE and DVAE (alpha = 1) of stage 3 at 500 epochs; every other setting, and the
    training config apart from its epochs, as stage 3's rows; the DVAE is paired with the long VAE."""
    worker = fidelity.Worker(Path("unused"), "full")
    for key in ("vae", "dvae-a1"):
        long, short = fidelity.TASKS[f"v3long-{key}-s0"], fidelity.TASKS[f"v3-{key}-s0"]
        assert worker.spec(long) == worker.spec(short)
        assert worker.config(long).epochs == 500 and worker.config(short).epochs == 200
        differing = {k for k in {**long, **short} if long.get(k) != short.get(k)}
        assert differing - {"baseline"} == {"name", "factor", "change", "epochs_factor"}
    assert fidelity.TASKS["v3long-dvae-a1-s0"]["baseline"] == "v3long-vae-s0"
