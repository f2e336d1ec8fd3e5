"""Full-MNIST epoch time of the AIR MNIST architecture (784-500-500-50, batch 100) through ``fit``.

    python -m benchmarks.gpu_epoch --device cuda --out epoch.md

One warm-up epoch, then ``--epochs`` timed epochs (``epoch_seconds`` from ``fit``'s metrics: the loop
alone) and the wall time of the whole ``fit`` call, for ELBO and IWAE-8 in float32 and bf16, eager
and compiled (``TrainConfig(compile=True)``: CUDA graphs on CUDA; the warm-up epoch pays the
compilation). A configuration that fails (e.g. no triton for ``torch.compile``) is reported with
its error and the others still run. Issue 17's goal: <= 1 s per ELBO epoch on an H100-class GPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pyro_air import data
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit


def time_epochs(device: str, k: int, precision: str, epochs: int, compile_: bool = False) -> dict:
    row = {"objective": "ELBO" if k == 1 else f"IWAE-{k}", "precision": precision, "compile": compile_}
    try:
        spec = vae_spec(objective="elbo" if k == 1 else "iwae", num_particles=k)
        model, guide, objective = build_run(spec, seed=0)
        x = data.load("mnist", "train")
        # one fit call: the first epoch is the warm-up (and the compilation); the rest are timed
        t0 = time.perf_counter()
        result = fit(model, guide, objective, x, None, TrainConfig(epochs=epochs + 1, progress=False, device=device,
                                                                   precision=precision, compile=compile_))
        wall = time.perf_counter() - t0
        loop = [r["epoch_seconds"] for r in result.history]
        row.update(images=len(x), median_epoch_loop_s=statistics.median(loop[1:]), first_epoch_s=loop[0],
                   fit_wall_s=wall, final_train_loss=result.history[-1]["train_loss"])
    except Exception as err:  # report it and go on with the other configurations
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available here; run on a GPU machine")
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    configs = [(k, prec, False) for k in (1, 8) for prec in ("float32", "bf16")] + [(1, "float32", True),
                                                                                     (8, "float32", True)]
    rows = [time_epochs(args.device, k, prec, args.epochs, comp) for k, prec, comp in configs]
    lines = [(f"Full-MNIST epoch, 784-500-500-50, batch 100, on {name} (torch {torch.__version__}); "
             f"median of {args.epochs} epochs after one warm-up epoch, in one fit call"), "",
             "| objective | precision | compiled | epoch (loop) | first epoch (warm-up, compilation) | whole fit call | "
             "final train loss |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['objective']} | {r['precision']} | {'yes' if r['compile'] else 'no'} |"
        if "error" in r:
            lines.append(f"{head} failed: {r['error']} | | | |")
        else:
            lines.append(f"{head} {r['median_epoch_loop_s']:.2f} s | {r['first_epoch_s']:.2f} s | {r['fit_wall_s']:.1f} s | "
                         f"{r['final_train_loss']:.2f} |")
    text = "\n".join(lines)
    print(text)
    print(json.dumps(rows))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
