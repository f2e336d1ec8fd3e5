"""Freed memory kept for reuse (``pyro_air.backend.allocator``) vs the C library's defaults, side by side.

    python -m benchmarks.allocator            # 7 interleaved rounds
    python -m benchmarks.allocator --quick    # 2 rounds, smaller calls

The malloc thresholds are process-wide and cannot be undone, so each setting runs in a worker
process of its own (``benchmarks.remote.RemoteCase``), one with ``PYRO_AIR_MALLOC=system`` and one
with the default ``keep``; the timer alternates them round by round. Two workloads, both on the
benchmark's 784-500-500-50 VAE (initial weights) and binarized MNIST:

- evaluation: ``pyro_air.evaluate.log_likelihood`` with IWAE-S on blocks of 10 test images;
- training: 20 IWAE-8 steps (batch 100) as ``fit`` takes them, denormals flushed.

and two process histories: glibc's defaults adapt (its mmap threshold rises to the size of a freed
mapped block up to 32 MiB), so a process that has loaded MNIST - which frees 31 MiB arrays - already
avoids most faults, while one that has freed no such block (images made in place here, as with
data generated or loaded piecewise, or blocks over 32 MiB) faults on every chunk and step.

One more (untimed) call per worker after the rounds counts the minor page faults it causes (from /proc), the
mechanism the setting removes; numbers are identical either way (tests/test_allocator.py).
"""
from __future__ import annotations

import argparse
import time

TRAIN_STEPS = 20
SETTINGS = {"system": "PYRO_AIR_MALLOC=system", "keep": "freed memory kept (default)"}
# glibc raises its mmap threshold to the size of a freed mapped block of up to 32 MiB: loading MNIST
# frees such blocks (the unpickled 10000 x 784 float32 splits, 31 MiB), so the process history matters.
HISTORIES = {"mnist": "MNIST loaded first", "generated": "no large block freed before"}


class Workload:
    """One timed workload, built and run in a worker process."""

    def __init__(self, kind: str, num_samples: int, source: str):
        import torch

        from benchmarks.training import fresh_pair
        from pyro_air import data, infer
        from pyro_air.backend.allocator import keep_freed_memory
        from pyro_air.backend.openmp import denormals_flushed
        from pyro_air.evaluate import log_likelihood
        from pyro_air.train import make_adam

        keep_freed_memory()  # what fit / evaluation do first (a no-op under PYRO_AIR_MALLOC=system)
        torch.manual_seed(0)
        model, guide = fresh_pair()
        def load_images(split, n):
            if source == "mnist":
                return data.load("mnist", split)[:n]
            gen = torch.Generator().manual_seed(1)  # made 100 rows at a time: no block over 320 KB is freed
            return torch.cat([(torch.rand(100, 784, generator=gen) < 0.13).float() for _ in range(n // 100)])

        if kind == "evaluation":
            images = load_images("test", 200)
            self.position = 0

            def call():
                xb = images[self.position % len(images):][:10]
                self.position += 10
                log_likelihood(model, guide, xb, num_samples=num_samples, batch_size=10)
        else:
            x = load_images("train", 100 * TRAIN_STEPS)
            params = list(model.parameters()) + list(guide.parameters())
            optimizer, objective = make_adam(params, 1e-3), infer.IWAE_ELBO(num_particles=8)

            def call():
                with denormals_flushed():
                    for i in range(TRAIN_STEPS):
                        optimizer.zero_grad(set_to_none=True)
                        objective.differentiable_loss(model, guide, x[100 * i:100 * (i + 1)], num_data=60000).backward()
                        optimizer.step()
        self.call = call

    def __call__(self):
        self.call()


def run(rounds: int, num_samples: int, threads: int = 2, log=print) -> tuple:
    """Returns (markdown table, {row: {median_s, ratio, paired_ratio}})."""
    from benchmarks.remote import RemoteCase, close_all
    from benchmarks.timing import interleave, markdown_table, ratio_rows

    tables, raw = [], {}
    for kind in ("evaluation", "training"):
        what = (f"IWAE-{num_samples} log-likelihood, 10 images" if kind == "evaluation"
                else f"{TRAIN_STEPS} IWAE-8 training steps")
        cases = {f"{what}, {HISTORIES[source]}, {SETTINGS[mode]}": RemoteCase(
                     Workload, kind, num_samples, source, threads=threads, env={"PYRO_AIR_MALLOC": mode})
                 for source in HISTORIES for mode in SETTINGS}
        try:
            times = interleave(cases, rounds, calls_per_block=1, warmup_blocks=1,
                               progress=lambda r, n, kind=kind: log(f"  allocator ({kind}) round {r}/{n}"))
            faults = {name: _count_faults(case) for name, case in cases.items()}  # one more call each, untimed
        finally:
            close_all(cases)
        base = next(iter(cases))
        for name, ms, ratio, paired, cpu_ms, cpu_ratio in ratio_rows(times, base):
            tables.append((name, ms, ratio, paired, faults[name]))
            raw[name] = {"median_s": ms / 1e3, "ratio": ratio, "paired_ratio": paired, "page_faults": faults[name]}
    table = markdown_table(["case (each setting in its own worker process)", "median call (wall)", "ratio of medians",
                            "median of paired ratios", "page faults per call"], tables,
                           ["{}", "{:.1f} ms", "{:.3f}", "{:.3f}", "{:,}"])
    return table, raw


def _count_faults(case) -> int:
    """Minor page faults of one call, measured from this (the parent) side: the worker's own
    counter is not visible here, so read /proc for the worker's pid before and after."""
    before = _minflt(case.process.pid)
    case()
    return _minflt(case.process.pid) - before


def _minflt(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7])  # minflt: field 10 of stat, the 8th after the process name


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    table, _ = run(args.rounds or (2 if args.quick else 7), 500 if args.quick else 5000, args.threads)
    print(f"\n{args.threads} threads; {time.perf_counter() - t0:.0f} s\n")
    print(table)


if __name__ == "__main__":
    main()
