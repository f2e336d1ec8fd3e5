"""Control for the second session's kernel changes: retrain the k = 1 VAE of run_air.py with
torch's own tanh, binary cross-entropy and default Adam (everything else as today's code), seeds
0, 1, 2, and compare its test -log p(x) with the run that used pyro-air's kernels.

    cp experiments/air/results/wni/sweep_mnist_k1.json /tmp/air_control/   # the sweep is not re-run
    python experiments/air/kernel_control.py --out /tmp/air_control    # ~4 minutes on 2 cores

Result (experiments/air/RESULTS.md): 117.85 / 118.41 / 118.34 nats, against 117.99 / 118.41 /
118.35 with pyro-air's kernels: the kernel choices do not move the numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.distributions.utils import broadcast_all
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_air

import pyro_air.core.distributions
import pyro_air.backend.nets
import pyro_air.core.scoring
import pyro_air.train.loop


def _torch_bce_log_prob(self, value):
    logits = self.base_dist.logits
    if value.shape != logits.shape:
        logits, value = broadcast_all(logits, value)
    return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


def use_torch_default_kernels() -> None:
    pyro_air.backend.nets.ACTIVATIONS["tanh"] = nn.Tanh
    pyro_air.core.distributions.BernoulliImage.log_prob = _torch_bce_log_prob
    pyro_air.core.scoring.generic_scoring().__enter__()  # the specialized formulas call the softplus formula directly
    pyro_air.train.loop.make_adam = lambda params, lr: torch.optim.Adam(list(params), lr=lr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="a directory holding a copy of sweep_mnist_k1.json")
    args = p.parse_args(argv)
    if not (Path(args.out) / "sweep_mnist_k1.json").exists():
        raise SystemExit(f"copy a sweep_mnist_k1.json into {args.out} first (see the module docstring)")
    use_torch_default_kernels()
    run_air.Experiment.sweep = lambda self, dataset, k: {}  # reuse the copied selection
    run_air.Experiment.model_runs = lambda self, dataset, k, chosen: iter([("VAE", "vae", None, None)])
    return run_air.main(["--epochs", "8=0", "--threads", "2", "--out", args.out])


if __name__ == "__main__":
    sys.exit(main())
