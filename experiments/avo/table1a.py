"""AVO Table 1a at full data (Huang, Tan, Lacoste & Courville 2018): VAE, HVI-ELBO and HVI-AVO on
statically binarized MNIST - one resumable worker, an ordered plan (``experiments/plan_worker.py``).

    bash experiments/avo/table1a_state.sh restore          # same machine, new session: unfinished runs' checkpoints
    mkdir -p experiments/avo/results/table1a && PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup nice -n 19 \\
        python experiments/avo/table1a.py --worker --threads 1 >> experiments/avo/results/table1a/worker.log 2>&1 &
                                                            # start, or resume after any interruption
    python experiments/avo/table1a.py --report              # table.md + results.json from what is on disk
    python experiments/avo/table1a.py --plan                # the plan, with each task's state
    bash experiments/avo/table1a_state.sh save             # before a machine goes away: snapshot the checkpoints
    python experiments/avo/table1a.py --carry               # as a session ends: commit the unfinished runs' state

A second worker can share the plan (``--only ais-vae-s0 ais-avo-s0 ...``): each task is locked while it
runs, and a finished one is skipped.

**Set-up (the paper's section 5.4 where it says, the AIR full-data recipe of issue 32 where it does
not).** Data: MNIST 50000 / 10000 / 10000, static binarization draw 0 of ``pyro_air.data`` (the
project's fixed draw; the paper uses Larochelle & Murray's). Networks: decoder z-300-300-784 and
encoder 784-300-300 with gated dense layers (Tomczak & Welling; ``activation="gated"``), z = 40.
VAE: the Gaussian encoder. HVI: ``HierarchicalGuide`` with the same encoder as q_0 and T = 5
stochastic refinement operators and reverse kernels of section 4.2 (``pyro_air/guides/transitions.py``:
weight-normalized layers, gated mean, softplus std; a ReLU hidden
layer as in the authors' code, 300 units wide (the paper gives no width), conditioned on the
encoder's last hidden layer), started near the identity (gate bias -4, std 0.05: ``TRANSITION_START``,
where the authors' code starts at -1 and 1; measured in ``transition_init.py``).
Objectives: VAE and HVI-ELBO maximize the ELBO (for HVI the bound of Eq. 3 over the extended
model); HVI-AVO is loss-calibrated AVO (section 4.3) with a = 0.2, the paper's best column (a = 0.5
is a later task), alpha_t = t / T. Beta-annealing (Eq. 2): ``kl-warmup`` scales every latent term
(log p(z), log q_t, log r_t: the extended model's too) by beta, linear from 0 to 1 over a fraction of
the steps; under AVO it tempers each transition's term the same way. Adam, batch 100, the learning
rate decayed exponentially to a tenth over the run (lr 0.1^(e / epochs) at epoch e; issue 32's short
schedule: 200 epochs), validation IWAE-20 on all 10000 validation images every 10 epochs, the best
epoch's parameters kept.

**Hyperparameters chosen on validation at a short budget.** The paper searched batch size, learning
rate and the beta-annealing schedule. Here each method gets a 2 x 2 grid, lr in {1e-3, 5e-4} x warm-up
fraction in {0, 0.25} (batch fixed at 100), each cell trained for 40 epochs (a fifth of the full run,
its lr decay and warm-up compressed to those 40 epochs) at seed 0; the cell with the best validation
IWAE-20 gives the full runs' lr and warm-up fraction. a = 0.5 reuses AVO's choice; HVI-ELBO has its
own grid.

**Evaluation (one evaluation stream for every model: paired draws).** Test -log p(x) by IWAE-5000
over the extended model (for HVI: importance weights p(x, z_T) prod_t r_t(z_{t-1} | z_t) / q(z_0..z_T),
whose mean is p(x) because the reverse kernels integrate to one - a stochastic lower bound of the
model's log p(x); the paper's Appendix E: the same kind of bound with 1000 samples) on all 10000 test
images; -L = the 100-draw mean of
the same extended-model ELBO per test image (the bound the paper's table reports); -L on the training
and validation splits with 10 draws per image; AIS (``pyro_air.evaluate.ais``, HMC, C = 16,
pilot-tuned step sizes) on the first 500 test images, from q_0 of the guide (``HierarchicalGuide.
initial_guide``; the VAE's own q): it estimates the same log p(x) of the model (prior and decoder),
whatever the transitions do, so VAE and HVI rows are compared on one quantity; its T is chosen per
model by BDMC (Grosse et al. 2015) on 50 points simulated from that model, HMC from q_0 as the AIS: the
first T of 100, 300, 1000 whose mean sandwich width is below 0.2 nats (issue 32's rule; until session 8
the plan fixed T = 1000, where the seed-0 VAE's width was 0.01). Gaps as in the paper's table
(experiments/avo/RESULTS.md): gen gap = -L_te - (-L_tr), var gap = -L_te - (-log p_te). Paired
differences against the VAE of the same seed on the same test images; seeds 1 and 2 of every method
give the seed spread. Table: ``table1a_report.py``.

**Budget** (CPU-minutes on this machine's "Intel(R) Xeon(R) Processor" (AMX), one thread, process
time measured with ``experiments/avo/table1a_cost.py`` beside two nice-19 one-thread training workers,
200-300 steps each; the load of other jobs moved repeated measurements by up to 25 %, the larger is
used). A training step (batch 100) costs 0.011 s for the VAE, 0.039-0.050 s for HVI-ELBO, 0.058 s for
an AVO step (a = 1) and 0.049-0.054 s for HVI-AVO at a = 0.2 (0.8 ELBO + 0.2 AVO steps): an epoch (500
steps) 5.5 s / 22.5 s / 26 s. IWAE-5000 costs 0.040 s per test image for the VAE and 0.145-0.19 s for
HVI (the extended model's transitions and reverse kernels), a 100-draw ELBO 0.001 / 0.004-0.005 s,
AIS at T = 1000, C = 16 (pilot included) 5.7 s per image (the model alone: the same for every method).
Validation (IWAE-20 on 10000 images every 10 epochs) adds 0.5-2 minutes a run. So:

| # | task(s) | what | CPU-min |
|---|---|---|---|
| 1 | sel-vae-* (4) | VAE grid, 40 epochs each | 15 |
| 2 | sel-avo-* (4) | HVI-AVO (a = 0.2) grid, 40 epochs each | 71 |
| 3 | vae-s0 | VAE, 200 epochs (18) + test: IWAE-5000 on 10000 images, ELBOs (7) | 26 |
| 4 | avo-s0 | HVI-AVO, 200 epochs (87) + test (29) | 118 |
|   |   | **first answer: VAE vs HVI-AVO, paired, seed 0** | **~230 (3.8 h)** |
| 5 | sel-hvi-* (4) | HVI-ELBO grid | 62 |
| 6 | hvi-s0 | HVI-ELBO, 200 epochs + test | 105 |
| 7 | bdmc-{vae,avo,hvi}-s0 | BDMC up the T ladder on 50 simulated points, 1-10 each | 3-30 |
| 8 | ais-{vae,avo,hvi}-s0 | AIS on 500 test images at the chosen T: 5 each at T = 100, 48 at T = 1000 | 15-143 |
| 9 | {vae,avo,hvi}-s1, -s2 | seeds 1 and 2 (the seed spread) | 500 |
| 10 | valid-{vae,avo,hvi}-s0 | IWAE-5000 on the 10000 validation images (-log p(D_va)) | 63 |
| 11 | avo-a0.5-s0 | the paper's a = 0.5 column | 118 |
|   |   | **everything** | **~1100-1230 (18-20.5 h)** |

Why this order: the claim a user needs first is HVI-AVO against the plain VAE (paper: 86.06 vs 87.50),
so their grids and seed-0 runs come first (~3.8 CPU-hours); HVI-ELBO (the paper's 87.62: AVO's
effect at equal architecture) next, then the AIS column that takes the estimator out of the
comparison, then the seeds that say whether a difference is larger than the seed spread; the
validation likelihoods and the a = 0.5 column complete the paper's table last.

Every task is skipped when its result is on disk; a training run resumes from its last checkpoint
(every epoch; the numbers of an uninterrupted run) and AIS / BDMC from their last finished chunk of
images. The worker commits nothing: results go atomically into tracked files (``runs/*/train.json``,
``runs/*/metrics.jsonl``, ``per_image/*.json``, ``estimators/**.json``, ``table.md``, ``results.json``);
checkpoints (``*.pt``), locks and the log are git-ignored and carried by ``table1a_state.sh`` on the
local branch ``avo-table1a-state`` (same machine only). A new machine starts from the branch alone:
``--carry`` (``experiments/carry_state.py``) commits the resume files of the tasks not done (a checkpoint
with its best weights, a best.pt awaiting evaluation, a partial evaluation), and a finished run whose
weights are gone comes back from the zoo or is trained again (experiments/README.md).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # table1a_report, plan_worker, pyro_air

import torch  # noqa: E402

from plan_worker import PlanWorker, bdmc_chunk, fit_resumable, log, per_image, run_main, write_json  # noqa: E402
from pyro_air.compare import evaluate_row  # noqa: E402
from pyro_air.core.seeds import derive_seed, stream_seed  # noqa: E402
from pyro_air.evaluate import elbo, mean_stderr  # noqa: E402
from pyro_air.backend.choices import cpu_label  # noqa: E402
from pyro_air.runs import build_run, load_run  # noqa: E402
from pyro_air.train import TrainConfig  # noqa: E402

OUT = HERE / "results" / "table1a"
EVAL_SEED = stream_seed(0, "evaluation")  # one evaluation stream for every model: paired draws
# sizes of the real plan; --tiny shrinks every one of them (the tests)
SCALES = {
    "full": {"select_epochs": 40, "epochs": 200, "train_size": None, "valid_size": None, "valid_every": 10,
             "valid_samples": 20, "hidden": [300, 300], "z_dim": 40, "transitions": 5, "transition_hidden": 300,
             "test_points": None, "test_samples": 5000, "bound_draws": 100, "split_draws": 10, "valid_points": None,
             "ais_points": 500, "ais_chunk": 50, "ais_ladder": [100, 300, 1000], "ais_chains": 16,
             "bdmc_points": 50, "bdmc_chunk": 10, "max_width": 0.2},
    "tiny": {"select_epochs": 1, "epochs": 2, "train_size": 200, "valid_size": 40, "valid_every": 1,
             "valid_samples": 3, "hidden": [16], "z_dim": 4, "transitions": 2, "transition_hidden": 8,
             "test_points": 12, "test_samples": 8, "bound_draws": 2, "split_draws": 2, "valid_points": 10,
             "ais_points": 4, "ais_chunk": 2, "ais_ladder": [2, 3], "ais_chains": 2,
             "bdmc_points": 2, "bdmc_chunk": 2, "max_width": 0.2},
}
# method -> guide, objective and AVO's a; "select": whose grid chooses its lr and warm-up
METHODS = {
    "vae": {"label": "VAE (T = 0)", "guide": "gaussian", "objective": "elbo", "a": 0.0, "select": "vae"},
    "hvi": {"label": "HVI-ELBO (T = 5, a = 0)", "guide": "hierarchical", "objective": "elbo", "a": 0.0,
            "select": "hvi"},
    "avo": {"label": "HVI-AVO (T = 5, a = 0.2)", "guide": "hierarchical", "objective": "avo", "a": 0.2,
            "select": "avo"},
    "avo-a0.5": {"label": "HVI-AVO (T = 5, a = 0.5)", "guide": "hierarchical", "objective": "avo", "a": 0.5,
                 "select": "avo"},
}
GRID = [(lr, warmup) for lr in (1e-3, 5e-4) for warmup in (0.0, 0.25)]
# session 4: the transitions and reverse kernels start near the identity, not at the authors' gate -1 /
# std 1: from that start the first HVI-AVO cell was 17.6 nats behind the VAE after its 40 epochs, and
# at 800 steps HVI-ELBO / HVI-AVO from the authors' start were 17 / 23 nats behind the VAE, from this
# start 2 (experiments/avo/transition_init.py, results/transition_init/). The paper's runs are long
# enough for the start not to matter; ours (200 epochs) are not. The HVI runs of the first start were
# discarded (their curve is in RESULTS.md).
TRANSITION_START = {"transition_gate_bias": -4.0, "transition_std": 0.05}


def _num(v: float) -> str:
    return f"{v:g}".replace("0.001", "1e-3").replace("0.0005", "5e-4")


def select(method: str, lr: float, warmup: float) -> dict:
    return {"name": f"sel-{method}-lr{_num(lr)}-w{_num(warmup)}", "kind": "train", "role": "select", "method": method,
            "seed": 0, "lr": lr, "warmup": warmup,
            "change": f"{METHODS[method]['label']}: lr {_num(lr)}, warm-up over {warmup:.0%} (short schedule)"}


def full(method: str, seed: int) -> dict:
    return {"name": f"{method}-s{seed}", "kind": "train", "role": "full", "method": method, "seed": seed,
            "change": f"{METHODS[method]['label']}, seed {seed}: full schedule, lr and warm-up from sel-"
                      f"{METHODS[method]['select']}-*; test IWAE-5000 and ELBOs"}


def ais_task(of: str) -> dict:
    return {"name": f"ais-{of}", "kind": "ais", "of": of, "change": f"AIS (HMC from q_0) on the first test images: {of}"}


def bdmc_task(of: str) -> dict:
    return {"name": f"bdmc-{of}", "kind": "bdmc", "of": of,
            "change": f"BDMC on points simulated from {of}, up the T ladder: the T of its AIS"}


def valid_task(of: str) -> dict:
    return {"name": f"valid-{of}", "kind": "valid", "of": of, "change": f"IWAE-5000 on the validation images: {of}"}


PLAN = [
    *[select("vae", lr, w) for lr, w in GRID],
    *[select("avo", lr, w) for lr, w in GRID],
    full("vae", 0),
    full("avo", 0),
    *[select("hvi", lr, w) for lr, w in GRID],
    full("hvi", 0),
    # session 8: each model's AIS T is the first of the ladder whose BDMC sandwich on points simulated from
    # that model is narrower than max_width (issue 32's rule), instead of T = 1000 for all
    *[task for m in ("vae", "avo", "hvi") for task in (bdmc_task(f"{m}-s0"), ais_task(f"{m}-s0"))],
    *[full(m, s) for s in (1, 2) for m in ("vae", "avo", "hvi")],
    *[valid_task(f"{m}-s0") for m in ("vae", "avo", "hvi")],
    full("avo-a0.5", 0),
]


# task of table1a.py (seed 0) -> zoo name
ZOO_NAMES = {"vae-s0": "avo-vae-mnist", "hvi-s0": "avo-hvi-mnist", "avo-s0": "avo-hvi-avo-mnist",
             "avo-a0.5-s0": "avo-hvi-avo-a0.5-mnist"}


class Table1aWorker(PlanWorker):
    zoo_names = ZOO_NAMES   # a finished run's weights come back from its zoo entry (PlanWorker.restore_from_zoo)
    report_module = "table1a_report"
    plan = PLAN
    scales = SCALES

    # -- data ------------------------------------------------------------------------------------
    def test_x(self, points=None) -> torch.Tensor:
        return self.split("test")[: points or self.s["test_points"]]

    # -- runs ------------------------------------------------------------------------------------
    def spec(self, t: dict, hyper: dict) -> dict:
        s, m = self.s, METHODS[t["method"]]
        net = {"x_dim": 784, "z_dim": s["z_dim"], "hidden": list(s["hidden"]), "activation": "gated"}
        guide = {"name": "gaussian", "cfg": dict(net)}
        if m["guide"] == "hierarchical":
            guide = {"name": "hierarchical", "cfg": {**net, "num_transitions": s["transitions"],
                                                     "transition_hidden": s["transition_hidden"],
                                                     "transition_activation": "relu", **TRANSITION_START}}
        if m["objective"] == "avo":
            inner = ("avo", {"num_transitions": s["transitions"], "a": m["a"], "seed": t["seed"]})
        else:
            inner = ("elbo", {})
        objective = {"name": inner[0], "cfg": inner[1]}
        if hyper["warmup"] > 0:
            objective = {"name": "kl-warmup", "cfg": {"objective": inner[0], "objective_cfg": inner[1],
                                                      "beta_start": 0.0, "fraction": hyper["warmup"]}}
        return {"model": {"name": "bernoulli-vae", "cfg": dict(net)}, "guide": guide, "objective": objective,
                "data": {"name": "mnist", "train_size": self.s["train_size"], "binarize": "static"}}

    def build(self, spec: dict, seed: int):
        """(model, guide, objective) of a run; each built from its own seeded stream (``build_run``)."""
        return build_run(spec, seed=seed)

    def hyper(self, t: dict) -> dict:
        """lr and warm-up of a task: its own for a grid cell, the chosen cell's for a full run."""
        if t["role"] == "select":
            return {"lr": t["lr"], "warmup": t["warmup"], "chosen_from": None}
        from table1a_report import chosen

        method = METHODS[t["method"]]["select"]
        for cell in self.plan:
            if cell.get("role") == "select" and cell["method"] == method:
                self.wait_for(cell["name"])
        best = chosen(self.out, self.plan, method)
        return {"lr": best["lr"], "warmup": best["warmup"], "chosen_from": best["name"]}

    def run_train(self, t: dict) -> None:
        run_dir = self.runs / t["name"]
        if not (run_dir / "train.json").exists():
            hyper = self.hyper(t)
            spec = self.spec(t, hyper)
            epochs = self.s["select_epochs"] if t["role"] == "select" else self.s["epochs"]
            config = TrainConfig(epochs=epochs, batch_size=100, lr=hyper["lr"], lr_final_ratio=0.1, seed=t["seed"],
                                 valid_every=min(self.s["valid_every"], epochs),
                                 valid_num_samples=self.s["valid_samples"],
                                 valid_size=self.s["valid_size"], progress=False, checkpoint_every_epochs=1)
            model, guide, objective = self.build(spec, t["seed"])
            record = fit_resumable(run_dir, model, guide, objective, self.split("train"), self.split("valid"), config,
                                   spec)
            write_json(run_dir / "train.json", {"task": t, "cpu": cpu_label(), "hyper": hyper, "spec": spec, **record})
            log(f"{t['name']}: best valid IWAE-{self.s['valid_samples']} {record['best_valid']:.2f} @ epoch "
                f"{record['best_epoch']} ({record['epoch_seconds_sum'] / 60:.1f} min of epochs)")
        if t["role"] == "full":
            model, guide, _ = load_run(run_dir)
            self.test(t["name"], model, guide)

    # -- evaluation ------------------------------------------------------------------------------
    def test(self, name: str, model, guide) -> None:
        """Per test image: IWAE-S log p(x) and the mean of ``bound_draws`` ELBO draws; the ELBO's mean on
        the training and validation splits -> per_image/NAME.json."""
        path = self.out / "per_image" / f"{name}.json"
        if path.exists():
            return
        wall, cpu = time.perf_counter(), time.process_time()
        x = self.test_x()
        partial = self.partial(name)  # a killed evaluation continues from its last batch
        resumed = partial.exists()
        row = evaluate_row(model, guide, x, k=1, num_samples=self.s["test_samples"],
                           num_estimates=self.s["bound_draws"], seed=EVAL_SEED, resume_dir=partial / "test",
                           keep_resume_files=True)
        splits = {}
        for key, split in enumerate(("train", "valid"), start=2):
            bound = elbo(model, guide, self.split(split), num_samples=self.s["split_draws"],
                         seed=derive_seed(EVAL_SEED, key), resume_file=partial / f"{split}.pt", keep_resume_file=True)
            summary = mean_stderr(-bound)
            splits[split] = {"neg_elbo": [summary.mean, summary.stderr], "points": len(bound),
                             "draws": self.s["split_draws"]}
        write_json(path, {"points": len(x), "num_samples": self.s["test_samples"], "bound_draws": self.s["bound_draws"],
                          "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "cpu": cpu_label(),
                          "resumed": resumed,  # the seconds then count only the part after the restart
                          "splits": splits, "log_px": per_image(row["log_px"]), "bound": per_image(row["bound"])})
        self.partial_done(name)
        log(f"{name}: test -log p(x) {row['nll']} (IWAE-{self.s['test_samples']}, {len(x)} images), -ELBO "
            f"{row['neg_elbo']}, train -ELBO {splits['train']['neg_elbo'][0]:.2f}")

    def trained(self, name: str):
        """(model, guide) of full run ``name``, after running it if it has not finished."""
        model, guide, _ = self.load(name)
        return model, guide

    def run_valid(self, t: dict) -> None:
        from pyro_air.evaluate import log_likelihood

        model, guide = self.trained(t["of"])
        x = self.split("valid")[: self.s["valid_points"]]
        wall, cpu = time.perf_counter(), time.process_time()
        partial = self.partial(t["name"])
        resumed = partial.exists()
        log_px = log_likelihood(model, guide, x, num_samples=self.s["test_samples"], seed=derive_seed(EVAL_SEED, 4),
                                resume_file=partial / "valid.pt")
        write_json(self.out / "per_image" / f"{t['name']}.json",
                   {"points": len(x), "num_samples": self.s["test_samples"], "wall_seconds": time.perf_counter() - wall,
                    "cpu_seconds": time.process_time() - cpu, "resumed": resumed, "log_px": per_image(log_px)})
        self.partial_done(t["name"])
        log(f"{t['name']}: valid -log p(x) {mean_stderr(-log_px)}")

    def run_ais(self, t: dict) -> None:
        """AIS from q_0 at the T its BDMC task chose, in chunks of images, one file each (a resumed task
        skips the finished chunks)."""
        from pyro_air.evaluate import ais
        from table1a_report import chosen_T

        self.wait_for(f"bdmc-{t['of']}")
        T = chosen_T(self.out / "estimators" / f"bdmc-{t['of']}", self.s)
        model, guide = self.trained(t["of"])
        initial = guide.initial_guide() if hasattr(guide, "initial_guide") else guide
        x, step = self.test_x(self.s["ais_points"]), self.s["ais_chunk"]
        for start in range(0, len(x), step):
            path = self.out / "estimators" / t["name"] / f"T{T}_points{start}-{start + step}.json"
            if path.exists():
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            log_px = ais(model, initial, x[start:start + step], num_steps=T,
                         num_chains=self.s["ais_chains"], seed=derive_seed(EVAL_SEED, 9, start))
            write_json(path, {"T": T, "chains": self.s["ais_chains"], "log_px": per_image(log_px),
                              "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu})
        log(f"{t['name']}: AIS at T = {T} done on {len(x)} images")

    def run_bdmc(self, t: dict) -> None:
        """BDMC (Grosse et al. 2015) on points simulated from the model, HMC from q_0 (as its AIS), up the
        ``ais_ladder`` until the mean sandwich width is below ``max_width``."""
        from pyro_air.evaluate import simulate
        from table1a_report import bdmc_widths

        model, guide = self.trained(t["of"])
        initial = guide.initial_guide() if hasattr(guide, "initial_guide") else guide
        n, chunk = self.s["bdmc_points"], self.s["bdmc_chunk"]
        x, z = simulate(model, n, seed=derive_seed(EVAL_SEED, 7))
        directory = self.out / "estimators" / t["name"]
        for T in self.s["ais_ladder"]:
            for start in range(0, n, chunk):
                bdmc_chunk(directory / f"T{T}_points{start}-{start + chunk}.json", model, initial,
                           (x[start:start + chunk], z[start:start + chunk]), T, self.s["ais_chains"],
                           derive_seed(EVAL_SEED, 8, T, start))
            width = bdmc_widths(directory, self.s)[T]
            log(f"{t['name']}: BDMC at T = {T}: mean width {width[0]:.3f} nats on {n} simulated points")
            if width[0] < self.s["max_width"]:
                break

    # -- the plan --------------------------------------------------------------------------------


def main(argv=None) -> int:
    return run_main(Table1aWorker, argv, default_out=OUT, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
