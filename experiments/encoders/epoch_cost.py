"""Training cost per epoch of each encoder method at a budget, measured interleaved (issue 20's s/epoch).

The s/epoch column of the benchmark's tables is the wall time each run recorded while it trained -
on a machine shared with other work, so its ratios are not trustworthy. This script measures it
again, side by side: every method with its chosen hyper-parameter (from ``<budget dir>/results.json``)
is built as the benchmark builds it (seed 0) and trained for one epoch per call on the budget's
training images (no validation), the methods called round-robin for ``--rounds`` rounds after a
warm-up round, on ``--threads`` threads with nothing else running. Reported per method: the median
of the loop's ``epoch_seconds`` (``fit``'s metrics; set-up excluded) and its ratio to the VAE, both as
the ratio of medians and as the median of same-round ratios.

    PYTHONPATH=. python experiments/encoders/epoch_cost.py --budget overfit --rounds 15 --out experiments/encoders/results/overfit/epoch_cost.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]

from pyro_air import compare as benchmark
from pyro_air.backend.choices import cpu_model
from pyro_air.train import TrainConfig, fit

BUDGET_DIRS = {"cpu": HERE / "results" / "cpu", "overfit": HERE / "results" / "overfit"}


class OneEpoch:
    """One ``fit`` epoch of a method on the training images, continuing from its current weights."""

    def __init__(self, bench, name, param, train_x, valid_x, b, threads, aggressive=None):
        self.model, parts = bench.build(name, param, seed=0)
        self.guide, self.objective, self.schedule, self.x = parts.guide, parts.objective, parts.schedule, train_x
        # validation data only for the schedule that needs it (lagging: the mutual-information rule at each
        # epoch's end); epoch_seconds is taken before the epoch's end, so neither it nor validation is timed
        self.valid_x = valid_x if type(parts.schedule).__name__ == "LaggingSchedule" else None
        self.config = TrainConfig(epochs=1, batch_size=b["batch_size"], lr=b["lr"], lr_final_ratio=b["lr_final_ratio"],
                                  seed=0, progress=False, threads=threads)

        self.aggressive = aggressive

    def __call__(self) -> float:
        if self.aggressive is not None:  # lagging: time one phase (the schedule would end the aggressive one)
            self.schedule.aggressive, self.schedule.previous_mi = self.aggressive, None
        result = fit(self.model, self.guide, self.objective, self.x, self.valid_x, self.config, schedule=self.schedule)
        return result.history[0]["epoch_seconds"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", choices=sorted(BUDGET_DIRS), default="overfit")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = {name: entry["param"] for name, entry in
              json.loads((BUDGET_DIRS[args.budget] / "results.json").read_text())["methods"].items()}
    bench = benchmark.Benchmark(list(chosen), budget=args.budget, out_dir="/tmp/epoch_cost_unused", log=None)
    b = bench.budget
    train_x, valid_x, _ = bench.splits()
    cases = {}
    for name, param in chosen.items():
        if name == "Lagging":  # two phases with very different costs: timed apart
            cases["Lagging, aggressive epoch"] = OneEpoch(bench, name, param, train_x, valid_x, b, args.threads, True)
            cases["Lagging, after the aggressive phase"] = OneEpoch(bench, name, param, train_x, valid_x, b,
                                                                    args.threads, False)
        else:
            cases[name] = OneEpoch(bench, name, param, train_x, valid_x, b, args.threads)
    names = list(cases)
    for fn in cases.values():  # warm-up round
        fn()
    seconds = {name: [] for name in names}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds[name].append(cases[name]())
    base = seconds["VAE"]
    lines = [f"Training cost per epoch, `{args.budget}` budget ({len(train_x)} images, batch {b['batch_size']}, "
             f"{b['hidden']} hidden units), {cpu_model()}, {args.threads} thread(s), torch {torch.__version__}; "
             f"{args.rounds} interleaved rounds after a warm-up round, nothing else running "
             f"({(time.perf_counter() - t0) / 60:.1f} min). `experiments/encoders/epoch_cost.py`.", "",
             "| method | chosen | s/epoch (median) | ratio to VAE (of medians) | median of same-round ratios |",
             "|---|---|---|---|---|"]
    for name in names:
        med = statistics.median(seconds[name])
        paired = statistics.median(a / v for a, v in zip(seconds[name], base))
        param = chosen[name.split(",")[0]]
        lines.append(f"| {name} | {param if param is not None else '—'} | {med:.3f} | "
                     f"{med / statistics.median(base):.2f} | {paired:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
