"""bf16-trained vs float32-trained VAEs: the same test -log p(x) within seed noise? (issue 17)

For each seed s: build the AIR MNIST VAE (784-500-500-50, ``build_run(spec, seed=s)``), train it on
the first ``--train-size`` MNIST training images (default: all 50000) for ``--epochs`` epochs with
``precision="float32"`` and, from the same initial weights, data order and training stream, with
``precision="bf16"`` (autocast of the training step); evaluate both in float32 by
IWAE-``--num-samples`` on the first ``--test-points`` test images with one shared evaluation
stream. Reported: per seed, the paired difference of test -log p(x) (bf16 - float32, mean ± s.e.
over images) and the training wall time of each precision; over seeds, the mean paired difference
with its standard error against the spread of float32's -log p(x) across seeds (seed noise).
Speed is only meaningful where bf16 is native (``pyro_air.backend.precision.bf16_support``).

Seeds can be split over workers that each write a JSON file, then merged into one table:

    PYTHONPATH=. python experiments/precision/bf16_seeds.py --seed-ids 0 2 4 --threads 1 --json a.json
    PYTHONPATH=. python experiments/precision/bf16_seeds.py --seed-ids 1 3 5 --threads 1 --json b.json
    PYTHONPATH=. python experiments/precision/bf16_seeds.py --merge a.json b.json

The committed runs keep their JSON files in experiments/precision/results/<run>/ (RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyro_air import data
from pyro_air.backend.choices import cpu_model
from pyro_air.backend.precision import bf16_support
from pyro_air.core.seeds import stream_seed
from pyro_air.evaluate import log_likelihood
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit


def run_seed(seed: int, args, x, test) -> dict:
    spec = vae_spec()
    nll, secs = {}, {}
    for precision in ("float32", "bf16"):
        model, guide, objective = build_run(spec, seed=seed)
        cfg = TrainConfig(epochs=args.epochs, seed=seed, progress=False, device=args.device, precision=precision,
                          threads=args.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bf16 where it is emulated: said once in the table's header
            t0 = time.perf_counter()
            fit(model, guide, objective, x, None, cfg)
            secs[precision] = time.perf_counter() - t0
        with torch.no_grad():
            nll[precision] = -log_likelihood(model, guide, test, num_samples=args.num_samples,
                                             seed=stream_seed(seed, "evaluation"))
    diff = nll["bf16"] - nll["float32"]
    return {"seed": seed, "nll_float32": nll["float32"].mean().item(), "nll_bf16": nll["bf16"].mean().item(),
            "paired_mean": diff.mean().item(), "paired_se": (diff.std() / math.sqrt(len(diff))).item(),
            "train_s_float32": secs["float32"], "train_s_bf16": secs["bf16"]}


def report(result: dict) -> str:
    rows = sorted(result["rows"], key=lambda r: r["seed"])
    a = result["args"]
    lines = [f"{result['cpu']} (bf16: {result['bf16']}), {a['threads']} thread(s) per worker, device {a['device']}; "
             f"{a['train_size']} training images x {a['epochs']} epochs; IWAE-{a['num_samples']} on "
             f"{a['test_points']} test images", "",
             "| seed | -log p(x) float32 | -log p(x) bf16 | paired bf16 - float32 (± s.e. over images) | "
             "train s float32 | train s bf16 | bf16 speed-up |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['nll_float32']:.2f} | {r['nll_bf16']:.2f} | {r['paired_mean']:+.2f} ± "
                     f"{r['paired_se']:.2f} | {r['train_s_float32']:.0f} | {r['train_s_bf16']:.0f} | "
                     f"{r['train_s_float32'] / r['train_s_bf16']:.2f}x |")
    if len(rows) > 1:
        diffs = [r["paired_mean"] for r in rows]
        f32 = [r["nll_float32"] for r in rows]
        speed = [r["train_s_float32"] / r["train_s_bf16"] for r in rows]
        lines += ["", f"Over {len(rows)} seeds: mean paired bf16 - float32 = {statistics.mean(diffs):+.3f} ± "
                  f"{statistics.stdev(diffs) / math.sqrt(len(diffs)):.3f} nats (s.e. over seeds; s.d. "
                  f"{statistics.stdev(diffs):.3f}); seed noise, the s.d. of float32's -log p(x) across seeds: "
                  f"{statistics.stdev(f32):.3f} nats; bf16 training speed-up: median {statistics.median(speed):.2f}x "
                  f"(range {min(speed):.2f}-{max(speed):.2f}x)."]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1 (unless --seed-ids)")
    p.add_argument("--seed-ids", type=int, nargs="+", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-size", type=int, default=None, help="first this many training images (default all)")
    p.add_argument("--test-points", type=int, default=1000)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write this worker's rows here (merge them with --merge)")
    p.add_argument("--merge", nargs="+", default=None, help="print one table from workers' JSON files")
    args = p.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        merged = dict(parts[0], rows=[r for part in parts for r in part["rows"]])
        print(report(merged))
        return
    torch.set_num_threads(args.threads)
    x = data.load("mnist", "train")
    x = x if args.train_size is None else x[: args.train_size]
    test = data.load("mnist", "test")[: args.test_points].to(args.device)
    seeds = args.seed_ids if args.seed_ids is not None else list(range(args.seeds))
    settings = dict(vars(args), train_size=len(x))
    result = {"cpu": cpu_model(), "bf16": bf16_support()["state"] if args.device == "cpu" else args.device,
              "torch": torch.__version__, "args": settings, "rows": []}
    for seed in seeds:
        result["rows"].append(run_seed(seed, args, x, test))
        r = result["rows"][-1]
        print(f"seed {seed}: -log p(x) float32 {r['nll_float32']:.2f}, bf16 {r['nll_bf16']:.2f}, paired "
              f"{r['paired_mean']:+.2f} ± {r['paired_se']:.2f}; train {r['train_s_float32']:.0f} s / "
              f"{r['train_s_bf16']:.0f} s", flush=True)
        if args.json:  # after every seed: a killed worker keeps what it finished
            Path(args.json).write_text(json.dumps(result, indent=1))
    print()
    print(report(result))


if __name__ == "__main__":
    main()
