"""How the HVI transitions start decides how fast an HVI guide learns on MNIST (AVO Table 1a's set-up).

    PYTHONPATH=$PWD python experiments/avo/transition_init.py            # ~5 CPU-minutes, one thread
    PYTHONPATH=$PWD python experiments/avo/transition_init.py --steps 50 --out /tmp/t   # a quick look

The authors' code starts every stochastic refinement operator (AVO section 4.2) with gate bias -1 and
std 1 (``pyro_air/guides/transitions.py``): each of the T = 5 steps then moves z by a random map of
its hidden layer and adds unit noise, so at the start z_T says little about x. This trains the Table
1a networks (gated MLP 300-300, z = 40, T = 5, transitions 300 wide, ReLU) for the same number of
Adam steps (batch 100, lr 1e-3, the first ``train_size`` statically binarized training images, one
seed) from each start, and measures validation IWAE-20 on the first ``valid_size`` validation images,
over the extended model and with q_0 alone as the proposal (the same model's log p(x) without the
transitions). Rows: the plain VAE, HVI-ELBO and HVI-AVO (a = 0.2) from the authors' start, from a
near-identity start (gate bias -4, std 0.05), and from each change alone.

Output: ``results/transition_init/results.json`` and ``table.md`` (written atomically).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

import torch  # noqa: E402

from pyro_air import data  # noqa: E402
from pyro_air.backend.choices import cpu_model  # noqa: E402
from pyro_air.evaluate import log_likelihood  # noqa: E402
from pyro_air.runs import build_run  # noqa: E402
from pyro_air.support.atomic import atomic_write_text  # noqa: E402
from pyro_air.train import TrainConfig, fit  # noqa: E402

NET = {"x_dim": 784, "z_dim": 40, "hidden": [300, 300], "activation": "gated"}
HVI = {**NET, "num_transitions": 5, "transition_hidden": 300, "transition_activation": "relu"}
AVO = ("avo", {"num_transitions": 5, "a": 0.2})
# label -> (guide, objective, transition start)
CASES = {
    "VAE": ("gaussian", ("elbo", {}), {}),
    "HVI-ELBO, authors' start (gate -1, std 1)": ("hierarchical", ("elbo", {}), {}),
    "HVI-ELBO, std 0.1 only": ("hierarchical", ("elbo", {}), {"transition_std": 0.1}),
    "HVI-ELBO, gate -4 only": ("hierarchical", ("elbo", {}), {"transition_gate_bias": -4.0}),
    "HVI-ELBO, near identity (gate -4, std 0.05)": ("hierarchical", ("elbo", {}),
                                                   {"transition_gate_bias": -4.0, "transition_std": 0.05}),
    "HVI-AVO, authors' start": ("hierarchical", AVO, {}),
    "HVI-AVO, near identity": ("hierarchical", AVO, {"transition_gate_bias": -4.0, "transition_std": 0.05}),
}


def spec(guide: str, objective: tuple, start: dict) -> dict:
    cfg = dict(NET) if guide == "gaussian" else {**HVI, **start}
    return {"model": {"name": "bernoulli-vae", "cfg": dict(NET)}, "guide": {"name": guide, "cfg": cfg},
            "objective": {"name": objective[0], "cfg": dict(objective[1])},
            "data": {"name": "mnist", "train_size": None, "binarize": "static"}}


def measure(case: tuple, train_x, valid_x, steps: int, seed: int) -> dict:
    model, guide, objective = build_run(spec(*case), seed=seed)
    epochs = max(1, steps * 100 // len(train_x))
    cpu = time.process_time()
    fit(model, guide, objective, train_x, None, TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=seed,
                                                             progress=False, valid_every=epochs + 1))
    seconds = time.process_time() - cpu
    initial = guide.initial_guide() if hasattr(guide, "initial_guide") else guide
    full = log_likelihood(model, guide, valid_x, num_samples=20, seed=seed + 1)
    alone = log_likelihood(model, initial, valid_x, num_samples=20, seed=seed + 1)
    return {"steps": epochs * (len(train_x) // 100), "valid_iwae20": round(float(full.mean()), 3),
            "valid_iwae20_q0_alone": round(float(alone.mean()), 3), "cpu_seconds": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=800, help="Adam steps per case (batch 100)")
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--valid-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "transition_init"))
    args = p.parse_args(argv)
    if args.steps < 1 or args.train_size < 100 or args.valid_size < 1:
        p.error("--steps >= 1, --train-size >= 100 and --valid-size >= 1")
    torch.set_num_threads(1)
    train_x = data.load("mnist", "train", binarize="static")[: args.train_size]
    valid_x = data.load("mnist", "valid", binarize="static")[: args.valid_size]
    rows = {}
    for label, case in CASES.items():
        rows[label] = measure(case, train_x, valid_x, args.steps, args.seed)
        print(f"{label}: {rows[label]}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"machine": cpu_model(), "threads": 1, "settings": vars(args), "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(record, indent=1) + "\n")
    lines = [f"# HVI transition start (`experiments/avo/transition_init.py`; {cpu_model()}, one thread)", "",
             f"{rows['VAE']['steps']} Adam steps (batch 100, lr 1e-3) on the first {args.train_size} training images, "
             f"seed {args.seed}; validation IWAE-20 on the first {args.valid_size} validation images.", "",
             "| case | valid IWAE-20 | q_0 alone as proposal | CPU s |", "|---|---|---|---|"]
    lines += [f"| {label} | {r['valid_iwae20']:.2f} | {r['valid_iwae20_q0_alone']:.2f} | {r['cpu_seconds']:.0f} |"
              for label, r in rows.items()]
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
