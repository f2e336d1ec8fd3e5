"""InfoVAE Figures 2, 3 and 5: ELBO over-estimates the variance of q(z); MMD-InfoVAE does not.

Binarized MNIST, training sets of 500 ... 50000 images, z = 10, lambda = 1000, alpha = 0 (Eq. 6 with
the MMD divergence). For each training-set size and objective we train a Bernoulli VAE and report
log det Cov[q(z)] of the aggregate posterior on the training images and on the test set (0 for
the N(0, I) prior; > 0 is over-estimation). With z = 2 and 500 images we draw the contour plot of
q(z) (Gaussian mixture over the test set) against p(z), and for z = 10 and 500 images the
samples of p(z) p(x | z) next to reconstructions.

Budget (stated in RESULTS.md): one CPU thread, a FIXED number of optimizer steps per run (small
training sets would otherwise get few steps), MLP encoder/decoder 784-256-256-z instead of the
paper's DCGAN architecture. The paper's figure is about the trend, which this keeps.

    python experiments/infovae/variance.py                 # the full run (~25 CPU-minutes)
    python experiments/infovae/variance.py --steps 200 --sizes 500 1000 --out /tmp/v   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's pyro_air, run from anywhere

import torch

from pyro_air import data
from pyro_air.evaluate.latent_metrics import aggregate_log_det_cov, latent_metrics
from pyro_air.toys.infovae_variance import (
    OBJECTIVES,
    SIZES,
    contour_plot,
    samples_plot,
    train_one,
    trend_plot,
)

__all__ = ["OBJECTIVES", "SIZES", "contour_plot", "samples_plot", "train_one", "trend_plot"]
HERE = Path(__file__).resolve().parent


def markdown_table(rows) -> str:
    """log det Cov[q(z)] (train / test) and the test-set latent metrics per size and objective."""
    lines = ["| train size | objective | log det Cov (train) | log det Cov (test) | MMD (test) | "
             "active units | I(x;z) (test) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['train_size']} | {r['objective']} | {r['log_det_cov_train']:+.2f} | "
                     f"{r['log_det_cov_test']:+.2f} | {r['test_mmd']:.4f} | {r['test_active_units']}/10 | "
                     f"{r['test_mutual_information']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--steps", type=int, default=4000, help="optimizer steps per run (fixed across sizes)")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--test-points", type=int, default=10000)
    p.add_argument("--metric-points", type=int, default=2000, help="test images for MMD / MI / active units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "variance"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test_x = data.load("mnist", "test")[: args.test_points]
    t_start = time.perf_counter()

    rows, small_runs = [], {}
    for size in args.sizes:
        for objective in OBJECTIVES:
            t0 = time.perf_counter()
            model, guide, train_x, steps = train_one(objective, size, 10, args.steps, args.hidden,
                                                     args.batch_size, args.seed)
            row = {"objective": objective, "train_size": size, "z_dim": 10, "steps": steps,
                   "log_det_cov_train": aggregate_log_det_cov(guide, train_x)["log_det_cov"],
                   "log_det_cov_test": aggregate_log_det_cov(guide, test_x)["log_det_cov"]}
            row.update({f"test_{k}": v for k, v in latent_metrics(model, guide, test_x[: args.metric_points]).items()
                        if k not in ("z_dim", "mutual_information_max")})
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(json.dumps(row), flush=True)
            if size == min(args.sizes):
                small_runs[objective] = (model, guide, train_x)

    smallest = min(args.sizes)
    samples_path = out / "samples_vs_reconstructions.png"
    samples_plot([(o, m, g) for o, (m, g, _) in small_runs.items()], small_runs["ELBO"][2], samples_path)
    contour_guides = []
    for objective in OBJECTIVES:
        _, guide, _, _ = train_one(objective, smallest, 2, args.steps, args.hidden, args.batch_size, args.seed)
        contour_guides.append((objective, guide))
    contour_path = out / "q_z_contours_z2.png"
    contour_plot(contour_guides, test_x[:2000], contour_path, train_size=smallest)
    trend_path = out / "log_det_cov_vs_train_size.png"
    trend_plot(rows, trend_path)

    result = {"rows": rows, "steps_per_run": args.steps, "hidden": args.hidden, "batch_size": args.batch_size,
              "test_points": len(test_x), "metric_points": args.metric_points,
              "total_seconds": time.perf_counter() - t_start}
    (out / "variance.json").write_text(json.dumps(result, indent=1))
    print(markdown_table(rows))
    print(f"log det Cov[q(z)] vs training-set size: {trend_path}")
    print(f"q(z) contours (z = 2, {smallest} images): {contour_path}")
    print(f"samples vs reconstructions ({smallest} images): {samples_path}")
    print(f"numbers: {out / 'variance.json'}; total {result['total_seconds'] / 60:.1f} min")
    return result


if __name__ == "__main__":
    main()
