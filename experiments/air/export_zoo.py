"""Ship the full-data AIR models (experiments/air/full_data.py) in the package's zoo.

    python experiments/air/export_zoo.py              # every final model whose test numbers are on disk
    python experiments/air/export_zoo.py --replace    # also re-export those already in the zoo

A model already in the zoo is kept as it is (its entry names the commit it was exported at) unless
--replace is given.

Each model enters ``pyro_air/zoo`` through ``pyro_air.zoo.export`` from its run's ``best.pt`` (the
early-stopped parameters), with its recorded full-test numbers (-log p(x) by IWAE-5000 on all
10000 test images, the inference gap, -ELBO; IW-SVI on the first 1000 when measured) and the exact
commands that trained and tested it. A model whose test is not finished is skipped with a note.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
import configs  # noqa: E402
import full_data  # noqa: E402

from pyro_air import zoo  # noqa: E402
from pyro_air.evaluate import mean_stderr  # noqa: E402

ZOO_NAMES = {"VAE": "air-vae-mnist", "DVAE (alpha=0.5)": "air-dvae-a0.5-mnist",
             "DVAE (alpha=1.0)": "air-dvae-a1-mnist", "WNI-VAE": "air-wni-mnist"}
WORKER = {name: w for w, tasks in full_data.PLAN.items() for kind, name in tasks if kind == "final"}


def numbers(run_dir: Path) -> dict | None:
    path = run_dir / "test_early_stopped.pt"
    if not path.exists():
        return None
    t = torch.load(path, weights_only=True)
    out = {"test_images": len(t["log_px"]), "nll_iwae5000": _ms(-t["log_px"]),
           "inference_gap": _ms(t["log_px"] - t["bound"]), "neg_elbo": _ms(-t["bound"])}
    if (run_dir / "test_iwsvi.json").exists():
        iw = json.loads((run_dir / "test_iwsvi.json").read_text())
        log_px = torch.load(run_dir / "test_iwsvi.pt", weights_only=True)["log_px"]
        out["nll_iwsvi"] = {**_ms(-log_px), "test_images": iw["points"], "steps": iw["steps"],
                            "k_train": iw["k_train"], "k_eval": iw["k_eval"]}
    return out


def _ms(values: torch.Tensor) -> dict:
    s = mean_stderr(values)
    return {"mean": round(float(s.mean), 4), "stderr": round(float(s.stderr), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replace", action="store_true", help="re-export models already in the zoo")
    args = p.parse_args(argv)
    _, final = full_data.budgets(full_data.OUT)
    choice = full_data.chosen(full_data.OUT, wait=False)
    seed = final.b["seeds"][1][0]
    for name in full_data.FINAL_MODELS:
        method, alpha = configs.MODELS[name]
        if method != "vae" and name not in choice:
            print(f"skip {name}: not selected yet")
            continue
        param = None if method == "vae" else choice[name]
        run_dir = final.run_dir("mnist", 1, method, param, alpha, seed)
        if ZOO_NAMES[name] in zoo.names() and not args.replace:
            print(f"keep {ZOO_NAMES[name]}: in the zoo already (--replace exports it again)")
            continue
        recorded = numbers(run_dir)
        if recorded is None:
            print(f"skip {name}: no test numbers yet ({run_dir})")
            continue
        train = json.loads((run_dir / "train.json").read_text())
        what = name if param is None else f"{name}, {'sigma' if method == 'dvae' else 'H'} = {param:g}"
        entry = zoo.export(
            run_dir, ZOO_NAMES[name], seed=seed,
            description=f"AIR Table 1 (MNIST, k = 1) {what}: 784-500-500-50 Bernoulli VAE, full 50000-image "
                        f"training set, early-stopped on validation at epoch {train['best_epoch']}",
            command=f"python experiments/air/full_data.py --worker {WORKER[name]}   # 1 thread, with the other "
                    "worker beside it; tests by the same command",
            budget={"epochs": final.b["epochs"][1], "train_size": 50000, "batch_size": final.b["batch_size"],
                    "lr": final.b["lr"], "lr_final_ratio": final.b["lr_final_ratio"],
                    "early_stopping": f"validation IWAE-{final.b['valid_num_samples']} on 10000 images every "
                                      f"{final.b['valid_every']} epochs", "selection": choice.get(name),
                    "training_seconds": round(train["seconds"])},
            test_numbers=recorded)
        print(f"exported {entry['name']}: {entry['size_bytes'] / 1e6:.1f} MB, check {entry['check']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
