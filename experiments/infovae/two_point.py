"""InfoVAE Proposition 1 and Figure 1: the two-point data set {-1, 1}.

With a flexible Gaussian decoder p(x | z) = N(mu(z), sigma(z)^2) and Gaussian encoder
q(z | x) = N(mu(x), sigma(x)^2) (each an MLP with 3 hidden layers of 200 units), the ELBO can grow
without bound by pushing q(z | -1) and q(z | 1) apart and shrinking their variances, away from the
prior N(0, 1). InfoVAE (Eq. 6, alpha = 0, lambda = 500, MMD) keeps q(z) close to p(z), so the
two posteriors stay near the prior's mass: smaller |mean|, larger variance.

    python experiments/infovae/two_point.py            # trains both, saves the figure, prints stats
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's pyro_air, run from anywhere

import torch

from pyro_air.toys.infovae_two_point import (
    OBJECTIVES,
    POINTS,
    best_of_restarts,
    encoder_stats,
    plot,
    train_two_point,
    two_point_data,
)

__all__ = ["OBJECTIVES", "POINTS", "best_of_restarts", "encoder_stats", "plot", "train_two_point", "two_point_data"]
HERE = Path(__file__).resolve().parent


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="restarts; for each objective the one with the highest ELBO is shown")
    p.add_argument("--out", default=str(HERE / "results" / "two_point" / "two_point.png"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = {}
    for label in OBJECTIVES:
        model, guide, value, seed = best_of_restarts(label, args.seeds, steps=args.steps, lr=args.lr,
                                                     lr_final_ratio=0.3)
        print(f"{label:8s} kept seed {seed} of {args.seeds} (ELBO per point {value:+.3f})")
        runs[label] = (model, guide)
    for label, (_, guide) in runs.items():
        s = encoder_stats(guide)
        print(f"{label:8s} q(z|x=-1) = N({s['mean'][0]:+.3f}, {s['std'][0]:.4f}^2)   "
              f"q(z|x=+1) = N({s['mean'][1]:+.3f}, {s['std'][1]:.4f}^2)")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, path)
    print(f"figure: {path}")
    return {label: encoder_stats(guide) for label, (_, guide) in runs.items()}


if __name__ == "__main__":
    main()
