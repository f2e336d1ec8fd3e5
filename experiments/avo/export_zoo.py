"""Ship the seed-0 models of AVO Table 1a (experiments/avo/table1a.py) in the package's zoo.

    python experiments/avo/export_zoo.py               # every finished model not yet in the zoo
    python experiments/avo/export_zoo.py --replace     # also re-export those already there
    python experiments/avo/export_zoo.py --zoo DIR     # into another zoo (default: $PYRO_AIR_ZOO, else the package's)

The worker's full runs at seed 0 enter the zoo under ``table1a.ZOO_NAMES``: the VAE (Gaussian encoder), HVI-ELBO
and HVI-AVO (a = 0.2; ``HierarchicalGuide``, T transitions and reverse kernels), and HVI-AVO at a = 0.5
when it has run. Each is exported from its run's ``best.pt`` (early-stopped on validation); the zoo
rebuilds guide and objective from the run spec (``pyro_air.runs.build_run``). Its ``test_numbers`` are
what the worker measured on it (``table1a_report.collect``):

- test -log p(x) by IWAE-S over the extended model on all test images (``nll_iwae<S>``, mean and s.e. over
  the images), -L on test / train / valid (the extended-model ELBO: ``neg_bound*``), the paper's gaps
  (gen gap = -L_te - (-L_tr), var gap = -L_te - (-log p_te), per image), -log p on the validation images
  when its task has run, and for HVI the paired difference against the seed-0 VAE on the same images;
- the AIS column (HMC from q_0, its T and chains) once every chunk of its images is on disk, with the
  IWAE on the same images and the paired AIS - IWAE;
- the mean test -log p of seeds 0-2 of the method, once a second seed has finished;
- the learning rate and warm-up fraction the full run took, and the grid cell they came from.

A model whose test evaluation (``per_image/<task>.json``) is missing is skipped with a note (nothing is
written); a later run adds it, ``--replace`` also updates the AIS column and seeds of models already there.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]
import table1a  # noqa: E402
from plan_worker import UNNAMED_CPU, export_main, mean_se_record as _ms, seed_levels  # noqa: E402
import table1a_report  # noqa: E402

from pyro_air import zoo  # noqa: E402



def test_numbers(out: Path, task: str, s: dict) -> dict | None:
    """What the worker measured on ``task``'s model (module docstring), or None until its test evaluation is
    on disk. ``s``: the worker's sizes (``table1a.SCALES``)."""
    rows = table1a_report.collect(out, table1a.PLAN, s)
    r = rows.get(task, {})
    if "nll" not in r:
        return None
    S = s["test_samples"]
    numbers = {"test_images": r["points"], f"nll_iwae{S}": _ms(r["nll"]), "neg_bound": _ms(r["neg_elbo"]),
               "neg_bound_train": _ms(r["neg_elbo_train"]), "neg_bound_valid": _ms(r["neg_elbo_valid"]),
               "gen_gap": round(r["gen_gap"], 4), "var_gap": _ms(r["var_gap"]),
               "bound_draws": {"test": s["bound_draws"], "train_valid": s["split_draws"]},
               "chosen": {"lr": r["hyper"]["lr"], "warmup": r["hyper"]["warmup"], "cell": r["hyper"]["chosen_from"]}}
    if "nll_valid" in r:
        numbers[f"nll_valid_iwae{S}"] = _ms(r["nll_valid"])
    pairs = table1a_report.paired_against_vae(rows).get(r["method"], {"seeds": {}, "ais": {}})
    if r["seed"] in pairs["seeds"]:
        numbers["minus_vae_paired"] = _ms(pairs["seeds"][r["seed"]])
    if "ais" in r:
        numbers["ais"] = {"test_images": len(r["_ais"]), "nll": _ms(r["ais"]),
                          f"nll_iwae{S}_same_images": _ms(r["iwae_on_ais_points"]),
                          "minus_iwae_paired": _ms(r["ais_minus_iwae"]), "steps": r["ais_T"],
                          "chains": s["ais_chains"], "start": "q_0 of the guide"}
        if r["seed"] in pairs["ais"]:
            numbers["ais"]["minus_vae_paired"] = _ms(pairs["ais"][r["seed"]])
    seeds = seed_levels(rows, r["method"])
    if len(seeds) > 1:
        numbers["seeds"] = seeds
    return numbers


def export_task(out: Path, task: str, name: str, s: dict, root=None) -> dict | None:
    """Export ``task``'s run as zoo entry ``name`` (``root``: the zoo directory, default ``$PYRO_AIR_ZOO`` or the
    package's); None (nothing written) while its test evaluation is not on disk."""
    numbers = test_numbers(out, task, s)
    if numbers is None:
        return None
    run_dir = out / "runs" / task
    train = json.loads((run_dir / "train.json").read_text())
    t, hyper, spec = train["task"], train["hyper"], train["spec"]
    net, guide = spec["model"]["cfg"], spec["guide"]
    shape = "-".join(str(v) for v in [net["z_dim"], *net["hidden"], net["x_dim"]])
    q = ("Gaussian encoder" if guide["name"] == "gaussian" else
         f"hierarchical guide ({guide['cfg']['num_transitions']} transitions and reverse kernels)")
    return zoo.export(
        run_dir, name, seed=t["seed"], root=root,
        description=f"AVO Table 1a {table1a.METHODS[t['method']]['label']}: Bernoulli VAE {shape} (gated), {q}, "
                    f"statically binarized MNIST, {train['epochs']} epochs at lr {hyper['lr']:g}, warm-up "
                    f"{hyper['warmup']:g} (chosen on validation: {hyper['chosen_from']}), early-stopped on "
                    f"validation at epoch {train['best_epoch']}",
        command=f"python experiments/avo/table1a.py --worker --threads 1   # task {task}",
        budget={"epochs": train["epochs"], "train_size": 50000 if s["train_size"] is None else s["train_size"],
                "lr": hyper["lr"], "warmup_fraction": hyper["warmup"], "chosen_from": hyper["chosen_from"],
                "guide": guide["name"], "objective": spec["objective"]["name"],
                "a": table1a.METHODS[t["method"]]["a"],
                "early_stopping": f"validation IWAE-{s['valid_samples']} every {s['valid_every']} epochs",
                "training_seconds": round(train["epoch_seconds_sum"]), "cpu": train.get("cpu", UNNAMED_CPU)},
        test_numbers=numbers)


def main(argv=None) -> int:
    return export_main(export_task, table1a.ZOO_NAMES, table1a.SCALES, table1a.OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
