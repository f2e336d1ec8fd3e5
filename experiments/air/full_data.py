"""AIR Table 1 (MNIST, k = 1) on the full 50000 / 10000 / 10000 split, as two side-by-side workers.

The protocol of ``run_air.py`` (same models, early stopping, evaluation) at the full-data budget
``configs.FULL``, split into a fixed plan of tasks for two one-thread processes (on 2 cores two
one-thread runs use the machine best):

    python experiments/air/full_data.py --worker 0 &    # VAE, then DVAE (alpha = 0.5), then their tests
    python experiments/air/full_data.py --worker 1 &    # the sigma / H grid, DVAE (alpha = 1), WNI, tests
    python experiments/air/full_data.py --report        # tables from whatever is on disk

Selection: sigma (both alphas) and H are chosen by the best validation IWAE bound of seed-0 runs at
the short grid budget (``configs.FULL["grid_epochs"]`` epochs with the final runs' learning-rate
schedule compressed to it); the final models then train for ``configs.FULL["epochs"]`` epochs.

Every task is resumable: a killed worker restarted with the same command continues each training
run from its last checkpoint (the same numbers as an uninterrupted run) and skips finished tasks,
so the plan can span sessions. A worker that needs a grid choice the other worker has not made yet
waits for it. Outputs: ``results/full/{grid,final}/runs/...`` (checkpoints are not tracked by git;
``state.sh`` carries them between sessions), ``results/full/final/results.md``, ``table.md`` and
``sweep_mnist_k1.json``.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
import configs  # noqa: E402
from run_air import FAMILIES, Experiment, log  # noqa: E402

OUT = HERE / "results" / "full"
FINAL_MODELS = list(configs.MODELS)  # VAE, DVAE (alpha=0.5), DVAE (alpha=1.0), WNI-VAE
PLAN = {  # worker -> ordered tasks; ("final", model) trains it, ("test", model) evaluates it
    0: [("final", "VAE"), ("test", "VAE"), ("iwsvi", "VAE"),  # the baseline first: the zoo's first model
        ("final", "DVAE (alpha=0.5)"), ("test", "DVAE (alpha=0.5)"), ("iwsvi", "DVAE (alpha=0.5)"),
        # worker 1 trains two models to worker 0's one, so worker 0 takes over their IW-SVI runs (worker 1
        # skips them once they are on disk); an evaluation waits until its model's training has finished
        ("iwsvi", "DVAE (alpha=1.0)"), ("iwsvi", "WNI-VAE")],
    1: [("grid", None), ("final", "DVAE (alpha=1.0)"), ("final", "WNI-VAE"),
        ("test", "DVAE (alpha=1.0)"), ("test", "WNI-VAE"), ("iwsvi", "DVAE (alpha=1.0)"), ("iwsvi", "WNI-VAE")],
}


def budgets(out: Path) -> tuple[Experiment, Experiment]:
    final = copy.deepcopy(configs.FULL)
    grid = copy.deepcopy(configs.FULL)
    grid["epochs"] = {1: final["grid_epochs"]}
    grid["valid_every"] = final["grid_valid_every"]
    return Experiment(grid, out / "grid"), Experiment(final, out / "final")


def chosen(out: Path, wait: bool) -> dict:
    """{family: selected parameter}; with ``wait``, poll until the grid worker has written all of it."""
    path = out / "final" / "sweep_mnist_k1.json"  # where Experiment.collect looks for it
    while True:
        if path.exists():
            choice = json.loads(path.read_text())["chosen"]
            if len(choice) == len(FAMILIES):
                return choice
        if not wait:
            return json.loads(path.read_text())["chosen"] if path.exists() else {}
        time.sleep(20)


def run_grid(grid: Experiment, out: Path) -> None:
    seed = grid.b["seeds"][1][0]
    choice, argmax, curves = {}, {}, {}
    for name, (method, alpha) in FAMILIES.items():
        records = [grid.train("mnist", 1, method, p, alpha, seed) for p in grid.b["grid"][method]]
        argmax[name] = max(records, key=lambda r: r["best_valid"])["param"]
        choice[name] = select(records, method, grid.b["select_within"])
        curves[name] = [(r["param"], r["best_valid"], r["final_valid"]) for r in records]
        (out / "final" / "sweep_mnist_k1.json").write_text(json.dumps(
            {"chosen": choice, "argmax": argmax, "rule": SELECTION_RULE.format(grid.b["select_within"]),
             "curves": curves}, indent=1) + "\n")
    log(f"selected on validation at the grid budget: {choice} (best bound alone: {argmax})")


SELECTION_RULE = ("the strongest regularizer (largest sigma, smallest H) whose validation bound at the grid budget "
                  "is within {} nats of the grid's best")


def select(records: list, method: str, within: float):
    """The strongest regularizer whose grid-budget validation bound is within ``within`` nats of the best.

    Why not simply the best: at the short grid budget no model has over-fitted yet, so the bound alone
    favours the weakest regularizer; on the full data it picked H = 4, a cap that binds on 4 of the
    encoder's 1100 rows after 20 epochs (the WNI encoder is then the plain one), while H = 2 binds on
    234 rows and is 0.03 nats worse. The rule was fixed after seeing that grid (stated in RESULTS.md).
    """
    best = max(r["best_valid"] for r in records)
    close = [r["param"] for r in records if r["best_valid"] >= best - within]
    return max(close) if method == "dvae" else min(close)


def model_args(name: str, choice: dict):
    method, alpha = configs.MODELS[name]
    return method, (None if method == "vae" else choice[name]), alpha


def run_worker(worker: int, out: Path) -> None:
    grid, final = budgets(out)
    seed = final.b["seeds"][1][0]
    for kind, name in PLAN[worker]:
        if kind == "grid":
            run_grid(grid, out)
            continue
        method, param, alpha = model_args(name, chosen(out, wait=name != "VAE"))
        if kind != "final":
            wait_for_training(final.run_dir("mnist", 1, method, param, alpha, seed), name)
        if kind == "final":
            final.train("mnist", 1, method, param, alpha, seed)
        elif kind == "test":
            final.test("mnist", 1, method, param, alpha, seed, "early_stopped")
            final.write_tables()
        else:
            test_iw_svi(final, method, param, alpha, seed)
        write_report(out)
    log(f"worker {worker}: plan done")


def wait_for_training(run_dir: Path, name: str) -> None:
    """Poll until ``run_dir/train.json`` (written when training ends) exists: a plan may evaluate a model the
    other worker is still training, and ``best.pt`` exists long before training ends."""
    announced = False
    while not (run_dir / "train.json").exists():
        if not announced:
            log(f"waiting for {name}'s training to finish ({run_dir})")
            announced = True
        time.sleep(30)


def test_iw_svi(final: Experiment, method, param, alpha, seed) -> None:
    """log p(x) by IW-SVI (AIR Appendix C, Eq. 41-42) on the first ``iwsvi_points`` test images."""
    from pyro_air.core.seeds import seed_all, stream_seed
    from pyro_air.evaluate.iw_svi import iw_svi
    from pyro_air.runs import build_run
    from pyro_air.train import checkpoints as ckpt_io
    from pyro_air.train import run_dir as run_dirs

    run_dir = final.run_dir("mnist", 1, method, param, alpha, seed)
    path = run_dir / "test_iwsvi.pt"
    if path.exists():
        return
    cfg = final.b["iwsvi"]
    state = ckpt_io.load(run_dir / "best.pt")
    model, guide, _ = build_run(state["spec"], seed=seed)
    model.load_state_dict(state["model_state"])
    guide.load_state_dict(state["guide_state"])
    test_x = final.load("mnist")[2][: cfg["points"]]
    seed_all(stream_seed(seed, "evaluation", 2))  # sub-stream 2: IW-SVI (0, 1: evaluate_row)
    t0 = time.perf_counter()
    log_px = iw_svi(model, guide, test_x, num_steps=cfg["steps"], k_train=cfg["k_train"], k_eval=cfg["k_eval"],
                    lr=cfg["lr"])
    ckpt_io.atomic_save({"log_px": log_px}, path)
    run_dirs.atomic_write_text(run_dir / "test_iwsvi.json", json.dumps(
        {"points": len(test_x), **cfg, "nll": float(-log_px.mean()), "seconds": time.perf_counter() - t0}) + "\n")
    log(f"IW-SVI {method} param={param} alpha={alpha}: -log p(x) {float(-log_px.mean()):.2f} on {len(test_x)} images "
        f"({time.perf_counter() - t0:.0f} s)")


def write_report(out: Path) -> None:
    """results/full/final/table.md: the full-data Table 1 rows so far beside the paper's, paired Δ against the VAE."""
    from pyro_air.evaluate import mean_stderr

    grid, final = budgets(out)
    choice = chosen(out, wait=False)
    seed = final.b["seeds"][1][0]
    rows, base = [], {}
    for name in FINAL_MODELS:
        method, alpha = configs.MODELS[name]
        if method != "vae" and name not in choice:
            continue
        param = None if method == "vae" else choice[name]
        run_dir = final.run_dir("mnist", 1, method, param, alpha, seed)
        record = {"name": name, "param": param}
        if (run_dir / "train.json").exists():
            record["train"] = json.loads((run_dir / "train.json").read_text())
        for key, file in (("test", "test_early_stopped.pt"), ("iwsvi", "test_iwsvi.pt")):
            if (run_dir / file).exists():
                record[key] = torch.load(run_dir / file, weights_only=True)
        if name == "VAE":
            base = record
        rows.append(record)
    lines = ["| model | param | best epoch | -log p(x) IWAE-5000 | -log p(x) IW-SVI | gap | -L(x) | "
             "Δ(-log p) vs VAE | Δgap vs VAE | Δ(-log p) IW-SVI vs VAE | paper -log p / gap / -L |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name, t, iw = r["name"], r.get("test"), r.get("iwsvi")
        paper = " / ".join(f"{v:.2f}" for v in configs.PAPER_MNIST[1][name])
        ptag = "—" if r["param"] is None else (f"σ={r['param']:g}" if "DVAE" in name else f"H={r['param']:g}")
        epoch = str(r["train"]["best_epoch"]) if "train" in r else "training"
        cells = ["—"] * 7
        if t is not None:
            cells[0] = str(mean_stderr(-t["log_px"]))
            cells[2] = str(mean_stderr(t["log_px"] - t["bound"]))
            cells[3] = str(mean_stderr(-t["bound"]))
            if name != "VAE" and "test" in base:
                b = base["test"]
                cells[4] = str(mean_stderr(b["log_px"] - t["log_px"]))
                cells[5] = str(mean_stderr((t["log_px"] - t["bound"]) - (b["log_px"] - b["bound"])))
        if iw is not None:
            cells[1] = str(mean_stderr(-iw["log_px"]))
            if name != "VAE" and "iwsvi" in base:
                cells[6] = str(mean_stderr(base["iwsvi"]["log_px"] - iw["log_px"]))
        lines.append(f"| {name} | {ptag} | {epoch} | " + " | ".join(cells) + f" | {paper} |")
    (out / "final" / "table.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", type=int, choices=sorted(PLAN), help="which half of the plan this process runs")
    p.add_argument("--report", action="store_true", help="write results/full/final/results.md from what is on disk")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.worker is None and not args.report:
        p.error("give --worker 0, --worker 1 (one process each) or --report")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        run_worker(args.worker, out)
    if args.report:
        budgets(out)[1].write_tables()
    return 0


if __name__ == "__main__":
    sys.exit(main())
