"""How far do the k = 1 VAE's test numbers move when only the initial weights change, or only the
thread count? (What the between-run spread of experiments/air/RESULTS.md was due to.)

The AIR protocol's VAE (configs.CPU: 784-500-500-50, the nested 1000-image subset, 300 epochs,
early stopping on the validation IWAE-20 every 20 epochs), trained with the data order and the
training samples of seed 0 (``TrainConfig(seed=0)``) and

- initial weights from ``build_run(spec, seed=i)`` for i = 0, 1, 2, 3 (one thread), and
- the initial weights of i = 0 on two threads (same streams, another float summation order).

Before issue 14 the initial weights of a run were whatever the process's global generator held when
the run was built - fixed by the runs and evaluations done before it in the same process, not by
its seed. Test: -log p(x) by IWAE-1000 on the first 300 test images, all draws from one evaluation
stream (so the rows differ by their parameters only).

    python experiments/air/init_spread.py --out /tmp/init_spread     # 2-4 minutes per run, 5 runs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
import configs  # noqa: E402

from pyro_air import data  # noqa: E402
from pyro_air.compare import air_spec, evaluate_row  # noqa: E402
from pyro_air.core.seeds import stream_seed  # noqa: E402
from pyro_air.runs import build_run  # noqa: E402
from pyro_air.train import TrainConfig, fit  # noqa: E402


def run(out: Path, init_seed: int, threads: int, budget: dict, test_size: int, test_samples: int) -> dict:
    torch.set_num_threads(threads)
    arch = configs.ARCH["mnist"]
    spec = air_spec("vae", 1, z_dim=arch["z_dim"], hidden=arch["hidden"], train_size=budget["train_size"])
    train_x = data.load("mnist", "train", train_size=budget["train_size"])
    valid_x = data.load("mnist", "valid")[: budget["valid_size"]]
    test_x = data.load("mnist", "test")[:test_size]
    model, guide, objective = build_run(spec, seed=init_seed)
    config = TrainConfig(epochs=budget["epochs"][1], batch_size=budget["batch_size"], lr=budget["lr"],
                         lr_final_ratio=budget["lr_final_ratio"], seed=0, valid_every=budget["valid_every"],
                         valid_num_samples=budget["valid_num_samples"], progress=False)
    t0 = time.perf_counter()
    result = fit(model, guide, objective, train_x, valid_x, config, run_dir=out / f"init{init_seed}-threads{threads}",
                 spec=spec)
    row = evaluate_row(model, guide, test_x, k=1, num_samples=test_samples, seed=stream_seed(0, "evaluation"))
    record = {"init_seed": init_seed, "threads": threads, "best_epoch": result.best_epoch,
              "best_valid": result.best_valid, "nll": row["nll"].mean, "nll_se": row["nll"].stderr,
              "gap": row["inference_gap"].mean, "seconds": time.perf_counter() - t0}
    print(json.dumps(record), flush=True)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--init-seeds", default="0,1,2,3")
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--test-samples", type=int, default=1000)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(int(s), 1) for s in args.init_seeds.split(",")] + [(0, 2)]
    records = [run(out, s, t, configs.CPU, args.test_size, args.test_samples) for s, t in runs]
    (out / "init_spread.json").write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
