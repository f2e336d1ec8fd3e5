"""The traced path's cost per step, per checkout: what reading the contract from the traces costs.

    python -m benchmarks.traced_step --tree OLD --tree NEW     # e.g. `git archive REV | tar -x -C OLD`

One ``pyro.infer.SVI`` step (traced: the fast path is never taken under SVI's handlers) of the
project's 784-500-500-50 Bernoulli VAE with a Gaussian encoder on a batch of 100 binary images, for
the ELBO, IWAE-8 and IWAE-8 with DReG, and the untraced ``fit``-style step (``differentiable_loss`` +
backward outside any handler: the direct path). Each (objective, tree) is timed in its own
subprocess with ``PYTHONPATH=TREE`` and one thread; trees alternate round by round, so they share
the machine's noise. Prints the median of the per-round medians and the NEW / OLD ratio, with the
CPU and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.startup import cpu_model

ROOT = Path(__file__).resolve().parent.parent
CASES = ("elbo", "iwae8", "iwae8-dreg", "direct-iwae8")

WORKER = r"""
import json, sys, time, torch, pyro
torch.set_num_threads(1)
from pyro_air import models, guides, infer
case, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
model = models.build("bernoulli-vae", z_dim=50, hidden=(500, 500))
guide = guides.build("gaussian", z_dim=50, hidden=(500, 500))
x = torch.bernoulli(torch.full((100, 784), 0.3))
objective = {"elbo": lambda: infer.build("elbo"), "iwae8": lambda: infer.build("iwae", num_particles=8),
             "iwae8-dreg": lambda: infer.build("iwae", num_particles=8, estimator="dreg"),
             "direct-iwae8": lambda: infer.build("iwae", num_particles=8)}[case]()
params = list(model.parameters()) + list(guide.parameters())
optim = torch.optim.Adam(params, lr=1e-4)
svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-4}), objective)

def step():
    if case.startswith("direct"):
        optim.zero_grad()
        objective.differentiable_loss(model, guide, x, num_data=50000).backward()
        optim.step()
    else:
        svi.step(x, num_data=50000)

for _ in range(3):
    step()
times = []
for _ in range(steps):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps(times[len(times) // 2]))
"""


def median_step(tree: Path, case: str, steps: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", WORKER, case, str(steps)], env=env, cwd=tree, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", type=Path, help="a checkout to time (repeat; default: this one)")
    p.add_argument("--rounds", type=int, default=3, help="subprocesses per (case, tree)")
    p.add_argument("--steps", type=int, default=15, help="timed steps per subprocess")
    args = p.parse_args(argv)
    trees = args.tree or [ROOT]
    load_before = os.getloadavg()[0]
    times = {(c, t): [] for c in CASES for t in trees}
    for _ in range(args.rounds):
        for case in CASES:
            for tree in trees:
                times[(case, tree)].append(median_step(tree, case, args.steps))
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, 1 thread; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    for case in CASES:
        row = [statistics.median(times[(case, t)]) for t in trees]
        ratio = f"  ratio {row[-1] / row[0]:.3f}" if len(trees) > 1 else ""
        print(f"{case:<14} " + "  ".join(f"{t.name}: {1000 * v:7.1f} ms" for t, v in zip(trees, row)) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
