"""Start-up: how long `pyro-air --help`, an argument error and `pyro-air zoo list` take, per checkout.

    python -m benchmarks.startup                          # this checkout
    python -m benchmarks.startup --tree OLD --tree NEW    # two checkouts (e.g. `git archive REV | tar -x`), interleaved

Each measurement is a fresh ``python -m pyro_air ARGS`` run in TREE with ``PYTHONPATH=TREE``; the trees alternate
call by call, so they share the machine's noise. Prints the median and best of ``--rounds`` wall
times per command and tree, with the CPU and the load average (``os.getloadavg``) before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["train", "--epochs", "x"], ["zoo", "list"])


def wall_time(tree: Path, args: list) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_air", *args], env=env, cwd=tree, capture_output=True, check=False)
    return time.perf_counter() - t0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", type=Path, help="a checkout to time (repeat; default: this one)")
    p.add_argument("--rounds", type=int, default=5, help="calls per command and tree")
    args = p.parse_args(argv)
    trees = args.tree or [ROOT]
    load_before = os.getloadavg()[0]
    times = {(tuple(c), t): [] for c in COMMANDS for t in trees}
    for _ in range(args.rounds):
        for command in COMMANDS:
            for tree in trees:
                times[(tuple(command), tree)].append(wall_time(tree, command))
    print(f"{cpu_model()}, {os.cpu_count()} CPUs; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for (command, tree), ts in times.items():
        print(f"pyro-air {' '.join(command):<18} {str(tree):<30} median {statistics.median(ts):6.2f} s, "
              f"best {min(ts):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
