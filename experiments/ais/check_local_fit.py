"""Sensitivity of L[q*] to the local optimizer's budget (is the per-image Gaussian converged?).

Retrains the VAE of run_gaps.py (same spec, seed and budget) and fits q* on the first ``--points`` test images with 500, 2000 and
5000 Adam steps. If L[q*] still rises, run_gaps.py's amortization gap is an underestimate and its
approximation gap an overestimate by that much.

    python experiments/ais/check_local_fit.py --threads 1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pyro_air import data
from pyro_air.compare import air_spec
from pyro_air.evaluate import elbo, mean_stderr, optimal_local_elbo
from pyro_air.runs import build_run
from pyro_air.train import TrainConfig, fit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--steps", type=int, nargs="+", default=[500, 2000, 5000])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-2])
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "local_fit" / "local_fit.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = air_spec("vae", z_dim=20, hidden=[200, 200], train_size=1000)
    torch.manual_seed(0)  # the initial weights, as run_gaps.py now seeds them
    model, guide, objective = build_run(spec)
    fit(model, guide, objective, data.load("mnist", train_size=1000), None,
        TrainConfig(epochs=300, batch_size=100, lr=1e-3, lr_final_ratio=0.1, seed=0, progress=False))
    x = data.load("mnist", "test")[: args.points]
    amortized = elbo(model, guide, x, num_samples=1000, seed=0)
    out = {"amortized_elbo": mean_stderr(amortized).__dict__, "fits": {}}
    print(f"L[q_phi] = {mean_stderr(amortized)} on the first {args.points} test images")
    for lr in args.lrs:
        for steps in args.steps:
            value = optimal_local_elbo(model, guide, x, num_steps=steps, lr=lr, elbo_samples=1000, seed=0)
            gap = value - amortized
            out["fits"][f"lr={lr}, steps={steps}"] = {"elbo": mean_stderr(value).__dict__,
                                                      "amortization_gap": mean_stderr(gap).__dict__}
            print(f"lr {lr}, {steps} steps: L[q*] = {mean_stderr(value)}, amortization gap {mean_stderr(gap)}",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
