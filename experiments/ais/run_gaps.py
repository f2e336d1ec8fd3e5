"""Issue 19 on trained MNIST models: the BDMC sandwich and the gap decomposition of VAE, DVAE, WNI-VAE.

    python experiments/ais/run_gaps.py --threads 1        # about 15 minutes on one core of this machine

1. Train VAE, DVAE (alpha = 1, sigma = 0.25) and WNI-VAE (H = 1.5) with the ELBO on the nested
   1000-image MNIST subset (the over-fitting regime of experiments/air), 784-200-200-20 encoder and
   decoder, Adam 1e-3 decayed to 1e-4, batch 100; no early stopping (the last epoch is evaluated,
   so the over-fitting is what is measured).
2. BDMC on data simulated from the trained VAE: forward and reverse AIS from the guide's
   q(z | x) at several T; the sandwich width per T.
3. Gap decomposition (pyro_air.evaluate.gap_decomposition) on the first ``--points`` training
   images and the first ``--points`` test images: log p(x) by AIS from q(z | x), L[q*] by per-image
   Adam on a diagonal Gaussian warm-started at the encoder, L[q_phi] the amortized ELBO; beside
   it IWAE-5000 as a check of the AIS column.

Writes ``--out``/results.json, gaps.png and results.md (the tables, as printed).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch

from pyro_air import data
from pyro_air.compare import air_spec
from pyro_air.evaluate import (
    bdmc,
    format_gap_table,
    gap_decomposition,
    log_likelihood,
    mean_stderr,
    plot_gaps,
    simulate,
    summarize_gaps,
)
from pyro_air.runs import build_run
from pyro_air.train import TrainConfig, fit

MODELS = {  # label -> (method, kwargs of air_spec)
    "VAE": ("vae", {}),
    "DVAE (sigma=0.25)": ("dvae", {"sigma": 0.25, "alpha": 1.0}),
    "WNI-VAE (H=1.5)": ("wni", {"H": 1.5}),
}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown"


def est(values: torch.Tensor) -> dict:
    e = mean_stderr(values)
    return {"mean": e.mean, "stderr": e.stderr, "n": e.n}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--hidden", type=int, nargs="+", default=[200, 200])
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--points", type=int, default=100, help="training and test images decomposed")
    p.add_argument("--ais-steps", type=int, default=500)
    p.add_argument("--ais-chains", type=int, default=8)
    p.add_argument("--ais-leapfrog", type=int, default=5)
    p.add_argument("--local-steps", type=int, default=500)
    p.add_argument("--local-lr", type=float, default=1e-2)
    p.add_argument("--elbo-samples", type=int, default=1000)
    p.add_argument("--bdmc-points", type=int, default=50)
    p.add_argument("--bdmc-steps", type=int, nargs="+", default=[10, 100, 500])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "gaps"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    train_x = data.load("mnist", train_size=args.train_size)
    test_x = data.load("mnist", "test")
    splits = {"train": train_x[: args.points], "test": test_x[: args.points]}
    results = {"settings": vars(args), "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
               "models": {}, "bdmc": {}}
    trained = {}
    for label, (method, kw) in MODELS.items():
        spec = air_spec(method, z_dim=args.z_dim, hidden=args.hidden, train_size=args.train_size, **kw)
        torch.manual_seed(args.seed)  # the initial weights (fit seeds only the training stream)
        model, guide, objective = build_run(spec)
        config = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, lr_final_ratio=0.1, seed=args.seed,
                             progress=False)
        t0 = time.perf_counter()
        history = fit(model, guide, objective, train_x, None, config).history
        seconds = time.perf_counter() - t0
        trained[label] = (model, guide)
        results["models"][label] = {"spec": spec, "train_seconds": seconds,
                                    "final_train_loss": history[-1].get("train_loss") if history else None}
        print(f"{label}: trained {args.epochs} epochs in {seconds:.0f} s", flush=True)

    # BDMC on data simulated from the trained VAE
    vae_model, vae_guide = trained["VAE"]
    simulated = simulate(vae_model, args.bdmc_points, seed=args.seed)
    for steps in args.bdmc_steps:
        t0 = time.perf_counter()
        res = bdmc(vae_model, args.bdmc_points, steps, args.ais_chains, guide_or_prior=vae_guide,
                   num_leapfrog=args.ais_leapfrog, simulated=simulated, seed=args.seed)
        results["bdmc"][str(steps)] = {"lower": est(res.lower), "upper": est(res.upper), "width": est(res.width),
                                       "seconds": time.perf_counter() - t0}
        print(f"BDMC T={steps}: lower {mean_stderr(res.lower)}, upper {mean_stderr(res.upper)}, "
              f"width {mean_stderr(res.width)} ({time.perf_counter() - t0:.0f} s)", flush=True)

    rows, per_image = {}, {}
    for label, (model, guide) in trained.items():
        for split, x in splits.items():
            t0 = time.perf_counter()
            res = gap_decomposition(model, guide, x, ais_steps=args.ais_steps, ais_chains=args.ais_chains,
                                    ais_leapfrog=args.ais_leapfrog, local_steps=args.local_steps,
                                    local_lr=args.local_lr, elbo_samples=args.elbo_samples, seed=args.seed)
            res["log_px_iwae5000"] = log_likelihood(model, guide, x, num_samples=5000, seed=args.seed)
            seconds = time.perf_counter() - t0
            rows[f"{label}, {split}"] = res
            per_image[f"{label}, {split}"] = {k: v.tolist() for k, v in res.items()}
            summary = {k: {"mean": v.mean, "stderr": v.stderr, "n": v.n} for k, v in summarize_gaps(res).items()}
            summary["log_px_iwae5000"] = est(res["log_px_iwae5000"])
            summary["ais_minus_iwae5000"] = est(res["log_px"] - res["log_px_iwae5000"])
            results["models"][label][split] = {**summary, "seconds": seconds}
            print(f"{label}, {split}: amortization gap {mean_stderr(res['amortization_gap'])}, approximation gap "
                  f"{mean_stderr(res['approximation_gap'])} ({seconds:.0f} s)", flush=True)

    # paired comparisons on the same images
    comparisons = {}
    for label in trained:
        for split in splits:
            key = f"{label}, {split}"
            if label != "VAE":
                comparisons[f"{key}: amort. gap - VAE's"] = est(
                    rows[key]["amortization_gap"] - rows[f"VAE, {split}"]["amortization_gap"])
        comparisons[f"{label}: amort. gap test - train"] = {
            "test - train (unpaired)": rows[f"{label}, test"]["amortization_gap"].mean().item()
            - rows[f"{label}, train"]["amortization_gap"].mean().item()}
    results["comparisons"] = comparisons
    results["total_seconds"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "per_image.json").write_text(json.dumps(per_image) + "\n")
    plot_gaps(rows, out / "gaps.png")

    table = format_gap_table(rows)
    header = (f"AIS from q(z|x): T={args.ais_steps}, C={args.ais_chains}, L={args.ais_leapfrog}; "
              f"q*: {args.local_steps} Adam steps, lr {args.local_lr}; ELBOs with {args.elbo_samples} samples; "
              f"first {args.points} train / test images; mean ± s.e. over images, nats")
    lines = [header, "", table, "", "AIS - IWAE-5000 (same images):"]
    for key, res in rows.items():
        lines.append(f"  {key}: {mean_stderr(res['log_px'] - res['log_px_iwae5000'])}")
    lines += ["", "paired differences of the amortization gap vs the VAE (same images):"]
    for key, v in comparisons.items():
        if "VAE's" in key:
            lines.append(f"  {key}: {v['mean']:.2f} ± {v['stderr']:.2f}")
    lines += ["", (f"BDMC on {args.bdmc_points} points simulated from the trained VAE (C={args.ais_chains}, "
                   f"L={args.ais_leapfrog}, from q(z|x)):")]
    for steps, b in results["bdmc"].items():
        lines.append(f"  T={steps}: lower {b['lower']['mean']:.3f}, upper {b['upper']['mean']:.3f}, width "
                     f"{b['width']['mean']:.3f} ± {b['width']['stderr']:.3f} ({b['seconds']:.0f} s)")
    lines.append(f"\ntotal {results['total_seconds']:.0f} s on {results['cpu']}, {results['torch_threads']} thread(s)")
    text = "\n".join(lines)
    (out / "results.md").write_text(text + "\n")
    print(text)
    print(f"files: {out / 'results.json'}, {out / 'per_image.json'}, {out / 'results.md'}, {out / 'gaps.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
