"""AIS speed: throughput, and the BDMC sandwich width per second against IWAE at matched wall time.

    python -m benchmarks.ais --threads 1            # about 3 minutes on one core

Model: a Bernoulli VAE (784-200-200-20 by default) trained briefly on MNIST so the posterior is
not the prior; data simulated from it (BDMC needs the generating z).

1. Throughput of ``pyro_air.evaluate.ais`` (forward, from the guide): images x annealing steps
   per second, and chain-gradients per second (each step of each chain costs L + 1 gradient
   evaluations of log p(x, z)), beside IWAE's samples per second (``log_likelihood``, one
   forward pass per sample): the ratio is what one HMC gradient costs in IWAE samples.
2. Sandwich at matched wall time. For each T, BDMC (forward + reverse AIS, each with its pilot)
   takes t_T seconds and brackets log p(x) within width W_T = upper - lower. IWAE-k is given the
   same t_T seconds (k calibrated from its measured samples per second) and is bracketed by the
   same reference upper bound U (the tightest BDMC upper bound of the run): width U - IWAE-k.
   Reported: both widths at the same seconds and their ratio. Ratios measured in one
   run on a shared machine; nothing here is asserted by the tests.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from pyro_air import data
from pyro_air.compare import air_spec
from pyro_air.evaluate import ais, bdmc, log_likelihood, simulate
from pyro_air.runs import build_run
from pyro_air.train import TrainConfig, fit


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, nargs="+", default=[200, 200])
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--points", type=int, default=50)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--leapfrog", type=int, default=5)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model, guide, objective = build_run(air_spec("vae", z_dim=args.z_dim, hidden=args.hidden, train_size=1000))
    fit(model, guide, objective, data.load("mnist", train_size=1000), None,
        TrainConfig(epochs=args.epochs, batch_size=100, progress=False))
    x, z = simulate(model, args.points, seed=0)
    n, C, L = args.points, args.chains, args.leapfrog
    report = {"settings": vars(args), "throughput": {}, "sandwich": []}

    # 1. throughput
    T = max(args.steps)
    _, t_ais = timed(lambda: ais(model, guide, x, num_steps=T, num_chains=C, num_leapfrog=L, seed=0))
    runs = 2  # the pilot run (4 chains) + the estimating run (C chains), both T steps
    _, t_iwae = timed(lambda: log_likelihood(model, guide, x, num_samples=1000, seed=0))
    iwae_rate = n * 1000 / t_iwae
    grads = n * (T - 1) * (L + 1) * (C + 4)
    report["throughput"] = {
        "ais_images_steps_per_s": n * T / t_ais,
        "ais_chain_gradients_per_s": grads / t_ais,
        "iwae_samples_per_s": iwae_rate,
        "iwae_samples_per_ais_gradient": iwae_rate / (grads / t_ais),
        "ais_seconds": t_ais, "ais_runs_per_estimate": runs,
    }
    print(f"AIS T={T} C={C} L={L} on {n} images: {n * T / t_ais:.0f} images*steps/s, "
          f"{grads / t_ais:.0f} chain-gradients/s (pilot included); IWAE: {iwae_rate:.0f} samples/s; "
          f"one HMC gradient costs {iwae_rate / (grads / t_ais):.1f} IWAE samples")

    # 2. sandwich width at matched wall time
    results = []
    for steps in args.steps:
        res, t = timed(lambda s=steps: bdmc(model, n, s, C, guide_or_prior=guide, num_leapfrog=L, simulated=(x, z), seed=0))
        results.append((steps, res, t))
    reference_upper = min(results, key=lambda r: r[1].upper.mean().item())[1].upper
    print(f"\nreference upper bound U (tightest BDMC upper): {reference_upper.mean():.3f}")
    print("T      BDMC s   width W_T   IWAE-k (same s)   IWAE s   U - IWAE-k   ratio (IWAE / AIS)")
    for steps, res, t in results:
        k = max(1, int(iwae_rate * t / n))
        iw, t_iw = timed(lambda k=k: log_likelihood(model, guide, x, num_samples=k, seed=1))
        width = res.width.mean().item()
        iwae_width = (reference_upper - iw).mean().item()
        row = {"T": steps, "bdmc_seconds": t, "width": width, "iwae_k": k, "iwae_seconds": t_iw,
               "iwae_width_to_reference_upper": iwae_width, "width_ratio_iwae_over_ais": iwae_width / width,
               "lower": res.lower.mean().item(), "upper": res.upper.mean().item()}
        report["sandwich"].append(row)
        print(f"{steps:<6} {t:7.1f}  {width:9.3f}   IWAE-{k:<10}  {t_iw:7.1f}  {iwae_width:11.3f}   "
              f"{iwae_width / width:5.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
