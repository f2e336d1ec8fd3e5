"""InfoVAE Table 1 at full data (Zhao, Song & Ermon): ELBO against InfoVAE-MMD with a PixelCNN decoder -
-log p(x), mutual information, active units - one resumable worker, an ordered plan
(``experiments/plan_worker.py``).

    bash experiments/infovae/pixelcnn_state.sh restore       # same machine, new session: unfinished runs' checkpoints
    mkdir -p experiments/infovae/results/pixelcnn && PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup \\
        nice -n 19 python experiments/infovae/pixelcnn_table.py --worker --threads 1 \\
        >> experiments/infovae/results/pixelcnn/worker.log 2>&1 &     # start, or resume after any interruption
    python experiments/infovae/pixelcnn_table.py --report    # table.md + results.json from what is on disk
    python experiments/infovae/pixelcnn_table.py --plan      # the plan, with each task's state
    bash experiments/infovae/pixelcnn_state.sh save          # before a machine goes away: snapshot the checkpoints
    python experiments/infovae/pixelcnn_table.py --carry     # as a session ends: commit the unfinished runs' state

**The claim.** With a decoder strong enough to model x alone, the ELBO lets q(z | x) fall back to the
prior, so z carries no information about x (information preference); InfoVAE with alpha = 1 and
lambda = 1000, MMD divergence, has no per-datapoint KL pressure and keeps z informative (the paper's
"The Information Preference Property", Figure 6), and its Table 1 reports -log p(x) = 82.75 (ELBO)
against 80.76 (MMD-VAE) on MNIST with a PixelCNN decoder and z = 5.

**Set-up.** Statically binarized MNIST (draw 0; the paper: "stochastically binarized MNIST (Salakhutdinov
and Murray 2008)", the fixed binarization), 50000 / 10000 / 10000, z = 5 (the paper's log-likelihood
setting). Decoder ``pixelcnn-vae``: gated PixelCNN (van den Oord et al. 2016), z entering every gate as
a bias, 16 channels, 4 gated layers, kernel 5 (receptive field 8 rows up and 8 columns left; the size
that collapsed under the ELBO in experiments/infovae/RESULTS.md). Encoder ``conv-gaussian``: strided
convolutions of 16 and 32 channels, a 256-unit layer. ELBO: ``elbo``; MMD-VAE: ``infovae`` with alpha = 1,
lambda = 1000, ``divergence="mmd"`` (the authors' kernel, fresh prior draws per batch). Adam, batch 100,
lr 1e-3 decayed exponentially to 1e-4 over the run; validation IWAE-5 on the first 1000 validation images
every 5 epochs, the best epoch's parameters kept. No hyperparameter search: the paper's alpha and
lambda, and one recipe for both objectives.

**Evaluation (one evaluation stream for every model: paired draws).** On the first 1000 test images:
-log p(x) by IWAE-1000 (a stochastic lower bound of log p(x) for any q, so it serves the MMD model,
which optimizes no bound), IWAE-100 beside it (convergence in S), -L the 10-draw ELBO per image. On all
10000 test images: I_q(x; z) (the mixture estimator, at most log 10000 = 9.21 nats), active units
(Cov_x E[z | x] > 0.01, Burda et al.), E_x KL(q(z | x) || p(z)) in closed form, MMD(q(z), p(z)) and
log det Cov[q(z)] per dimension (``pyro_air.evaluate.latent_metrics``). Paired differences MMD - ELBO
per test image at the same seed. Later: IWAE-1000 on all 10000 test images. Table:
``pixelcnn_report.py``.

**Budget** (CPU-minutes on this machine's "Intel(R) Xeon(R) Processor" (AMX), one thread, measured
with ``experiments/infovae/pixelcnn_cost.py`` beside two nice-19 one-thread training workers, 100
steps of batch 100 each (10 for the two largest; other jobs' load moves such numbers by up to ~25 %);
an epoch is 500 steps):

| PixelCNN (channels x gated layers, kernel 5) | parameters | s / step | CPU-min / epoch |
|---|---|---|---|
| 16 x 4 (chosen) | 36 k | 0.356 (MMD: 0.362) | 3.0 |
| 16 x 6 | 58 k | 0.527 | 4.4 |
| 16 x 8 | 80 k | 0.766 | 6.4 |
| 32 x 4 | 137 k | 0.907 | 7.6 |
| 32 x 6 | 223 k | 1.50 | 12.5 |
| 32 x 12 | 481 k | 3.16 | 26 |
| 64 x 12 | 1.9 M | 9.8 | 81 |

The paper's network: its appendix (not in shared/papers) has the exact PixelCNN; the decoders of
this line on MNIST (PixelVAE: 12 gated layers, kernel 5; the gated PixelCNN's 32-64 channels) are the
two last rows: 26-81 CPU-minutes an epoch, so 100 epochs of one run would be 43-135 CPU-hours - out of
reach on this CPU. Evaluation costs 1.1 ms per decoder pass over one image (in chunks of 10 x 10; the
default chunking of ``log_likelihood`` is 3x slower for this decoder), so IWAE-1000 on 1000 images
~18 minutes, and on all 10000 ~3 hours.

| # | task | what | CPU-min |
|---|---|---|---|
| 1 | elbo-s0 | ELBO, 40 epochs (120) + validation (3) + test (20) | 143 |
| 2 | mmd-s0 | MMD-VAE, 40 epochs + validation + test | 145 |
|   |   | **first answer: collapse or not, ELBO vs MMD, paired, seed 0** | **~290 (4.8 h)** |
| 3 | mmd-rate-s0, mmd-s1 | the MMD-VAE with a bounded encoder scale; seed 1 of the MMD-VAE | 290 |
| 4 | elbo-deep-s0, mmd-deep-s0 | 16 x 8 decoder, 20 epochs (128) + test (40) each | 340 |
| 5 | elbo-s1 | seed 1 of the ELBO (the paired Δ at seed 1) | 145 |
| 6 | elbo-long-s0, mmd-long-s0 | 120 epochs: does the answer hold with 3x the training? | 770 |
| 7 | elbo-s2, mmd-s2 | seed 2 | 290 |
| 8 | fulltest-elbo-s0, fulltest-mmd-s0 | IWAE-1000 on all 10000 test images | 360 |
|   |   | **everything** | **~2450 (41 h)** |

Why: 16 x 4 is the largest decoder whose two 40-epoch runs (20000 steps each, 50x the 400 steps of the
earlier collapse experiment) and their evaluation fit in about 5 CPU-hours; the information question
(I_q, active units) is answered by the first pair; seeds say whether the -log p(x) difference exceeds
the seed spread; the 120-epoch pair says whether 40 epochs changed the answer.

**The deep pair (added in session 8).** At 16 x 4 the ELBO kept 3.35 nats in z with 5 of 5 active units
(``elbo-s0``): a receptive field of 8 rows up does not see most of a digit, so z is the cheaper way to
carry its shape, and the paper's premise - a decoder that models x alone - does not arise. The deep
pair gives the decoder 8 gated layers (receptive field 16 rows up, most of the 20 rows a digit covers),
everything else the same, at 20 epochs to keep the pair near 6 CPU-hours (6.4 CPU-minutes an epoch):
whether the ELBO's code collapses there, and whether MMD's keeps information where it does, is the
paper's claim itself; it runs before the seeds of the 16 x 4 pair for that reason. Then ``mmd-s0``
measured the opposite of the claim at 16 x 4 - its code collapsed to the prior (I_q 0.0001 nats, no
active unit) - so two MMD-VAE runs come first. ``mmd-rate-s0`` bounds the encoder's scale (sigma <= 0.55,
the delta-VAE's committed rate of 0.25 nats a dimension, ``conv-gaussian``'s ``committed_rate``): the
authors' public MMD-VAE code has a deterministic encoder, where matching q(z) to the prior forces the code
to spread over it, while a Gaussian encoder with alpha = 1 can match it by q(z | x) = p(z) for every x;
a bounded scale takes that solution away and keeps q stochastic for the IWAE evaluation. ``mmd-s1``
then says whether the collapse is a property of the objective or an accident of seed 0.

**Compiled training (session 13).** From ``elbo-deep-s0`` on, every run trains its step through
``torch.compile`` (``TrainConfig(compile=True)``: inductor's C++ kernels fuse the gates' tanh * sigmoid,
the pads and the bias additions that dominate a decoder of 16 channels). ``python -m
benchmarks.pixelcnn_compiled --threads 1`` (``benchmarks/PIXELCNN_COMPILED.md``, AMD EPYC, beside the
two workers, 12 interleaved rounds) measured the compiled step at 0.73-0.80x the eager one's time
(8 layers: ELBO 0.77, MMD 0.73; 4 layers: ELBO 0.80, MMD 0.79; an earlier run of it 0.71-0.82) -
about 5 of the ~24 CPU-hours of training left in the plan. The compiled
step computes the same loss with other float rounding and its own (seeded) noise stream, so both runs
of every pair train alike: ``elbo-s0``, ``mmd-s0`` and ``mmd-rate-s0`` trained eagerly, everything after
compiled (``train.json``: ``"compiled"``); ``elbo-deep-s0``, 3 epochs into an eager training, started
again compiled. A compiled run resumes exactly (``tests/test_compiled.py``), on any machine. The
evaluations from then on (test and full-test IWAE, the test ELBO) run the decoder's forward pass
compiled too (``pyro_air.train.compiled.compiled_forward``: an IWAE-100 estimate in the worker's chunks
0.69-0.72x the eager time, 6e-5 nats from it; the per-image files record ``"compiled"``).

Every task is skipped when its result is on disk; a training run resumes from its last checkpoint
(every epoch) and the full-test IWAE from its last finished chunk of 1000 images. Results go
atomically into tracked files (``runs/*/train.json``, ``runs/*/metrics.jsonl``, ``per_image/*.json``,
``estimators/**.json``, ``table.md``, ``results.json``); checkpoints (``*.pt``), locks and the log are
git-ignored and carried by ``pixelcnn_state.sh`` on the local branch ``infovae-pixelcnn-state`` (same
machine only). A new machine starts from main alone, and one run needs about 160 minutes of a core, so
a run still training when a session ends has its ``checkpoint.pt`` and ``best.pt`` (9-15 MB together)
committed by ``--carry`` (``experiments/carry_state.py``) and resumes from them (experiments/README.md).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]  # pixelcnn_report, plan_worker, pyro_air

import torch  # noqa: E402

from pixelcnn_report import variant  # noqa: E402
from plan_worker import PlanWorker, fit_resumable, log, per_image, run_main, write_json  # noqa: E402
from pyro_air.core.seeds import derive_seed, stream_seed  # noqa: E402
from pyro_air.evaluate import elbo, log_likelihood, mean_stderr  # noqa: E402
from pyro_air.evaluate.latent_metrics import (  # noqa: E402
    active_units,
    aggregate_log_det_cov,
    latent_mmd,
    mutual_information,
)
from pyro_air.backend.choices import cpu_label  # noqa: E402
from pyro_air.runs import build_run, load_run  # noqa: E402
from pyro_air.train import TrainConfig  # noqa: E402
from pyro_air.train.compiled import compiled_forward  # noqa: E402

OUT = HERE / "results" / "pixelcnn"
EVAL_SEED = stream_seed(0, "evaluation")
SCALES = {
    "full": {"epochs": 40, "long_epochs": 120, "batch_size": 100, "train_size": None, "valid_size": 1000,
             "valid_every": 5, "valid_samples": 5, "z_dim": 5, "channels": 16, "layers": 4, "kernel": 5,
             "encoder_channels": [16, 32], "encoder_hidden": 256, "test_points": 1000, "test_samples": 1000,
             "check_samples": 100, "bound_draws": 10, "metric_points": None, "full_test_points": None,
             "full_test_chunk": 1000, "eval_chunk": 10, "deep_layers": 8, "deep_epochs": 20, "compile": True},
    "tiny": {"epochs": 2, "long_epochs": 3, "batch_size": 20, "train_size": 100, "valid_size": 20,
             "valid_every": 1, "valid_samples": 2, "z_dim": 2, "channels": 4, "layers": 2, "kernel": 3,
             "encoder_channels": [4], "encoder_hidden": 8, "test_points": 8, "test_samples": 6,
             "check_samples": 3, "bound_draws": 2, "metric_points": 30, "full_test_points": 12,
             "full_test_chunk": 6, "eval_chunk": 2, "deep_layers": 3, "deep_epochs": 2,
             "compile": False},  # tests: compiling each tiny run would cost more than it trains
}
METHODS = {
    "elbo": {"label": "ELBO", "objective": "elbo", "cfg": {}},
    "mmd": {"label": "MMD-VAE (alpha = 1, lambda = 1000)", "objective": "infovae",
            "cfg": {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"}},
    # session 8: the MMD-VAE whose q(z | x) cannot equal the prior (scale <= sigma_u, the delta-VAE's committed
    # rate of 0.25 nats a dimension): the stochastic counterpart of the authors' public MMD-VAE code, whose
    # encoder is deterministic, so that matching q(z) to p(z) forces the code to spread over the prior
    "mmd-rate": {"label": "MMD-VAE (alpha = 1, lambda = 1000), encoder scale bounded (rate >= 0.25 nats / dim)",
                 "objective": "infovae", "cfg": {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"},
                 "guide_cfg": {"committed_rate": 0.25}},
}
PAPER_NLL = {"elbo": 82.75, "mmd": 80.76}  # InfoVAE Table 1 (PixelCNN decoder, z = 5); mmd-rate is not the paper's


def train_task(method: str, seed: int, long: bool = False, deep: bool = False, compiled: bool = False) -> dict:
    """A training run and its test evaluation. ``long``: the 120-epoch schedule; ``deep``: the deeper decoder
    (``deep_layers`` gated layers, receptive field covering the digit) for ``deep_epochs`` epochs; ``compiled``:
    the training step through ``torch.compile`` (module docstring, "Compiled training")."""
    prefix = "deep-" if deep else "long-" if long else ""
    task = {"name": f"{method}-{prefix}s{seed}", "kind": "train", "method": method, "seed": seed, "long": long,
            "change": f"{METHODS[method]['label']}, seed {seed}, "
                      + ("deeper decoder" if deep else f"{'long' if long else 'first'} schedule")
                      + "; test IWAE and latent metrics"}
    if deep:   # only deep tasks carry the key: the records of the earlier tasks stay as they were written
        task["deep"] = True
    if compiled:  # likewise: the three runs trained eagerly keep their records
        task["compile"] = True
    return task


def full_test(of: str) -> dict:
    return {"name": f"fulltest-{of}", "kind": "full-test", "of": of, "change": f"IWAE on all test images: {of}"}


PLAN = [
    train_task("elbo", 0), train_task("mmd", 0),
    # session 8, after mmd-s0's code collapsed where elbo-s0's did not: an encoder that cannot collapse
    # (is the collapse the objective's or the Gaussian encoder's?), then is it seed 0's accident?
    train_task("mmd-rate", 0),
    # session 12: the deeper decoder first - the claim needs an ELBO that collapses, which the 4-layer
    # decoder did not give; then the seed check of the reversal
    # session 13: every run from here on trains compiled (~1.25x faster; both runs of each pair alike)
    train_task("elbo", 0, deep=True, compiled=True), train_task("mmd", 0, deep=True, compiled=True),
    train_task("mmd", 1, compiled=True),
    train_task("elbo", 1, compiled=True),
    train_task("elbo", 0, long=True, compiled=True), train_task("mmd", 0, long=True, compiled=True),
    train_task("elbo", 2, compiled=True), train_task("mmd", 2, compiled=True),
    full_test("elbo-s0"), full_test("mmd-s0"),
]


# task of pixelcnn_table.py (seed 0) -> zoo name (short, so that `pyro-air zoo list` fits 120 columns; the
# PixelCNN decoder shows in its model column)
ZOO_NAMES = {"elbo-s0": "infovae-elbo-mnist", "mmd-s0": "infovae-mmd-mnist"}


class PixelCNNTableWorker(PlanWorker):
    zoo_names = ZOO_NAMES   # a finished run's weights come back from its zoo entry (PlanWorker.restore_from_zoo)
    report_module = "pixelcnn_report"
    plan = PLAN
    scales = SCALES

    def spec(self, t: dict) -> dict:
        s, m = self.s, METHODS[t["method"]]
        layers = s["deep_layers"] if t.get("deep") else s["layers"]
        return {"model": {"name": "pixelcnn-vae", "cfg": {"x_dim": 784, "z_dim": s["z_dim"], "channels": s["channels"],
                                                          "num_layers": layers, "kernel_size": s["kernel"]}},
                "guide": {"name": "conv-gaussian", "cfg": {"x_dim": 784, "z_dim": s["z_dim"],
                                                           "channels": list(s["encoder_channels"]),
                                                           "hidden": s["encoder_hidden"], **m.get("guide_cfg", {})}},
                "objective": {"name": m["objective"], "cfg": dict(m["cfg"])},
                "data": {"name": "mnist", "train_size": s["train_size"], "binarize": "static"}}

    def build(self, spec: dict, seed: int):
        return build_run(spec, seed=seed)

    def run_train(self, t: dict) -> None:
        run_dir = self.runs / t["name"]
        if not (run_dir / "train.json").exists():
            spec = self.spec(t)
            epochs = self.s[{"first": "epochs", "long": "long_epochs", "deep": "deep_epochs"}[variant(t)]]
            config = TrainConfig(epochs=epochs, batch_size=self.s["batch_size"], lr=1e-3, lr_final_ratio=0.1,
                                 seed=t["seed"], valid_every=min(self.s["valid_every"], epochs),
                                 valid_num_samples=self.s["valid_samples"], valid_size=self.s["valid_size"],
                                 progress=False, checkpoint_every_epochs=1,
                                 compile=bool(t.get("compile")) and self.s["compile"])
            if config.compile:
                import torch._inductor.config as inductor_config

                inductor_config.compile_threads = 1  # one core per worker, compiling included
            model, guide, objective = self.build(spec, t["seed"])
            record = fit_resumable(run_dir, model, guide, objective, self.split("train"), self.split("valid"), config,
                                   spec)
            write_json(run_dir / "train.json", {"task": t, "cpu": cpu_label(), "spec": spec, "compiled": config.compile,
                                                **record})
            log(f"{t['name']}: best valid IWAE-{self.s['valid_samples']} {record['best_valid']:.2f} @ epoch "
                f"{record['best_epoch']} ({record['epoch_seconds_sum'] / 60:.1f} min of epochs)")
        model, guide, _ = load_run(run_dir)
        self.test(t["name"], model, guide)

    def iwae(self, model, guide, x, samples: int, seed: int, resume_file=None) -> torch.Tensor:
        """IWAE-``samples`` log p(x) per image, ``eval_chunk`` samples x images per decoder pass (a killed
        call continues from ``resume_file``'s batches, ``pyro_air.evaluate.resume``)."""
        c = self.s["eval_chunk"]
        return log_likelihood(model, guide, x, num_samples=samples, chunk_size=c, batch_size=c, seed=seed,
                              resume_file=resume_file, keep_resume_file=True)

    def test(self, name: str, model, guide) -> None:
        path = self.out / "per_image" / f"{name}.json"
        if path.exists():
            return
        wall, cpu = time.perf_counter(), time.process_time()
        x = self.split("test")[: self.s["test_points"]]
        partial = self.partial(name)  # a killed evaluation continues from its last batch
        resumed = partial.exists()
        with compiled_forward(model.decoder, self.s["compile"]):  # module docstring, "Compiled training"
            log_px = self.iwae(model, guide, x, self.s["test_samples"], derive_seed(EVAL_SEED, 0),
                               partial / "log_px.pt")
            check = self.iwae(model, guide, x, self.s["check_samples"], derive_seed(EVAL_SEED, 1),
                              partial / "check.pt")
            c = self.s["eval_chunk"]
            bound = elbo(model, guide, x, num_samples=self.s["bound_draws"], chunk_size=c, batch_size=c,
                         seed=derive_seed(EVAL_SEED, 2), resume_file=partial / "bound.pt", keep_resume_file=True)
        metrics = self.latent_metrics(model, guide)
        write_json(path, {"points": len(x), "num_samples": self.s["test_samples"], "compiled": self.s["compile"],
                          "check_samples": self.s["check_samples"], "bound_draws": self.s["bound_draws"],
                          "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "cpu": cpu_label(),
                          "resumed": resumed,  # the seconds then count only the part after the restart
                          "latent": metrics, "log_px": per_image(log_px), "log_px_check": per_image(check),
                          "bound": per_image(bound)})
        self.partial_done(name)
        log(f"{name}: -log p(x) {mean_stderr(-log_px)} (IWAE-{self.s['test_samples']}, {len(x)} images), "
            f"I_q {metrics['mutual_information']:.3f} nats, {metrics['active_units']} active units")

    def latent_metrics(self, model, guide) -> dict:
        """InfoVAE's latent-space numbers on the test images (``metric_points``; None = all)."""
        x = self.split("test")[: self.s["metric_points"]]
        guide.eval()
        with torch.random.fork_rng():  # its own draws: the same numbers whatever ran before
            torch.manual_seed(derive_seed(EVAL_SEED, 3))
            units = active_units(guide, x)
            with torch.no_grad():
                q = guide.posterior(guide.encoder_input(x)).base_dist
                kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
            log_det = aggregate_log_det_cov(guide, x)
            information = mutual_information(guide, x)
            distance = latent_mmd(model, guide, x, seed=derive_seed(EVAL_SEED, 4))
        return {"points": len(x), "mutual_information": information, "mi_cap": math.log(len(x)),
                "active_units": units["active_units"], "z_dim": self.s["z_dim"],
                "activity": [round(float(a), 5) for a in units["activity"]],
                "kl": float(kl.mean()), "kl_se": float(kl.std() / math.sqrt(len(kl))), "mmd": float(distance),
                "log_det_cov_per_dim": float(log_det["log_det_cov_per_dim"])}

    def run_full_test(self, t: dict) -> None:
        model, guide, _ = self.load(t["of"])
        x = self.split("test")[: self.s["full_test_points"]]
        step = self.s["full_test_chunk"]
        for start in range(0, len(x), step):
            path = self.out / "estimators" / t["name"] / f"points{start}-{start + step}.json"
            if path.exists():
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            with compiled_forward(model.decoder, self.s["compile"]):
                log_px = self.iwae(model, guide, x[start:start + step], self.s["test_samples"],
                                   derive_seed(EVAL_SEED, 5, start))
            write_json(path, {"num_samples": self.s["test_samples"], "compiled": self.s["compile"],
                              "log_px": per_image(log_px),
                              "wall_seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu})
        log(f"{t['name']}: IWAE-{self.s['test_samples']} done on {len(x)} test images")


def main(argv=None) -> int:
    return run_main(PixelCNNTableWorker, argv, default_out=OUT, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
