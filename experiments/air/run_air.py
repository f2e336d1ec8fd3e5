"""AIR experiments (Shu et al. 2018, Tables 1-3 and Figures 1-2) at a stated budget.

Trains VAE, DVAE (alpha = 0.5), DVAE (alpha = 1.0) and WNI-VAE - and with --paper-budget or the
budget's k list their IWAE-8 / IWAE-64 counterparts (IWAE, DIWAE, WNI-IWAE) - with the same
decoder, selects sigma and H on the validation set from a grid (the sweep plot), and reports on a
fixed test subset -log p(x) (IWAE-5000), the inference gap and -L_k, mean ± s.e. over seeds, plus
paired differences against the baseline on the same test images. Every model is early-stopped on
the validation IWAE bound with the same rule (keep the best of the evaluations); the last-epoch
parameters are evaluated too ("no early stopping").

    python experiments/air/run_air.py                 # default CPU budget (configs.CPU)
    python experiments/air/run_air.py --paper-budget  # the full-data run (configs.PAPER)

Results are written as they arrive under --out (default experiments/air/results/cpu, with
--paper-budget experiments/air/results/paper): one directory per run under runs/ (metrics.jsonl,
checkpoints, per-image test tensors; git-ignored), results.md (the tables), sweep.png.
A rerun skips what is already on disk.

Reproducible: every run is built with ``build_run(spec, seed=seed)`` (its initial weights depend on
the seed alone, not on which runs the process trained before or whether it was restarted) and
every test estimate draws from the seed's evaluation stream, so the same command gives the same
tables, whatever order the runs happen in and whichever of them were already on disk.
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
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # configs, and the pyro_air of this checkout
import configs  # noqa: E402

from pyro_air import data  # noqa: E402
from pyro_air.compare import air_spec, evaluate_row  # noqa: E402
from pyro_air.core.seeds import stream_seed  # noqa: E402
from pyro_air.data.errors import DataFileError  # noqa: E402
from pyro_air.evaluate import mean_stderr  # noqa: E402
from pyro_air.runs import build_run  # noqa: E402
from pyro_air.train import TrainConfig, fit  # noqa: E402
from pyro_air.train import checkpoints as ckpt_io  # noqa: E402
from pyro_air.train import run_dir as run_dirs  # noqa: E402

FAMILIES = {"DVAE (alpha=1.0)": ("dvae", 1.0), "DVAE (alpha=0.5)": ("dvae", 0.5), "WNI-VAE": ("wni", None)}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Experiment:
    def __init__(self, budget: dict, out: Path, data_dir=None):
        self.b, self.out, self.data_dir = budget, out, data_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = {}

    # -- data ---------------------------------------------------------------------------------
    def load(self, dataset: str):
        if dataset not in self.data:
            train = data.load(dataset, "train", train_size=self.b["train_size"], data_dir=self.data_dir)
            valid = data.load(dataset, "valid", data_dir=self.data_dir)
            test = data.load(dataset, "test", data_dir=self.data_dir)
            if self.b["valid_size"]:
                valid = valid[: self.b["valid_size"]]
            if self.b["test_size"]:
                test = test[: self.b["test_size"]]
            self.data[dataset] = (train, valid, test)
        return self.data[dataset]

    # -- one run ------------------------------------------------------------------------------
    def run_dir(self, dataset, k, method, param, alpha, seed) -> Path:
        tag = method if param is None else f"{method}-{param:g}"
        if alpha is not None and method == "dvae":
            tag += f"-alpha{alpha:g}"
        return self.out / "runs" / dataset / f"k{k}" / tag / f"seed{seed}"

    def train(self, dataset, k, method, param, alpha, seed) -> dict:
        run_dir = self.run_dir(dataset, k, method, param, alpha, seed)
        done = run_dir / "train.json"
        if done.exists():
            return json.loads(done.read_text())
        train_x, valid_x, _ = self.load(dataset)
        arch = self.b.get("arch") or configs.ARCH[dataset]
        spec = air_spec(method, k, sigma=param if method == "dvae" else None, H=param if method == "wni" else None,
                        alpha=alpha if alpha is not None else 1.0, z_dim=arch["z_dim"], hidden=arch["hidden"],
                        dataset=dataset, train_size=self.b["train_size"])
        model, guide, objective = build_run(spec, seed=seed)
        config = TrainConfig(epochs=self.b["epochs"][k], batch_size=self.b["batch_size"], lr=self.b["lr"],
                             lr_final_ratio=self.b["lr_final_ratio"], seed=seed, valid_every=self.b["valid_every"],
                             valid_num_samples=self.b["valid_num_samples"], progress=False,
                             checkpoint_every_epochs=self.b.get("checkpoint_every_epochs", 1))
        t0 = time.perf_counter()
        # an interrupted run resumes from its last checkpoint (the same numbers as an uninterrupted one)
        resume = (run_dir / "checkpoint.pt").exists()
        if resume:
            log(f"resuming {run_dir} from its checkpoint")
        elif run_dirs.holds_training(run_dir):  # killed before its first checkpoint: start again
            for name in run_dirs.TRAINING_FILES:
                (run_dir / name).unlink(missing_ok=True)
        result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=resume)
        key = f"valid_iwae{config.valid_num_samples}"
        curve = [(r["epoch"], r[key]) for r in result.history if key in r]
        record = {"dataset": dataset, "k": k, "method": method, "param": param, "alpha": alpha, "seed": seed,
                  "best_valid": result.best_valid, "best_epoch": result.best_epoch, "final_valid": curve[-1][1],
                  "valid_curve": curve, "train_loss": [r["train_loss"] for r in result.history],
                  "seconds": time.perf_counter() - t0}
        run_dirs.atomic_write_text(done, json.dumps(record))
        log(f"trained {dataset} k={k} {method} param={param} alpha={alpha} seed={seed}: best valid "
            f"{result.best_valid:.2f} @ epoch {result.best_epoch}, last {curve[-1][1]:.2f} ({record['seconds']:.0f} s)")
        return record

    def test(self, dataset, k, method, param, alpha, seed, which: str) -> dict:
        """Per-image test log p(x), L_k; ``which`` = "early_stopped" (best.pt) or "final" (last epoch)."""
        run_dir = self.run_dir(dataset, k, method, param, alpha, seed)
        path = run_dir / f"test_{which}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        state = ckpt_io.load(run_dir / ("best.pt" if which == "early_stopped" else "checkpoint.pt"))
        model, guide, _ = build_run(state["spec"], seed=seed)  # every parameter is loaded next
        model.load_state_dict(state["model_state"])
        guide.load_state_dict(state["guide_state"])
        _, _, test_x = self.load(dataset)
        t0 = time.perf_counter()
        row = evaluate_row(model, guide, test_x, k=k, num_samples=self.b["test_num_samples"],
                           num_estimates=self.b["bound_estimates"][k], seed=stream_seed(seed, "evaluation"))
        out = {"log_px": row["log_px"], "bound": row["bound"]}
        ckpt_io.atomic_save(out, path)
        log(f"tested {dataset} k={k} {method} param={param} alpha={alpha} seed={seed} ({which}): "
            f"-log p(x) {row['nll']}, gap {row['inference_gap']} ({time.perf_counter() - t0:.0f} s)")
        return out

    # -- the protocol -------------------------------------------------------------------------
    def sweep(self, dataset, k) -> dict:
        """Seed-0 grid over sigma (both alphas) and H; returns {family: selected parameter}."""
        seed = self.b["seeds"][k][0]
        base = self.train(dataset, k, "vae", None, None, seed)
        chosen, curves = {}, {"baseline": base["best_valid"]}
        for which in ("early_stopped", "final"):
            self.test(dataset, k, "vae", None, None, seed, which)
        for name, (method, alpha) in FAMILIES.items():
            records = [self.train(dataset, k, method, p, alpha, seed) for p in self.b["grid"][method]]
            best = max(records, key=lambda r: r["best_valid"])
            chosen[name] = best["param"]
            curves[name] = [(r["param"], r["best_valid"], r["final_valid"]) for r in records]
            # results as they arrive: the selected model's test numbers before the next family's sweep
            (self.out / f"sweep_{dataset}_k{k}.json").write_text(json.dumps({"chosen": chosen, "curves": curves}))
            self.plot_sweeps()
            for which in ("early_stopped", "final"):
                self.test(dataset, k, method, best["param"], alpha, seed, which)
            self.write_tables()
        log(f"selected on validation ({dataset}, k={k}): {chosen}")
        return chosen

    def selection(self, dataset, k) -> dict:
        sweep_ks = [s for s in self.b["sweep_ks"] if s <= k] or self.b["sweep_ks"][:1]
        src = self.out / f"sweep_{dataset}_k{max(sweep_ks)}.json"
        if not src.exists():
            return self.sweep(dataset, max(sweep_ks))
        return json.loads(src.read_text())["chosen"]

    def model_runs(self, dataset, k, chosen):
        for name, (method, alpha) in configs.MODELS.items():
            if method != "vae" and name not in chosen:
                continue  # its sweep has not finished yet
            param = None if method == "vae" else chosen[name]
            yield name, method, param, alpha

    def run(self) -> None:
        for dataset in self.b["datasets"]:
            try:
                self.load(dataset)
            except (FileNotFoundError, DataFileError) as err:
                log(f"skipping {dataset}: its data files are not supplied ({err})")
                continue
            for k in (1, 8, 64):
                if not self.b["epochs"].get(k):
                    log(f"skipping {dataset} k={k}: not run at this budget (epochs=0)")
                    continue
                if k in self.b["sweep_ks"]:
                    self.sweep(dataset, k)
                chosen = self.selection(dataset, k)
                for seed in self.b["seeds"][k]:
                    for name, method, param, alpha in self.model_runs(dataset, k, chosen):
                        self.train(dataset, k, method, param, alpha, seed)
                        for which in ("early_stopped", "final"):
                            self.test(dataset, k, method, param, alpha, seed, which)
                    self.write_tables()
        self.write_tables()
        log(f"done; tables in {self.out / 'results.md'}")

    # -- reporting ----------------------------------------------------------------------------
    def collect(self, dataset, k, which):
        """{model name: [per-seed dict of tensors]} for the runs tested so far."""
        src = self.out / f"sweep_{dataset}_k{max([s for s in self.b['sweep_ks'] if s <= k] or self.b['sweep_ks'][:1])}.json"
        if not src.exists():
            return {}
        chosen = json.loads(src.read_text())["chosen"]
        rows = {}
        for name, method, param, alpha in self.model_runs(dataset, k, chosen):
            for seed in self.b["seeds"][k]:
                path = self.run_dir(dataset, k, method, param, alpha, seed) / f"test_{which}.pt"
                train_json = path.parent / "train.json"
                if path.exists() and train_json.exists():
                    t = torch.load(path, weights_only=True)
                    t["seed"], t["param"] = seed, param
                    t["best_epoch"] = json.loads(train_json.read_text())["best_epoch"]
                    rows.setdefault(name, []).append(t)
        return rows

    def write_tables(self) -> None:
        lines = ["# AIR experiments: results so far (generated by run_air.py)", "",
                 f"Budget: `{json.dumps(self.b)}`", "",
                 "Each cell: mean ± s.e. over seeds of the per-seed test means (over test images when one seed).",
                 "Δ columns: paired differences against the baseline on the same test images and seeds "
                 "(negative Δ(-log p) = better); ± s.e. over seeds, [± s.e. over images].", ""]
        for dataset in self.b["datasets"]:
            for k in [k for k in (1, 8, 64) if k in self.b["seeds"]]:
                for which in ("early_stopped", "final"):
                    rows = self.collect(dataset, k, which)
                    if rows:
                        lines += self.table(dataset, k, which, rows)
        (self.out / "results.md").write_text("\n".join(lines) + "\n")

    def table(self, dataset, k, which, rows) -> list:
        bound = "L" if k == 1 else f"L_{k}"
        head = (f"## {dataset}, k = {k}, {'early-stopped on validation' if which == 'early_stopped' else 'no early stopping (last epoch)'}"
                f" — test n = {len(next(iter(rows.values()))[0]['log_px'])}, -log p(x) by IWAE-{self.b['test_num_samples']}")
        out = [head, "", f"| model | param | seeds | -log p(x) | gap | -{bound}(x) | Δ(-log p) vs baseline | Δgap vs baseline | best epoch | paper -log p / gap / -{bound} |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        base = {r["seed"]: r for r in rows.get("VAE", [])}
        paper = configs.PAPER_MNIST.get(k, {}) if dataset == "mnist" else {}
        for name, runs in rows.items():
            nll = self._over_seeds([-r["log_px"] for r in runs])
            gap = self._over_seeds([r["log_px"] - r["bound"] for r in runs])
            neg = self._over_seeds([-r["bound"] for r in runs])
            paired = [r for r in runs if r["seed"] in base]
            if name == "VAE" or not paired:
                d_nll = d_gap = "—"
            else:
                d_nll = self._paired([base[r["seed"]]["log_px"] - r["log_px"] for r in paired])
                d_gap = self._paired([(r["log_px"] - r["bound"]) - (base[r["seed"]]["log_px"] - base[r["seed"]]["bound"])
                                      for r in paired])
            p = paper.get(name)
            ptxt = " / ".join(f"{v:.2f}" for v in p) if p else "—"
            label = name if k == 1 else {"VAE": f"IWAE-{k}", "WNI-VAE": "WNI-IWAE"}.get(name, name.replace("DVAE", "DIWAE"))
            param = runs[0]["param"]
            ptag = "—" if param is None else (f"σ={param:g}" if "DVAE" in name else f"H={param:g}")
            epochs = ",".join(str(r["best_epoch"]) for r in runs)
            out.append(f"| {label} | {ptag} | {len(runs)} | {nll} | {gap} | {neg} | {d_nll} | {d_gap} | {epochs} | {ptxt} |")
        return out + [""]

    @staticmethod
    def _over_seeds(values) -> str:
        means = torch.stack([v.double().mean() for v in values])
        if len(values) == 1:
            return str(mean_stderr(values[0]))
        return str(mean_stderr(means))

    @staticmethod
    def _paired(diffs) -> str:
        per_seed = torch.stack([d.double().mean() for d in diffs])
        image_se = mean_stderr(torch.stack(diffs).double().mean(0)).stderr
        if len(diffs) == 1:
            return f"{per_seed.item():+.2f} [± {image_se:.2f}]"
        s = mean_stderr(per_seed)
        return f"{s.mean:+.2f} ± {s.stderr:.2f} [± {image_se:.2f}]"

    def plot_sweeps(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        files = sorted(self.out.glob("sweep_*_k*.json"))
        if not files:
            return
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for f in files:
            sweep = json.loads(f.read_text())
            label = f.stem.replace("sweep_", "")
            for ax, (name, curve) in zip(axes, [(n, sweep["curves"].get(n, [])) for n in FAMILIES]):
                if not curve:
                    continue
                params = [c[0] for c in curve]
                ax.plot(params, [c[1] - sweep["curves"]["baseline"] for c in curve], "o-", label=f"{label}, early-stopped")
                ax.plot(params, [c[2] - sweep["curves"]["baseline"] for c in curve], "x--", label=f"{label}, last epoch")
                ax.axhline(0, color="grey", lw=0.8)
                ax.set_xscale("log")
                ax.set_xlabel("σ" if "DVAE" in name else "H")
                ax.set_title(name)
        axes[0].set_ylabel("validation IWAE bound − baseline's\n(early-stopped baseline; nats, higher = better)")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.out / "sweep.png", dpi=120)
        plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--paper-budget", action="store_true", help="the full-data run (configs.PAPER)")
    p.add_argument("--out", default=None, help="default: results/cpu, with --paper-budget results/paper")
    p.add_argument("--data-dir", default=None, help="directory of OMNIGLOT / Caltech files ($PYRO_AIR_DATA)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", action="append", default=[], metavar="K=N",
                   help="override the budget's epochs for k particles, e.g. --epochs 8=500 (0 = skip that k)")
    p.add_argument("--seeds", action="append", default=[], metavar="K=S,S,...",
                   help="override the budget's seeds for k particles, e.g. --seeds 8=0,1,2")
    p.add_argument("--grid", action="append", default=[], metavar="FAMILY=V,V,...",
                   help="override the selection grid of dvae (sigma) or wni (H), e.g. --grid wni=1,2,3")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", dest="settings",
                   help="override any other budget key with a JSON value, e.g. --set test_size=100 --set "
                        "'arch={\"hidden\": [16], \"z_dim\": 2}' (arch: the architecture for every dataset)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = copy.deepcopy(configs.PAPER if args.paper_budget else configs.CPU)
    for item in args.epochs:
        k, n = _override(item, "--epochs")
        budget["epochs"][k] = int(n)
    for item in args.seeds:
        k, seeds = _override(item, "--seeds")
        budget["seeds"][k] = [int(s) for s in seeds.split(",")]
    for item in args.grid:
        family, sep, values = item.partition("=")
        if not sep or family not in budget["grid"] or not values:
            raise SystemExit(f"--grid takes dvae=... or wni=... (comma-separated values); got {item!r}")
        budget["grid"][family] = [float(v) for v in values.split(",")]
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or (key not in budget and key != "arch"):
            raise SystemExit(f"--set takes KEY=JSON with KEY one of {', '.join([*budget, 'arch'])}; got {item!r}")
        try:
            budget[key] = _with_int_keys(json.loads(value))
        except json.JSONDecodeError as err:
            raise SystemExit(f"--set {key}=...: not valid JSON: {value!r} ({err})") from None
    out = Path(args.out) if args.out else HERE / "results" / ("paper" if args.paper_budget else "cpu")
    Experiment(budget, out, args.data_dir).run()
    return 0


def _with_int_keys(value):
    """JSON object keys are strings; the budget's per-k tables are keyed by int k."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()}
    return value


def _override(item: str, flag: str):
    k, sep, value = item.partition("=")
    if not sep or k.strip() not in ("1", "8", "64") or not value:
        raise SystemExit(f"{flag} takes K=VALUE with K in 1, 8, 64 (e.g. {flag} 8=...); got {item!r}")
    return int(k), value


if __name__ == "__main__":
    sys.exit(main())
