"""Amortized HVI-AVO on binarized MNIST (AVO paper, section 5.4, Table 1a) at a small CPU budget.

    python experiments/avo/mnist.py --train-size 10000 --epochs 5 --eval-size 500 --iwae 200

Decoder z-300-300-784 (tanh MLP; the paper uses gated layers), encoder 784-300-300 with a
Gaussian head (q_0), z = 40; T = 5 gated transitions and reverse kernels (ELU, width 100,
conditioned on the encoder's last hidden layer). Runs: plain VAE (T = 0), HVI (T = 5, a = 0:
the HVI ELBO of Eq. 3) and loss-calibrated HVI-AVO (T = 5, a = 0.2, 0.5). Reported per split on
fixed subsets: -L (ELBO, 10 samples, over the extended model) and -log p (IWAE-S over the
extended model: a lower bound of log p(x)); gen gap = -log p(test) - (-L(train)) ... see RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyro_air import data
from pyro_air.core.seeds import seed_all
from pyro_air.evaluate import elbo, log_likelihood, mean_stderr
from pyro_air.guides import HierarchicalGuide
from pyro_air.infer import AVO_ELBO, MonteCarloELBO
from pyro_air.models import BernoulliVAE
from pyro_air.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
RUNS = [("T=0 a=0", 0, 0.0), ("T=5 a=0", 5, 0.0), ("T=5 a=0.2", 5, 0.2), ("T=5 a=0.5", 5, 0.5)]


def main():
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--eval-size", type=int, default=500)
    p.add_argument("--iwae", type=int, default=200)
    p.add_argument("--runs", nargs="+", default=[r[0] for r in RUNS])
    args = p.parse_args()
    train_x = data.load("mnist", "train", train_size=args.train_size)
    splits = {"train": train_x[: args.eval_size], "valid": data.load("mnist", "valid")[: args.eval_size],
              "test": data.load("mnist", "test")[: args.eval_size]}
    out = HERE / "results" / "mnist" / "mnist_results.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for label, T, a in RUNS:
        if label not in args.runs:
            continue
        t0 = time.time()
        seed_all(0)  # before building: the initial weights do not depend on the runs before
        model = BernoulliVAE(784, 40, hidden=(300, 300))
        guide = HierarchicalGuide(784, 40, num_transitions=T, hidden=(300, 300), transition_hidden=100)
        objective = AVO_ELBO(T, a=a) if T and a > 0 else MonteCarloELBO()
        fit(model, guide, objective, train_x,
            config=TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, lr_final_ratio=0.3, progress=False))
        train_seconds = time.time() - t0
        row = {"run": label, "T": T, "a": a, "train_size": args.train_size, "epochs": args.epochs,
               "eval_size": args.eval_size, "iwae_samples": args.iwae, "train_seconds": train_seconds}
        for split, x in splits.items():
            torch.manual_seed(1)
            lower = mean_stderr(-elbo(model, guide, x, num_samples=10))
            nll = mean_stderr(-log_likelihood(model, guide, x, num_samples=args.iwae))
            row[f"neg_elbo_{split}"] = [lower.mean, lower.stderr]
            row[f"nll_{split}"] = [nll.mean, nll.stderr]
        row["total_seconds"] = time.time() - t0
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
