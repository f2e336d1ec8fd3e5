"""The encoder family beside VAE, DVAE and WNI on the AIR k = 1 protocol (issue 20), at a CPU budget.

Methods (one decoder architecture; every encoder is x-d-d-z with tanh):
  VAE         plain Gaussian encoder                                     (Kingma & Welling 2014)
  DVAE        denoising encoder, alpha = 1, grid sigma                   (AIR, Shu et al. 2018, Eq. 13)
  WNI         weight-normalized encoder, grid H                          (AIR Eq. 17-18)
  DVAE+WNI    both AIR regularizers, sigma = 0.25, grid H                (not run in the AIR paper)
  CR          consistency penalty, shifts <= 2 px, grid lambda           (Sinha & Dieng 2021)
  SN          spectral-norm cap per layer, grid bound                    (Miyato et al. 2018)
  SA-full     semi-amortized, T = 3 SVI steps, backprop through them     (Kim et al. 2018)
  SA-stop     the same with the stop-gradient (first-order) variant
  Lagging     aggressive encoder phase stopped by mutual information, grid max inner steps (He et al. 2019)

Protocol (as experiments/air/run_air.py, k = 1): ELBO training on the nested 1000-image MNIST
subset, Adam with exponential decay, early stopping on the validation IWAE-20 bound (the same
rule for all); each method's hyper-parameter chosen on seed 0 by the best validation bound, then
seeds 0..2 at the chosen value; test: -log p(x) by IWAE-S, the inference gap log p(x) - ELBO,
the amortization gap (pyro_air.evaluate.amortization_gap), active units, I(x; z), KL(q(z|x) || p(z)),
training seconds per epoch; paired differences against the VAE on the same images and seeds.

    python experiments/encoders/run.py --stage select          # seed-0 grids
    python experiments/encoders/run.py --stage seeds --seeds 1  # then any seeds (parallel processes ok)
    python experiments/encoders/run.py --stage report          # results.json, RESULTS tables, figure

A rerun skips what is on disk (out/runs/<method>/<param>/seed<k>/).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]

from pyro_air import data, guides, infer, models
from pyro_air.evaluate import (
    amortization_gap,
    elbo,
    latent_metrics,
    log_likelihood,
)
from pyro_air.guides.consistency import diagonal_normal
from pyro_air.train import TrainConfig, fit
from pyro_air.train.lagging import LaggingConfig, fit_lagging

BUDGET = {
    "train_size": 1000, "valid_size": 300, "test_size": 200,
    "hidden": [200, 200], "z_dim": 32,
    "epochs": 80, "batch_size": 100, "lr": 2e-3, "lr_final_ratio": 0.1,
    "valid_every": 10, "valid_num_samples": 20,
    "test_num_samples": 1000, "elbo_samples": 20,
    "amortization": {"points": 50, "num_steps": 50, "num_particles": 10},
    "seeds": [0, 1, 2],
    "sa": {"num_steps": 3, "max_grad_norm": 5.0},
}

GRIDS = {  # method -> list of hyper-parameter values (None: nothing to choose)
    "VAE": [None],
    "DVAE": [0.25, 0.5],          # sigma
    "WNI": [1.0, 3.0],            # H
    "DVAE+WNI": [1.0, 3.0],       # H, with sigma = 0.25
    "CR": [0.1, 1.0],             # lambda
    "SN": [1.0, 3.0],             # bound per layer (cap)
    "SA-full": [0.05, 0.2],       # refinement step size
    "SA-stop": [0.05, 0.2],
    "Lagging": [10, 50],          # max encoder steps per decoder step
}
PARAM_NAMES = {"DVAE": "σ", "WNI": "H", "DVAE+WNI": "H (σ=0.25)", "CR": "λ", "SN": "bound",
               "SA-full": "η", "SA-stop": "η", "Lagging": "max inner"}

OUT = HERE / "out"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_data():
    train = data.load("mnist", "train", train_size=BUDGET["train_size"])
    valid = data.load("mnist", "valid")[: BUDGET["valid_size"]]
    test = data.load("mnist", "test")[: BUDGET["test_size"]]
    return train, valid, test


def build(method: str, param):
    """(model, guide, objective, trainer name) of one method at one hyper-parameter value."""
    h, z = BUDGET["hidden"], BUDGET["z_dim"]
    model = models.build("bernoulli-vae", x_dim=784, z_dim=z, hidden=h)
    enc = {"x_dim": 784, "z_dim": z, "hidden": h}
    objective = infer.build("elbo")
    trainer = "fit"
    if method in ("VAE", "Lagging"):
        guide = guides.build("gaussian", **enc)
        trainer = "lagging" if method == "Lagging" else "fit"
    elif method == "DVAE":
        guide = guides.build("denoising", sigma=param, alpha=1.0, encoder="gaussian", **enc)
    elif method == "WNI":
        guide = guides.build("weightnorm", H=param, **enc)
    elif method == "DVAE+WNI":
        guide = guides.build("denoising-weightnorm", sigma=0.25, H=param, **enc)
    elif method == "CR":
        guide = guides.build("consistency", encoder="gaussian", transform="shift", max_shift=2, **enc)
        objective = infer.build("consistency", objective="elbo", weight=param)
    elif method == "SN":
        guide = guides.build("spectral-norm", bound=param, mode="cap", **enc)
    elif method in ("SA-full", "SA-stop"):
        guide = guides.build("semi-amortized", encoder="gaussian", lr=param,
                             backprop="full" if method == "SA-full" else "stop", **BUDGET["sa"], **enc)
        guide.bind(model)
    else:
        raise ValueError(method)
    return model, guide, objective, trainer


def run_dir(method, param, seed) -> Path:
    tag = "default" if param is None else f"{param:g}"
    return OUT / "runs" / method.replace("+", "_") / tag / f"seed{seed}"


def train_and_test(method, param, seed, splits) -> dict:
    d = run_dir(method, param, seed)
    done = d / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    d.mkdir(parents=True, exist_ok=True)
    train_x, valid_x, test_x = splits
    torch.manual_seed(seed)  # the networks' initialization follows the seed
    model, guide, objective, trainer = build(method, param)
    config = TrainConfig(epochs=BUDGET["epochs"], batch_size=BUDGET["batch_size"], lr=BUDGET["lr"],
                         lr_final_ratio=BUDGET["lr_final_ratio"], seed=seed, valid_every=BUDGET["valid_every"],
                         valid_num_samples=BUDGET["valid_num_samples"], progress=False)
    t0 = time.perf_counter()
    if trainer == "lagging":
        result = fit_lagging(model, guide, objective, train_x, valid_x, config,
                             LaggingConfig(aggressive=True, max_inner_steps=param, mi_size=BUDGET["valid_size"]))
    else:
        result = fit(model, guide, objective, train_x, valid_x, config)
    train_seconds = time.perf_counter() - t0
    key = f"valid_iwae{config.valid_num_samples}"
    t1 = time.perf_counter()
    torch.manual_seed(10_000 + seed)
    log_px = log_likelihood(model, guide, test_x, num_samples=BUDGET["test_num_samples"])
    bound = elbo(model, guide, test_x, num_samples=BUDGET["elbo_samples"])
    a = BUDGET["amortization"]
    amort = amortization_gap(model, guide, test_x[: a["points"]], num_steps=a["num_steps"],
                             num_particles=a["num_particles"], elbo_samples=BUDGET["elbo_samples"])
    metrics = latent_metrics(model, guide, test_x, seed=seed)
    guide.eval()
    with torch.no_grad():
        loc, scale = diagonal_normal(guide.posterior(test_x))
        kl = (0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()).sum(-1)
    guide.train()
    torch.save({"log_px": log_px, "bound": bound, "amortization_gap": amort, "kl": kl}, d / "test.pt")
    record = {
        "method": method, "param": param, "seed": seed,
        "best_valid": result.best_valid, "best_epoch": result.best_epoch,
        "valid_curve": [(r["epoch"], r[key]) for r in result.history if key in r],
        "epoch_seconds": sum(r["epoch_seconds"] for r in result.history) / len(result.history),
        "train_seconds": train_seconds, "test_seconds": time.perf_counter() - t1,
        "aggressive_epochs": sum(bool(r.get("aggressive")) for r in result.history),
        "nll": -log_px.mean().item(), "neg_elbo": -bound.mean().item(),
        "inference_gap": (log_px - bound).mean().item(), "amortization_gap": amort.mean().item(),
        "kl": kl.mean().item(), "active_units": metrics["active_units"],
        "mutual_information": metrics.get("mutual_information"),
    }
    if hasattr(guide, "evaluation_posterior"):
        record["evaluation_posterior"] = guide.evaluation_posterior
    if method == "SN":
        record["largest_singular_values"] = guide.largest_singular_values()
    done.write_text(json.dumps(record, indent=1))
    log(f"{method} param={param} seed={seed}: valid {result.best_valid:.2f} @ {result.best_epoch}, "
        f"-log p {record['nll']:.2f}, gap {record['inference_gap']:.2f}, amort {record['amortization_gap']:.2f}, "
        f"AU {record['active_units']}, {record['epoch_seconds']:.2f} s/epoch ({train_seconds:.0f}+"
        f"{record['test_seconds']:.0f} s)")
    return record


def selected(method) -> object:
    grid = GRIDS[method]
    if len(grid) == 1:
        return grid[0]
    records = [json.loads((run_dir(method, p, 0) / "result.json").read_text()) for p in grid]
    return max(records, key=lambda r: r["best_valid"])["param"]


def stage_select(splits, methods):
    for method in methods:
        for param in GRIDS[method]:
            train_and_test(method, param, 0, splits)
        log(f"selected {method}: {selected(method)}")


def stage_seeds(splits, methods, seeds):
    for seed in seeds:
        for method in methods:
            train_and_test(method, selected(method), seed, splits)


# -- report -------------------------------------------------------------------------------------

def _paired(values: dict, base: dict) -> tuple[float, float, int]:
    """Mean and s.e. over seeds of the per-seed mean paired difference (method - VAE)."""
    diffs = [(values[s] - base[s]).double().mean().item() for s in values if s in base]
    if not diffs:
        return math.nan, math.nan, 0
    mean = sum(diffs) / len(diffs)
    se = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs)) ** 0.5 if len(diffs) > 1 else math.nan
    return mean, se, len(diffs)


def stage_report(methods):
    rows, per_image = {}, {}
    for method in methods:
        try:
            param = selected(method)
        except FileNotFoundError:
            continue
        recs, tensors = [], {}
        for seed in BUDGET["seeds"]:
            d = run_dir(method, param, seed)
            if (d / "result.json").exists():
                recs.append(json.loads((d / "result.json").read_text()))
                tensors[seed] = torch.load(d / "test.pt", weights_only=True)
        if recs:
            rows[method], per_image[method] = recs, tensors
    base = per_image.get("VAE", {})
    summary = {}
    for method, recs in rows.items():
        t = per_image[method]

        def over_seeds(key, recs=recs):
            vals = torch.tensor([r[key] for r in recs], dtype=torch.float64)
            return {"mean": vals.mean().item(), "se": (vals.std().item() / len(vals) ** 0.5) if len(vals) > 1 else None}

        entry = {"param": recs[0]["param"], "seeds": [r["seed"] for r in recs],
                 **{k: over_seeds(k) for k in ("nll", "inference_gap", "amortization_gap", "neg_elbo", "kl",
                                               "active_units", "mutual_information", "epoch_seconds", "best_epoch")}}
        if method != "VAE" and base:
            for name, fn in (("d_nll", lambda x: -x["log_px"]), ("d_gap", lambda x: x["log_px"] - x["bound"]),
                             ("d_amort", lambda x: x["amortization_gap"]), ("d_kl", lambda x: x["kl"])):
                m, se, n = _paired({s: fn(v) for s, v in t.items()}, {s: fn(v) for s, v in base.items()})
                entry[name] = {"mean": m, "se": se, "seeds": n}
        entry["grid"] = [{"param": p, "best_valid": json.loads((run_dir(method, p, 0) / "result.json").read_text())
                          ["best_valid"]} for p in GRIDS[method] if (run_dir(method, p, 0) / "result.json").exists()]
        extra = {k: recs[0][k] for k in ("evaluation_posterior", "largest_singular_values") if k in recs[0]}
        extra["aggressive_epochs"] = [r["aggressive_epochs"] for r in recs]
        entry.update(extra)
        summary[method] = entry
    (HERE / "results.json").write_text(json.dumps({"budget": BUDGET, "grids": GRIDS, "methods": summary}, indent=1))
    table = format_table(summary)
    (OUT / "table.md").write_text(table + "\n")
    print(table)
    plot(summary)


def _fmt(x, digits=2):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def format_table(summary) -> str:
    head = ("| method | chosen | seeds | -log p(x) | Δ(-log p) vs VAE | inference gap | Δgap vs VAE | "
            "amort. gap | KL | active units | I(x;z) | best epoch | s/epoch |")
    lines = [head, "|" + "---|" * 13]
    for method, e in summary.items():
        def ms(key, d=2, e=e):
            v = e[key]
            return f"{_fmt(v['mean'], d)} ± {_fmt(v['se'], d)}" if v["se"] is not None else _fmt(v["mean"], d)

        def paired(key, e=e):
            if key not in e:
                return "—"
            v = e[key]
            return f"{v['mean']:+.2f} ± {_fmt(v['se'])}"

        p = e["param"]
        chosen = "—" if p is None else f"{PARAM_NAMES[method]}={p:g}"
        lines.append(f"| {method} | {chosen} | {len(e['seeds'])} | {ms('nll')} | {paired('d_nll')} | "
                     f"{ms('inference_gap')} | {paired('d_gap')} | {ms('amortization_gap')} | {ms('kl', 1)} | "
                     f"{ms('active_units', 1)} | {ms('mutual_information')} | {ms('best_epoch', 0)} | "
                     f"{ms('epoch_seconds')} |")
    return "\n".join(lines)


def plot(summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in summary if m != "VAE" and "d_nll" in summary[m]]
    if not names:
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, (key, label) in zip(axes, [("d_nll", "Δ(-log p(x)) vs VAE [nats]"), ("d_gap", "Δ inference gap vs VAE"),
                                       ("d_amort", "Δ amortization gap vs VAE")]):
        means = [summary[m][key]["mean"] for m in names]
        ses = [summary[m][key]["se"] if summary[m][key]["se"] == summary[m][key]["se"] else 0 for m in names]
        ax.errorbar(means, range(len(names)), xerr=ses, fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(label)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    fig.suptitle("Encoder family on 1000 MNIST images (k = 1): paired differences against the VAE, mean ± s.e. over seeds"
                 " (negative = better / smaller)", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "encoders.png", dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=["select", "seeds", "report"], required=True)
    p.add_argument("--methods", default=",".join(GRIDS))
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="a tiny budget into /tmp, to check the script runs")
    args = p.parse_args(argv)
    if args.smoke:
        global OUT
        OUT = Path("/tmp/encoders_smoke")
        BUDGET.update(epochs=2, valid_every=1, test_size=20, valid_size=50, test_num_samples=20,
                      amortization={"points": 5, "num_steps": 2, "num_particles": 2})
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    if args.stage == "report":
        stage_report(methods)
        return 0
    splits = load_data()
    if args.stage == "select":
        stage_select(splits, methods)
    else:
        stage_seeds(splits, methods, [int(s) for s in args.seeds.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
