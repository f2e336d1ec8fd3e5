"""A busy machine: training epoch time with one competing busy process, default vs other settings.

    python -m benchmarks.busy                 # 3 interleaved rounds, 100 steps per measurement
    python -m benchmarks.busy --quick         # 1 round, 20 steps

A spinning subprocess (``while True: pass``) holds one core for the whole run. Each measurement is
a fresh Python process (so OpenMP environment variables take effect) that runs ``pyro_air.train.fit``
for one epoch over ``steps`` batches of 100 MNIST images (ELBO, 784-500-500-50, no validation) and
reports the epoch's seconds scaled to a full MNIST epoch (600 steps). The settings run round-robin,
so they share the machine's other noise; the table reports medians and the ratio to the default.
The rows "competitor paused" (measured in the same rounds, the spinner paused with SIGSTOP)
give the scale and the cost of a passive OpenMP wait policy on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_EPOCH_STEPS = 600

# name -> (extra arguments of the child, extra environment)
SETTINGS = {
    "default (torch's thread count)": ([], {}),
    "--threads 1": (["--threads", "1"], {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (["--threads", "2"], {"OMP_WAIT_POLICY": "PASSIVE"}),
}
IDLE = "competitor paused: "  # rows measured with the competitor paused (SIGSTOP), for scale
IDLE_SETTINGS = ("default (torch's thread count)", "2 threads, OMP_WAIT_POLICY=PASSIVE")


def child(steps: int, threads: int | None) -> None:
    import torch

    from pyro_air import data
    from pyro_air.runs import build_run, vae_spec
    from pyro_air.train import TrainConfig, fit

    spec = vae_spec()
    model, guide, objective = build_run(spec, seed=0)
    x = data.load("mnist", "train")[: 100 * (steps + 5)]
    warm = TrainConfig(epochs=1, batch_size=100, progress=False, threads=threads)
    fit(model, guide, objective, x[:500], None, warm)  # warm-up: 5 steps, kernel choice cached
    config = TrainConfig(epochs=1, batch_size=100, progress=False, threads=threads)
    result = fit(model, guide, objective, x[500:], None, config)
    seconds = result.history[0]["epoch_seconds"] * FULL_EPOCH_STEPS / steps
    print(json.dumps({"epoch_seconds": seconds, "threads": threads or torch.get_num_threads()}))


def measure(name: str, steps: int) -> float:
    args, env = SETTINGS[name.removeprefix(IDLE)]
    out = subprocess.run([sys.executable, "-m", "benchmarks.busy", "--child", "--steps", str(steps), *args],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["epoch_seconds"]


def run(rounds: int, steps: int, log=print) -> tuple:
    """Interleaved rounds; returns (markdown table, {setting: median full-epoch seconds})."""
    from benchmarks.timing import markdown_table

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    names = [*SETTINGS, *(IDLE + n for n in IDLE_SETTINGS)]
    times = {n: [] for n in names}
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                idle = name.startswith(IDLE)
                if idle:
                    spinner.send_signal(signal.SIGSTOP)
                try:
                    times[name].append(measure(name, steps))
                finally:
                    if idle:
                        spinner.send_signal(signal.SIGCONT)
                log(f"  busy round {r + 1}: {name}: {times[name][-1]:.1f} s per epoch")
    finally:
        spinner.kill()
        spinner.wait()
    medians = {n: statistics.median(t) for n, t in times.items()}
    base = medians[names[0]]
    rows = [(n, medians[n], medians[n] / base) for n in names]
    table = markdown_table(["setting (one competing busy process unless said)", "full-MNIST epoch (median, scaled)",
                            "ratio to default"], rows, ["{}", "{:.1f} s", "{:.2f}x"])
    return table, medians


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="training steps per measurement")
    p.add_argument("--threads", type=int, default=None, help="(child only)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps or (20 if args.quick else 100)
    if args.child:
        child(steps, args.threads)
        return
    t0 = time.perf_counter()
    table, _ = run(args.rounds or (1 if args.quick else 3), steps)
    print(f"\n{os.cpu_count()} CPUs; {steps} steps per measurement; {time.perf_counter() - t0:.0f} s\n")
    print(table)


if __name__ == "__main__":
    main()
