"""CUBO training at small K (issue 34): the bound on a step's scale, before and after.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/objectives/cubo_small_k.py [--mnist]

Writes experiments/objectives/results/cubo_small_k/cubo_small_k.json. One CPU thread, every run
seeded (about 2 minutes; ``--mnist`` adds the frozen-MNIST-decoder runs of cubo_training.py with the
default form at K = 8, seeds 0-2, under the bound - about 4 more minutes - to the JSON's "mnist_after").

The case of issue 15 (tests/cubo_linear_gaussian.py): linear-Gaussian model (x_dim 5, z_dim 2, 16
datapoints), guide N(mu + delta, c^2 Sigma) from delta = (0.4, -0.3), c = 1.3, SVI + Adam(lr 0.02),
CUBO(n = 2, K), 600 steps, seeds 0-2, K in {4, 8, 16}, both gradient forms ("dreg", the default, and
"standard"). "before": the leave-one-out weights capped at e^20 by one common factor per batch (the
estimator until issue 34); "after": capped at K e^3 (``pyro_air.infer.cubo.RATIO_MARGIN``).

Measured per run: final c and delta; the gap = closed-form sum_b CUBO_2(x_b) - sum_b log p(x_b) in
nats (0 at the optimum delta = 0, c = 1; +inf for c <= 1/sqrt(2)) after 100 steps, at the end and
averaged over the last 100 steps; the largest leave-one-out log ratio log a_kb drawn (before any
cap) and the largest entry of Adam's second moment at the end. "Reaches the optimum": mean gap over
the last 100 steps < 0.05 nats, |c - 1| < 0.05 and |delta| < 0.05 at the end (the test's criterion).
"""
from __future__ import annotations

import json
import math
import platform
import sys
import warnings
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI
from pyro.optim import Adam

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/cubo_linear_gaussian.py

from pyro_air.infer import CUBO  # noqa: E402
from pyro_air.infer import cubo as cubo_module  # noqa: E402
from tests.cubo_linear_gaussian import (  # noqa: E402
    ScaledPosteriorGuide,
    closed_form_cubo,
    make_model_and_data,
    optimum_cubo,
)

HERE = Path(__file__).parent
OLD_MAX_LOG_RATIO = 20.0  # the cap before issue 34


class Recorder:
    """Wraps ``cubo.cubo_gradient_weights``: records the largest uncapped log ratio; ``old`` applies the
    e^20 cap of before."""

    def __init__(self, old: bool):
        self.old, self.largest = old, -math.inf
        self.real = cubo_module.cubo_gradient_weights

    def __call__(self, log_w, n=2.0):
        a = n * log_w.detach()
        log_ratio = a - cubo_module.leave_one_out_logmeanexp(a)
        self.largest = max(self.largest, log_ratio.max().item())
        if not self.old:
            return self.real(log_w, n)
        excess = log_ratio.max() - OLD_MAX_LOG_RATIO
        return torch.exp(log_ratio - excess if excess > 0 else log_ratio)


def run(version: str, estimator: str, k: int, seed: int, steps: int = 600) -> dict:
    model, x = make_model_and_data()
    best = optimum_cubo(model, x).item()
    recorder = Recorder(old=version == "before")
    cubo_module.cubo_gradient_weights = recorder
    try:
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        guide = ScaledPosteriorGuide(model)
        optim = Adam({"lr": 0.02})
        svi = SVI(model, guide, optim, CUBO(n=2, num_particles=k, estimator=estimator))
        gaps = []
        for _ in range(steps):
            svi.step(x)
            with torch.no_grad():
                gaps.append(closed_form_cubo(model, x, guide.delta, guide.log_c).sum().item() - best)
    finally:
        cubo_module.cubo_gradient_weights = recorder.real
    second_moment = max(o.state[p]["exp_avg_sq"].max().item() for o in optim.optim_objs.values() for p in o.state)
    tail = sum(gaps[-100:]) / 100
    delta = guide.delta.tolist()
    return {"version": version, "estimator": estimator, "K": k, "seed": seed, "c": guide.c, "delta": delta,
            "gap_100": gaps[99], "gap_end": gaps[-1], "gap_last_100_mean": tail,
            "largest_log_ratio": recorder.largest, "adam_second_moment_max": second_moment,
            "reaches_optimum": bool(tail < 0.05 and abs(guide.c - 1) < 0.05 and max(map(abs, delta)) < 0.05)}


def main():
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rows = []
    for version in ("before", "after"):
        for estimator in ("dreg", "standard"):
            for k in (4, 8, 16):
                for seed in (0, 1, 2):
                    rows.append(run(version, estimator, k, seed))
                    r = rows[-1]
                    print(f"{version:6} {estimator:8} K={k:2} seed={seed} c={r['c']:.3f} "
                          f"delta=({r['delta'][0]:+.3f}, {r['delta'][1]:+.3f}) gap100={r['gap_100']:.3f} "
                          f"gap_end={r['gap_end']:.4f} max log a={r['largest_log_ratio']:.1f} "
                          f"Adam v max={r['adam_second_moment_max']:.1e} ok={r['reaches_optimum']}", flush=True)
    summary = {f"{v} {e} K={k}": sum(r["reaches_optimum"] for r in rows
                                    if (r["version"], r["estimator"], r["K"]) == (v, e, k))
               for v in ("before", "after") for e in ("dreg", "standard") for k in (4, 8, 16)}
    out = {"setup": __doc__.split("\n\n")[2], "torch": torch.__version__, "pyro": pyro.__version__,
           "machine": platform.machine(), "runs": rows, "seeds_reaching_optimum_of_3": summary}
    if "--mnist" in sys.argv:
        sys.path.insert(0, str(HERE))
        import cubo_training

        out["mnist_after"] = cubo_training.frozen_mnist(configs=tuple(("dreg", 8, 600, s) for s in (0, 1, 2)))
    path = HERE / "results" / "cubo_small_k" / "cubo_small_k.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
