"""Interleaved timing: the compared cases run round-robin in short blocks (A B C A B C ...).

The machine is shared and noisy, so no case ever gets a quiet (or a busy) stretch to itself:
after one warm-up block per case, every round times one block of each case back to back, the
starting case rotating from round to round (A B C, B C A, C A B, ...) so that no case always
follows the same neighbour. Each
case's time is the median over rounds; each ratio is reported two ways:

- ratio of medians:            median_r t_case / median_r t_baseline
- median of paired ratios:     median_r (t_case,r / t_baseline,r)   (same round, same noise)

and, as a third view, the ratio of median *CPU* times (``time.process_time``, all threads): time a
case spends waiting for a core shared with other jobs is not CPU time, so this ratio is the least
sensitive to the load (with 2 threads it still counts OpenMP's spin-waiting). A case that runs in
a worker process (``benchmarks.remote.RemoteCase``) reports that process's CPU time.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


@dataclass
class CaseTimes:
    name: str
    seconds: list  # wall seconds per call, one entry per round
    cpu_seconds: list = None  # process CPU seconds per call (all threads), one entry per round

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def interleave(cases: dict, rounds: int, calls_per_block: int = 1, warmup_blocks: int = 1,
               sync=lambda: None, progress=None) -> dict:
    """Time every callable in ``cases`` round-robin; returns {name: CaseTimes} (seconds per call).

    ``sync`` is called before each clock read (``torch.cuda.synchronize`` on a GPU).
    """
    for _ in range(warmup_blocks):
        for fn in cases.values():
            for _ in range(calls_per_block):
                fn()
    sync()
    times = {name: CaseTimes(name, [], []) for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn = cases[name]
            cpu_clock = getattr(fn, "cpu_clock", time.process_time)  # a worker process's own (benchmarks/remote.py)
            sync()
            t0, c0 = time.perf_counter(), cpu_clock()
            for _ in range(calls_per_block):
                fn()
            sync()
            times[name].seconds.append((time.perf_counter() - t0) / calls_per_block)
            times[name].cpu_seconds.append((cpu_clock() - c0) / calls_per_block)
        if progress is not None:
            progress(r + 1, rounds)
    return times


def ratio_rows(times: dict, baseline: str) -> list:
    """Rows (name, median ms, ratio of medians, median of paired ratios, median CPU ms, CPU ratio)
    against ``baseline``."""
    base = times[baseline]
    base_cpu = statistics.median(base.cpu_seconds)
    rows = []
    for name, t in times.items():
        paired = statistics.median(a / b for a, b in zip(t.seconds, base.seconds))
        cpu = statistics.median(t.cpu_seconds)
        rows.append((name, 1e3 * t.median, t.median / base.median, paired, 1e3 * cpu, cpu / base_cpu))
    return rows


def markdown_table(header, rows, formats) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f.format(v) for f, v in zip(formats, row)) + " |")
    return "\n".join(lines)


def ratio_table(times: dict, baseline: str) -> str:
    """``ratio_rows`` as a markdown table, times in milliseconds."""
    return markdown_table(["case", "median ms", "ratio of medians", "median of paired ratios", "CPU ms", "CPU ratio"],
                          ratio_rows(times, baseline), ["{}", "{:.2f}", "{:.3f}", "{:.3f}", "{:.2f}", "{:.3f}"])


def report_script_arguments(description: str, default_out, argv=None):
    """The options of a benchmark script that writes one report (``--quick``, ``--threads``,
    ``--out``), parsed, with torch's thread count set from them."""
    import argparse

    import torch
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small budget sanity run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args
