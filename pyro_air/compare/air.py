"""AIR's comparison at a small budget (``pyro-air compare``): VAE vs DVAE vs WNI-VAE (AIR Table 1)
with the same decoder, data, seed and test images, each row with its paired difference from the VAE.

    result = compare_air(epochs=50, train_size=2000, sigma=0.1, H=1.5, run_dir="runs/compare")
    print(format_table(result.rows, columns=AIR_COLUMNS))      # pyro_air.evaluate.format_table

Two steps, so that a caller can act between them (the command line reports its thread count):
``AirComparison(...)`` checks everything - hyper-parameters, options, the run folder, the data -
and builds the three runs, writing nothing; ``.run()`` claims the folder and trains, evaluates and
compares them (``compare_air`` does both). Every model is built by
``pyro_air.runs.build_run(spec, seed)``, so the three start from the same decoder weights, trained
by ``pyro_air.train.fit`` into ``run_dir/{vae, dvae, wni}`` and evaluated on the seed's evaluation
stream (``evaluate_row``): the same arguments give the same rows.

The folder ``run_dir`` is held (``pyro_air.train.run_dir.claim``) for the whole comparison, so that no
other process moves it aside or writes into it meanwhile; ``fit`` claims each run inside it. A
comparison cannot resume: a folder that holds anything is refused, unless ``overwrite`` moves it
aside (``RUN.old-<time>``; nothing is deleted). A signal stops training with
``pyro_air.train.signals.TrainingInterrupted`` (``AirComparison.training`` names the model it
stopped). Output: one line per trained model above the progress bar (stdout), and the bar itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from pyro_air.backend.threads import default_threads
from pyro_air.compare.evaluation import evaluate_row
from pyro_air.compare.methods import air_spec
from pyro_air.compare.report import paired_estimate
from pyro_air.core.seeds import stream_seed
from pyro_air.guides.weightnorm import cap_binds
from pyro_air.runs import build_run, load_split
from pyro_air.support.progress import JobProgress, say
from pyro_air.train import TrainConfig, check_inputs, check_run_dir, fit, stopping_summary
from pyro_air.train import run_dir as run_dirs

BASELINE = "VAE"
DELTA = f"Δ(-log p) vs {BASELINE}"  # the column of paired differences from the baseline
AIR_COLUMNS = ("nll", "inference_gap", "neg_elbo", DELTA)  # the table's columns, in order


@dataclass
class AirComparisonResult:
    """What ``AirComparison.run`` returns: ``rows`` ({label: ``evaluate_row``'s row with ``DELTA``},
    VAE first), ``notes`` (lines on how to read them, e.g. a weight-norm cap that does not bind),
    ``run_dir`` (the folder of the runs), ``runs`` ({label: its run directory}) and ``test_points``
    (the test images every row is on)."""
    rows: dict
    notes: list
    run_dir: Path
    runs: dict = field(default_factory=dict)
    test_points: int = 0


class AirComparison:
    """The three runs, checked and built; nothing is written until ``run`` (module docstring).

    ``sigma``, ``alpha``: the DVAE's noise scale and weight of the noisy objective (Eq. 16); ``H``: the
    WNI-VAE's weight-norm cap (Eq. 18); ``num_particles``: k of the training bound (1: the ELBO,
    > 1: IWAE-k); ``z_dim``, ``hidden``: the decoder's and encoders' sizes; ``train_size``: the
    nested MNIST training subset; ``valid_size``: validation images that pick the best epoch;
    ``test_points``: the first test images every model is evaluated on; ``num_samples``: S of the
    IWAE-S estimate of log p(x); ``seed``: weights and every draw, shared by the three models;
    ``threads``: torch's CPU threads for training and evaluation (None: the machine's default);
    ``progress``: one bar over the three models (stderr).
    """

    def __init__(self, *, epochs: int = 300, train_size: int = 1000, sigma: float = 0.25, alpha: float = 1.0,
                 H: float = 1.5, num_particles: int = 1, z_dim: int = 50, hidden=(500, 500), valid_size: int = 500,
                 test_points: int = 500, num_samples: int = 1000, seed: int = 0, run_dir="runs/compare",
                 checkpoint_every_epochs: int = 10, overwrite: bool = False, threads: int | None = None,
                 progress: bool = True):
        check_run_dir(run_dir, overwrite=overwrite, empty=True, what="comparison")  # reads only
        self.run_dir, self.overwrite = Path(run_dir), overwrite
        self.num_particles, self.num_samples, self.seed, self.progress = num_particles, num_samples, seed, progress
        self.H = H
        methods = {BASELINE: ("vae", {}),
                   f"DVAE (sigma={sigma:g}, alpha={alpha:g})": ("dvae", {"sigma": sigma, "alpha": alpha}),
                   f"WNI-VAE (H={H:g})": ("wni", {"H": H})}
        self.config = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=seed, valid_size=valid_size,
                                  valid_num_samples=20, valid_every=max(1, epochs // 15), progress=progress,
                                  checkpoint_every_epochs=checkpoint_every_epochs,
                                  threads=default_threads() if threads is None else threads)
        self.config.validate()
        if test_points < 1:
            raise ValueError(f"--test-points must be >= 1, got {test_points}")
        self.runs = {}  # label -> (method, spec, (model, guide, objective))
        for label, (method, kw) in methods.items():  # build all first: a bad sigma / alpha / H fails before training
            spec = air_spec(method, k=num_particles, z_dim=z_dim, hidden=list(hidden), train_size=train_size, **kw)
            self.runs[label] = (method, spec, build_run(spec, seed=seed))
        first_spec = next(iter(self.runs.values()))[1]  # every run has the same data spec
        self.train_x, self.valid_x = load_split(first_spec, "train"), load_split(first_spec, "valid")
        self.test_x = load_split(first_spec, "test")[:test_points]
        for _, _, (model, guide, _) in self.runs.values():
            check_inputs(model, guide, self.train_x, self.valid_x, self.config)
        self.training: str | None = None  # the short label ("DVAE") of the model in training, during ``run``

    def run(self) -> AirComparisonResult:
        """Claim the folder, train the three models one after another, evaluate each on the test
        images and take its paired difference from the VAE's."""
        config, root = self.config, self.run_dir
        torch.set_num_threads(config.threads)  # the evaluations too (one process, models one after another)
        steps = config.epochs * (len(self.train_x) // config.batch_size)  # per model; one bar over the three
        if self.overwrite:
            moved = run_dirs.move_aside(root)
            if moved is not None:
                say(f"moved the old run to {moved}")
        rows, notes, base = {}, [], None
        with run_dirs.claim(root), JobProgress(len(self.runs) * steps, "compare", disable=not config.progress) as job:
            run_dirs.refuse_non_empty(root, what="comparison")  # nothing came in since the check
            for i, (label, (method, spec, (model, guide, objective))) in enumerate(self.runs.items()):
                self.training = short = label.split(" ")[0]
                t0 = time.perf_counter()
                result = fit(model, guide, objective, self.train_x, self.valid_x,
                             replace(config, progress_label=short), run_dir=root / method, spec=spec)
                self.training = None
                job.reach((i + 1) * steps)  # an early stop gives up its remaining steps
                job.stage(f"{short}: evaluating")
                job.write(f"{label}: trained on {len(self.train_x)} MNIST images in {time.perf_counter() - t0:.0f} s; "
                          f"{stopping_summary(result, config.epochs, config.valid_num_samples)}; "
                          f"run in {root / method}")
                row = evaluate_row(model, guide, self.test_x, k=self.num_particles, num_samples=self.num_samples,
                                   progress=self.progress, seed=stream_seed(self.seed, "evaluation"))
                base = base or row
                row[DELTA] = paired_estimate(row, base)
                rows[label] = row
                if method == "wni" and not cap_binds(guide):
                    notes.append(f"note: the weight-norm cap H={self.H:g} does not bind: every trained encoder row's "
                                 "norm is below its cap, so WNI-VAE is the plain VAE up to float rounding; give a "
                                 "smaller --H (e.g. 0.5) to regularize")
        return AirComparisonResult(rows, notes, root, {label: root / method for label, (method, _, _) in
                                                       self.runs.items()}, len(self.test_x))


def compare_air(**options) -> AirComparisonResult:
    """``AirComparison(**options).run()``: check, build, train, evaluate and compare (module docstring)."""
    return AirComparison(**options).run()
