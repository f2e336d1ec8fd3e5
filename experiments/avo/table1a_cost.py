"""CPU cost of ``table1a.py``'s runs (its budget table): one thread, a few hundred training steps of
batch 100 on MNIST per method, and the evaluation costs per test image.

    PYTHONPATH=$PWD python experiments/avo/table1a_cost.py --steps 200
    PYTHONPATH=$PWD python experiments/avo/table1a_cost.py --methods ais

One JSON line per method (process time, so other processes on the machine cost it little): CPU seconds
per training step, IWAE-5000 and 100-draw ELBO seconds per test image; ``ais``: seconds per test image
of AIS at T = 100, C = 16 (x 10 for T = 1000).
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
from pyro_air.evaluate import ais, elbo, log_likelihood  # noqa: E402
from pyro_air.runs import build_run  # noqa: E402
from pyro_air.train import TrainConfig, fit  # noqa: E402

NET = {"x_dim": 784, "z_dim": 40, "hidden": [300, 300], "activation": "gated"}
HVI = {**NET, "num_transitions": 5, "transition_hidden": 300, "transition_activation": "relu"}


def warmup(objective: str, cfg: dict | None = None) -> dict:
    return {"name": "kl-warmup", "cfg": {"objective": objective, "objective_cfg": cfg or {}, "fraction": 0.25}}


CASES = {
    "vae": ({"name": "gaussian", "cfg": NET}, warmup("elbo")),
    "hvi": ({"name": "hierarchical", "cfg": HVI}, warmup("elbo")),
    "avo-a1": ({"name": "hierarchical", "cfg": HVI}, warmup("avo", {"num_transitions": 5, "a": 1.0})),
    "avo": ({"name": "hierarchical", "cfg": HVI}, warmup("avo", {"num_transitions": 5, "a": 0.2})),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=list(CASES), choices=[*CASES, "ais"])
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    x = data.load("mnist", "train")[: args.steps * 100]
    test = data.load("mnist", "test")[:20]
    for name in args.methods:
        guide_spec, objective_spec = CASES["vae" if name == "ais" else name]
        spec = {"model": {"name": "bernoulli-vae", "cfg": NET}, "guide": guide_spec, "objective": objective_spec,
                "data": {}}
        model, guide, objective = build_run(spec, seed=0)
        row = {"method": name}
        if name == "ais":
            cpu = time.process_time()
            ais(model, guide, test[:10], num_steps=100, num_chains=16, seed=0)
            row["ais_T100_C16_cpu_s_per_image"] = (time.process_time() - cpu) / 10
        else:
            cpu = time.process_time()
            result = fit(model, guide, objective, x, None, TrainConfig(epochs=1, batch_size=100, progress=False))
            row["cpu_s_per_step"] = (time.process_time() - cpu) / result.steps
            cpu = time.process_time()
            log_likelihood(model, guide, test, num_samples=5000, seed=0)
            row["iwae5000_cpu_s_per_image"] = (time.process_time() - cpu) / len(test)
            cpu = time.process_time()
            elbo(model, guide, test, num_samples=100, seed=0)
            row["elbo100_cpu_s_per_image"] = (time.process_time() - cpu) / len(test)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
