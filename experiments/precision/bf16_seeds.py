"""bf16-trained vs float32-trained VAEs: the same test -log p(x) within seed noise? (issue 17)

For each seed s: build the AIR MNIST VAE (784-500-500-50, ``build_run(spec, seed=s)``), train it on
the first ``--train-size`` MNIST training images for ``--epochs`` epochs with ``precision="float32"``
and, from the same initial weights, data order and training stream, with ``precision="bf16"``
(autocast of the training step); evaluate both in float32 by IWAE-``--num-samples`` on the first
``--test-points`` test images with one shared evaluation stream. Reported: per seed, the paired
difference of test -log p(x) (bf16 - float32, mean ± s.e. over images), the spread across seeds
of float32's -log p(x), and the training wall time of each precision (speed: only meaningful on a
CPU with AMX or a GPU; elsewhere torch emulates bf16 and the warning says so).

    PYTHONPATH=. python experiments/precision/bf16_seeds.py --seeds 3 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyro_air import data
from pyro_air.core.kernels import bf16_support, cpu_model
from pyro_air.core.seeds import stream_seed
from pyro_air.evaluate import log_likelihood, mean_stderr
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--test-points", type=int, default=300)
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = vae_spec()
    x = data.load("mnist", "train")[: args.train_size]
    test = data.load("mnist", "test")[: args.test_points].to(args.device)
    rows, f32_nll = [], []
    for seed in range(args.seeds):
        nll, secs = {}, {}
        for precision in ("float32", "bf16"):
            model, guide, objective = build_run(spec, seed=seed)
            cfg = TrainConfig(epochs=args.epochs, seed=seed, progress=False, device=args.device, precision=precision,
                              threads=args.threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the no-AMX warning: printed once below
                t0 = time.perf_counter()
                fit(model, guide, objective, x, None, cfg)
                secs[precision] = time.perf_counter() - t0
            nll[precision] = -log_likelihood(model, guide, test, num_samples=args.num_samples,
                                             seed=stream_seed(seed, "evaluation"))
        diff = mean_stderr(nll["bf16"] - nll["float32"])
        f32_nll.append(nll["float32"].mean().item())
        rows.append((seed, nll["float32"].mean().item(), nll["bf16"].mean().item(), diff, secs["float32"], secs["bf16"]))
        print(f"seed {seed}: -log p(x) float32 {rows[-1][1]:.2f}, bf16 {rows[-1][2]:.2f}, paired bf16 - float32 {diff}; "
              f"train {secs['float32']:.0f} s / {secs['bf16']:.0f} s", flush=True)
    print(f"\n{cpu_model()} (bf16: {bf16_support()['state']}), {args.threads} threads, device {args.device}; "
          f"{args.train_size} training images x {args.epochs} epochs; IWAE-{args.num_samples} on {args.test_points} "
          "test images\n")
    print("| seed | -log p(x) float32 | -log p(x) bf16 | paired bf16 - float32 | train s float32 | train s bf16 |")
    print("|---|---|---|---|---|---|")
    for seed, a, b, d, ta, tb in rows:
        print(f"| {seed} | {a:.2f} | {b:.2f} | {d} | {ta:.0f} | {tb:.0f} |")
    if len(f32_nll) > 1:
        print(f"\nseed spread of float32 -log p(x) (s.d. across seeds): {statistics.stdev(f32_nll):.2f} nats")


if __name__ == "__main__":
    main()
