"""Toy energy fitting with HVI (AVO paper, sections 5.2-5.3, Figures 3-4).

    python experiments/avo/toy.py figure3 --updates 600 --lr 5e-3
    python experiments/avo/toy.py figure4 --updates 600 --trials 1 --methods elbo avo

Non-amortized HVI, T = 10 gated transitions, q_0 = N(0, I) = f_0, batch 64, Adam lr 1e-3.
HVI-ELBO maximizes Eq. 3; HVI-AVO maximizes Eq. 4 per transition (a = 1). Beta-annealing
(Appendix D): every latent term of the objective (log p(z), log r_t, log q_t) is scaled by beta,
linear from 0.01 to 1 over the stated fraction of the updates, then 1.
Score (Appendix C): E_q[log f(z_T) - log q_T(z_T)] with log q_T importance-sampled through the
reverse kernels (an upper bound of the negative KL shifted by log Z, tight for many samples).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyro_air.models import EnergyModel
from pyro_air.toys.avo_energies import (
    T,
    layer_samples,
    make_objective,
    modes_covered,
    negative_kl,
    train,
)

__all__ = ["T", "layer_samples", "make_objective", "modes_covered", "negative_kl", "train"]
HERE = Path(__file__).resolve().parent
OUT = HERE / "results"  # figure3/ and figure4/ beneath it


def figure3(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, T + 1, figsize=(2 * (T + 1), 6.2))
    grid = torch.linspace(-4, 4, 200)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1)
    model = EnergyModel("mixture4")
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1)
    result = {}
    for t in range(T + 1):  # row 0: the targets f_t = f^a_t f_0^(1-a_t)
        a = t / T
        axes[0, t].imshow((a * model.log_target(zz) + (1 - a) * ref).exp(), origin="lower", extent=(-4, 4, -4, 4))
        axes[0, t].set_title(f"f_{t}", fontsize=8)
    for row, method in ((1, "elbo"), (2, "avo")):
        t0 = time.time()
        model, guide = train("mixture4", method, args.updates, None, args.seed, lr=args.lr)
        samples = layer_samples(guide)
        for t, z in enumerate(samples):
            axes[row, t].hist2d(z[:, 0].numpy(), z[:, 1].numpy(), bins=60, range=[[-4, 4], [-4, 4]])
        axes[row, 0].set_ylabel(f"HVI-{method.upper()}")
        result[method] = {"modes_covered": modes_covered(samples[-1]), "neg_kl": negative_kl(model, guide),
                          "seconds": time.time() - t0}
        print(method, result[method], flush=True)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    (OUT / "figure3").mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "figure3" / "figure3_marginals.png", dpi=80)
    (OUT / "figure3" / "figure3.json").write_text(json.dumps(result, indent=1))
    print("wrote", OUT / "figure3" / "figure3_marginals.png")


def figure4(args):
    (OUT / "figure4").mkdir(parents=True, exist_ok=True)
    out = OUT / "figure4" / f"figure4_{'_'.join(args.methods)}.jsonl"
    for energy in args.energies:
        for fraction in args.fractions:
            for method in args.methods:
                for trial in range(args.trials):
                    t0 = time.time()
                    model, guide = train(energy, method, args.updates, fraction if fraction > 0 else None,
                                         seed=trial, lr=args.lr)
                    row = {"energy": energy, "method": method, "anneal_fraction": fraction, "trial": trial,
                           "updates": args.updates, "lr": args.lr, "neg_kl": negative_kl(model, guide),
                           "seconds": time.time() - t0}
                    print(json.dumps(row), flush=True)
                    with open(out, "a") as f:
                        f.write(json.dumps(row) + "\n")


def main():
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["figure3", "figure4"])
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--methods", nargs="+", default=["elbo", "avo"])
    p.add_argument("--energies", nargs="+", default=["u1", "u2", "u3", "u4", "u5", "u6"])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.0, 0.5, 0.9])
    args = p.parse_args()
    figure3(args) if args.what == "figure3" else figure4(args)


if __name__ == "__main__":
    main()
