"""Ship the models of issue 32's stage 2 (experiments/air/fidelity.py) in the package's zoo.

    python experiments/air/export_recipe_zoo.py               # every finished model not yet in the zoo
    python experiments/air/export_recipe_zoo.py --replace     # also re-export those already there
    python experiments/air/export_recipe_zoo.py --replace --only air-wni-mnist-v3   # just these entries

The recipe's four Table 1 models (k = 1) and its IWAE-8, and stage 3's (the AVO paper's network) four
Table 1 and three Table 2 models, seed 0, enter the zoo under new names (``fidelity.ZOO_NAMES``); the entries of the 500-epoch models (``air-vae-mnist`` ...) keep their
names, files and numbers. Each is exported from its run's ``best.pt`` (early-stopped on validation)
with what the worker measured on it:

- on all 10000 test images (static draw 0): -log p(x) by IWAE-5000, the inference gap, -L_k;
- on the estimator subset (the first 500 test images): IWAE-5000, IW-SVI (100 steps of IWAE-50, the
  AIR paper's budget, Appendix C) and AIS at the BDMC-chosen T, each with its paired offset from
  IWAE-5000 on the same images, and the IW-SVI level on all images read as IWAE-5000 (all) + that offset;
- the seeds that finished, on the first 1000 test images (the error bar of a row).

A model whose full-test evaluation has not finished is skipped with a note; its estimator column and
seeds are recorded when present (a later ``--replace`` adds them).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]
import fidelity  # noqa: E402
from plan_worker import UNNAMED_CPU, export_main, mean_se_record as _ms, seed_levels  # noqa: E402
import fidelity_report  # noqa: E402

from pyro_air import zoo  # noqa: E402

ROWS = {"vae": "Table 1 (k = 1) VAE", "dvae-a0.5": "Table 1 (k = 1) DVAE (alpha = 0.5)",
        "dvae-a1": "Table 1 (k = 1) DVAE (alpha = 1)", "wni": "Table 1 (k = 1) WNI-VAE",
        "iwae8": "Table 2 IWAE-8", "diwae8": "Table 2 DIWAE-8", "wni-iwae8": "Table 2 WNI-IWAE-8"}
# task -> what it is: the recipe's (r-, t2-) and stage 3's (v3-) rows at seed 0
WHAT = {f"{prefix}-{key}-s0": what for key, what in ROWS.items() for prefix in ("r", "t2", "v3")}


def network(t: dict) -> str:
    """The network a task trained, in words (stage 3's differs from the recipe's)."""
    if t.get("hidden") is None:
        return "issue 32's recipe: 784-500-500-50 Bernoulli VAE"
    sizes = "-".join(str(h) for h in [784, *t["hidden"], t["z_dim"]])
    return f"the AVO paper's network (issue 32, stage 3): {sizes} Bernoulli VAE, {t['activation']} dense layers"


def test_numbers(out: Path, task: str, s: dict) -> dict | None:
    """What the worker measured on ``task``'s model, or None until its full-test evaluation is on disk."""
    rows = fidelity_report.collect(out, fidelity.PLAN, s)
    full = rows.get(f"{task}@full", {})
    if "nll" not in full:
        return None
    numbers = {"test_images": full["points"], "nll_iwae5000": _ms(full["nll"]), "inference_gap": _ms(full["gap"]),
               "neg_bound": _ms(full["neg_elbo"])}
    T, _, est = fidelity_report.estimator_table(out, fidelity.PLAN, s)
    column = est.get(task, {})
    base = column.get("iwae5000")
    if base:
        subset = {"test_images": len(base), "nll_iwae5000": _ms(fidelity_report.mean_se([-v for v in base]))}
        for method, values in column.items():
            if values and method != "iwae5000":
                subset[f"nll_{method.replace('-', '_').lower()}"] = {
                    **_ms(fidelity_report.mean_se([-v for v in values])),
                    "minus_iwae5000_paired": _ms(fidelity_report._paired(values, base))}
        first = f"nll_iwsvi{s['iwsvi_steps'][0]}"
        if first in subset:  # the paper's estimator kind on all images: IWAE-5000 (all) + the paired offset
            numbers["nll_iwsvi_read"] = round(full["nll"][0] + subset[first]["minus_iwae5000_paired"]["mean"], 4)
        numbers["estimators"] = {**subset, "ais_steps": T, "ais_chains": s["ais_chains"],
                                 "iwsvi": {"k_train": 50, "k_eval": s["test_samples"], "lr": 1e-2}}
    seeds = seed_levels(rows, task[:-3])
    if seeds:
        numbers["seeds_first_1000"] = seeds
    return numbers


def export_task(out: Path, task: str, name: str, s: dict, root=None) -> dict | None:
    """Export ``task``'s run as zoo entry ``name`` (``root``: the zoo directory, default the package's);
    None (nothing written) when its numbers are not all on disk yet."""
    numbers = test_numbers(out, task, s)
    if numbers is None:
        return None
    run_dir = out / "runs" / task
    train = json.loads((run_dir / "train.json").read_text())
    t = train["task"]
    return zoo.export(
        run_dir, name, seed=t["seed"], root=root,
        description=f"AIR {WHAT.get(task, task)}, {network(t)}, full 50000-image "
                    f"training set, {train['epochs']} epochs, early-stopped on validation at epoch {train['best_epoch']}",
        command=f"python experiments/air/fidelity.py --worker --threads 1   # task {task}",
        budget={"epochs": train["epochs"], "train_size": 50000 if s["train_size"] is None else s["train_size"],
                "batch_size": t["batch_size"], "lr": t["lr"], "lr_final_ratio": t["lr_final_ratio"], "k": t["k"],
                "method": t["method"], "sigma": t["sigma"], "H": t["H"], "alpha": t["alpha"],
                "precision": t["precision"], "activation": t["activation"],
                "hidden": train["spec"]["model"]["cfg"]["hidden"], "z_dim": train["spec"]["model"]["cfg"]["z_dim"],
                "objective": train["spec"]["objective"]["name"],  # what was trained (elbo, iwae for k > 1, kl-warmup)
                "objective_cfg": train["spec"]["objective"]["cfg"],
                "early_stopping": f"validation IWAE-20 every {s['valid_every']} epochs",
                "training_seconds": round(train["epoch_seconds_sum"]), "cpu": train.get("cpu", UNNAMED_CPU), "twin_of": train.get("twin_of")},
        test_numbers=numbers)


def main(argv=None) -> int:
    return export_main(export_task, fidelity.ZOO_NAMES, fidelity.SCALES, fidelity.OUT, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
