"""CPU cost of candidate PixelCNN decoders for ``pixelcnn_table.py`` (its budget table): one thread, a
few hundred training steps of batch 100 on MNIST, and the evaluation cost of one decoder pass.

    PYTHONPATH=$PWD python experiments/infovae/pixelcnn_cost.py --sizes 16x4x5 16x6x5 32x4x5 --steps 100
    PYTHONPATH=$PWD python experiments/infovae/pixelcnn_cost.py --sizes 16x4x5 --objective infovae

Each size is CHANNELSxLAYERSxKERNEL; one JSON line per size: CPU seconds per step and CPU minutes per
epoch of 500 steps (process time, so other processes on the machine cost it little), and CPU
milliseconds per decoder pass over one image in IWAE (chunks of 10 samples x 10 images).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from pyro_air import data  # noqa: E402
from pyro_air.evaluate import log_likelihood  # noqa: E402
from pyro_air.runs import build_run  # noqa: E402
from pyro_air.train import TrainConfig, fit  # noqa: E402

OBJECTIVES = {"elbo": {}, "infovae": {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["16x4x5"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--objective", default="elbo", choices=list(OBJECTIVES))
    p.add_argument("--z-dim", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x = data.load("mnist", "train")[: args.steps * 100]
    test = data.load("mnist", "test")[:20]
    for size in args.sizes:
        channels, layers, kernel = (int(v) for v in size.split("x"))
        spec = {"model": {"name": "pixelcnn-vae", "cfg": {"x_dim": 784, "z_dim": args.z_dim, "channels": channels,
                                                          "num_layers": layers, "kernel_size": kernel}},
                "guide": {"name": "conv-gaussian", "cfg": {"x_dim": 784, "z_dim": args.z_dim, "channels": [16, 32],
                                                           "hidden": 256}},
                "objective": {"name": args.objective, "cfg": OBJECTIVES[args.objective]}, "data": {}}
        model, guide, objective = build_run(spec, seed=0)
        cpu = time.process_time()
        result = fit(model, guide, objective, x, None, TrainConfig(epochs=1, batch_size=100, progress=False))
        per_step = (time.process_time() - cpu) / result.steps
        cpu = time.process_time()
        log_likelihood(model, guide, test, num_samples=100, chunk_size=10, batch_size=10, seed=0)
        per_pass = (time.process_time() - cpu) / (len(test) * 100)
        print(json.dumps({"channels": channels, "layers": layers, "kernel": kernel, "objective": args.objective,
                          "parameters": sum(q.numel() for q in model.parameters()), "steps": result.steps,
                          "cpu_s_per_step": round(per_step, 4), "cpu_min_per_epoch": round(per_step * 500 / 60, 2),
                          "cpu_ms_per_image_pass": round(per_pass * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()
