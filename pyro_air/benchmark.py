"""One benchmark for amortized encoders: every method trained and tested the same way, and compared
with a baseline (the plain VAE) by paired differences.

The protocol (AIR k = 1, as ``experiments/air/run_air.py``; issue 20) is the same for every method:

1. **One decoder.** Each run builds the model ``models.build(model_name, x_dim, z_dim, hidden)``
   right after ``torch.manual_seed(seed)``, then the method's guide: runs of one seed start from the
   same decoder weights whatever the encoder.
2. **One training rule.** ``pyro_air.train.fit`` with the budget's epochs, batch size, Adam with
   exponential decay from ``lr`` to ``lr * lr_final_ratio``, and early stopping on the validation
   IWAE-``valid_num_samples`` bound every ``valid_every`` epochs (the best parameters are kept).
   The seed also fixes the minibatch order, so two methods of one seed see the same batches.
3. **Selection on validation.** Each method's hyper-parameter is chosen from its grid on
   ``SELECTION_SEED`` (0) by the best validation bound; the other seeds run at the chosen value.
4. **One test.** On the same test images: -log p(x) by IWAE-S (``test_num_samples``), the ELBO by
   ``elbo_samples`` draws, the inference gap log p(x) - ELBO (AIR Eq. 8), the amortization gap on
   the first ``amortization["points"]`` images (``pyro_air.evaluate.amortization_gap``: Cremer et
   al. 2018), active units and I(x; z) (``pyro_air.evaluate.latent_metrics``), KL(q(z|x) || N(0, I)),
   and the training seconds per epoch. Where the budget has an ``ais`` entry, also -log p(x) by
   annealed importance sampling from q(z|x) on the first ``ais["points"]`` images (Neal 2001;
   ``pyro_air.evaluate.ais``), an MCMC estimate that does not lean on the encoder as IWAE does.
5. **Paired differences.** Each test quantity minus the baseline's on the same image and seed,
   averaged (``paired_difference``); pairing removes the spread that seeds and images share.

A *method* is a name, a grid of hyper-parameter values and a builder ``build(param, setup)`` that
returns the guide (or ``Components(guide, objective, schedule)``: the objective, default the ELBO,
and a training-step hook, e.g. the lagging encoder's ``LaggingSchedule``) for the decoder
``setup.model``. ``ENCODER_FAMILY`` holds the nine methods of ``experiments/encoders``; a new
encoder is one decorated function:

    bench = Benchmark(["VAE", "DVAE"], budget=budget("tiny"), out_dir="runs/bench")

    @bench.method("InputDropout", grid=[0.1, 0.3], param_name="p")
    def input_dropout(p, setup):
        return MyEncoder(p=p, **setup.encoder)

    report = bench.run()            # select, the other seeds, report
    print(report.paired_table())

Runs are stored as ``out_dir/runs/<method>/<param>/seed<k>/{result.json, test.pt}`` and a rerun
skips those on disk (delete them after changing a builder); ``out_dir/benchmark.json`` records the
budget, model and data, and a benchmark with other settings refuses that directory.

Layer: beside ``pyro_air.runs`` (it trains with ``pyro_air.train`` and evaluates with
``pyro_air.evaluate``); nothing below imports it. ``benchmarks/`` (speed) is another thing.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from pyro_air import data as datasets
from pyro_air import guides, infer, models
from pyro_air.core.validation import check_compatible, check_positive_int
from pyro_air.evaluate import ais, amortization_gap, elbo, latent_metrics, log_likelihood
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.consistency import diagonal_normal
from pyro_air.train import TrainConfig, fit
from pyro_air.train.lagging import LaggingConfig, LaggingSchedule
from pyro_air.train.schedule import StepSchedule

SELECTION_SEED = 0       # the seed whose validation bound chooses each method's hyper-parameter
TEST_SEED_OFFSET = 10_000  # the test estimates of seed k draw from torch.manual_seed(10_000 + k)

# -- budgets ------------------------------------------------------------------------------------

BUDGETS = MappingProxyType({
    # seconds: what the tests and the tutorials' tiny budget run (the numbers mean nothing)
    "tiny": {
        "train_size": 100, "valid_size": 50, "test_size": 50,
        "hidden": [32], "z_dim": 4,
        "epochs": 2, "batch_size": 50, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 1, "valid_num_samples": 5,
        "test_num_samples": 20, "elbo_samples": 5,
        "amortization": {"points": 10, "num_steps": 5, "num_particles": 2},
        "seeds": [0, 1],
        "sa": {"num_steps": 2, "max_grad_norm": 5.0},
        "ais": None,
    },
    # minutes on one CPU thread for a few methods
    "small": {
        "train_size": 1000, "valid_size": 200, "test_size": 100,
        "hidden": [200, 200], "z_dim": 16,
        "epochs": 20, "batch_size": 100, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 5, "valid_num_samples": 10,
        "test_num_samples": 200, "elbo_samples": 10,
        "amortization": {"points": 20, "num_steps": 20, "num_particles": 5},
        "seeds": [0, 1],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": None,
    },
    # experiments/encoders/RESULTS.md: about a minute per run on one CPU thread (35 runs in 39 minutes)
    "cpu": {
        "train_size": 1000, "valid_size": 300, "test_size": 200,
        "hidden": [200, 200], "z_dim": 32,
        "epochs": 80, "batch_size": 100, "lr": 2e-3, "lr_final_ratio": 0.1,
        "valid_every": 10, "valid_num_samples": 20,
        "test_num_samples": 1000, "elbo_samples": 20,
        "amortization": {"points": 50, "num_steps": 50, "num_particles": 10},
        "seeds": [0, 1, 2],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": None,
    },
    # the over-fitting regime of experiments/air (1000 training images, 784-500-500-50, 300 epochs:
    # the VAE peaks on validation near epoch 200 and then declines), where AIR's claim lives; test
    # -log p(x) by IWAE-5000 and by AIS from q(z|x) (T = 100, C = 8) on the first 20 test images.
    # Several minutes per run on one CPU thread (experiments/encoders/RESULTS.md states the cost).
    "overfit": {
        "train_size": 1000, "valid_size": 300, "test_size": 300,
        "hidden": [500, 500], "z_dim": 50,
        "epochs": 300, "batch_size": 100, "lr": 1e-3, "lr_final_ratio": 0.1,
        "valid_every": 20, "valid_num_samples": 20,
        "test_num_samples": 5000, "elbo_samples": 100,
        "amortization": {"points": 50, "num_steps": 50, "num_particles": 10},
        "seeds": [0, 1, 2],
        "sa": {"num_steps": 3, "max_grad_norm": 5.0},
        "ais": {"points": 20, "num_steps": 100, "num_chains": 8},
    },
})
_NESTED = ("amortization", "sa", "ais")
_AIS_KEYS = ("points", "num_steps", "num_chains")
_POSITIVE_INTS = ("train_size", "valid_size", "test_size", "z_dim", "epochs", "batch_size", "valid_every",
                  "valid_num_samples", "test_num_samples", "elbo_samples")


def budget(name: str = "tiny", **overrides) -> dict:
    """A fresh copy of the preset ``name`` (``BUDGETS``: tiny, small, cpu, overfit) with ``overrides``.

    A nested entry (``amortization``, ``sa``, ``ais``) may be overridden in part:
    ``budget("tiny", epochs=5, amortization={"points": 20})``; ``ais=None`` switches the AIS estimate
    off, ``ais={"points": 20, "num_steps": 100, "num_chains": 4}`` on. Unknown names and keys are errors.
    """
    if name not in BUDGETS:
        raise ValueError(f"unknown benchmark budget {name!r}; use one of {', '.join(BUDGETS)} "
                         "(and override entries: budget('tiny', epochs=5))")
    out = copy.deepcopy(dict(BUDGETS[name]))
    for key, value in overrides.items():
        if key not in out:
            raise ValueError(f"unknown budget entry {key!r}; the entries are {', '.join(out)}")
        if key == "ais" and (value is None or out[key] is None):
            out[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value  # None switches AIS off
        elif key in _NESTED:
            if not isinstance(value, Mapping):
                raise ValueError(f"budget entry {key!r} is a dict ({out[key]}); override it with a dict")
            unknown = sorted(set(value) - set(out[key]))
            if unknown:
                raise ValueError(f"unknown budget entries {key}.{unknown}; the entries are {', '.join(out[key])}")
            out[key].update(copy.deepcopy(dict(value)))
        else:
            out[key] = copy.deepcopy(value)
    return check_budget(out)


_budget_preset = budget  # its name inside Benchmark, whose argument is called budget


def check_budget(b: Mapping) -> dict:
    """``b`` as a plain dict after checking it has every entry of a preset, with sensible values."""
    b = copy.deepcopy(dict(b))
    b.setdefault("ais", None)  # optional: budgets written before AIS joined the benchmark run without it
    missing = sorted(set(BUDGETS["tiny"]) - set(b))
    if missing:
        raise ValueError(f"the budget lacks {missing}; start from a preset: pyro_air.benchmark.budget('tiny', ...)")
    for key in _POSITIVE_INTS:
        check_positive_int(b[key], f"budget[{key!r}]")
    for key in ("points", "num_steps", "num_particles"):
        check_positive_int(b["amortization"][key], f"budget['amortization'][{key!r}]")
    if b["ais"] is not None:
        if not isinstance(b["ais"], Mapping) or set(b["ais"]) != set(_AIS_KEYS):
            raise ValueError(f"budget['ais'] must be None (no AIS) or a dict with {', '.join(_AIS_KEYS)}, "
                             f"e.g. {{'points': 50, 'num_steps': 200, 'num_chains': 8}}; got {b['ais']!r}")
        for key in _AIS_KEYS:
            check_positive_int(b["ais"][key], f"budget['ais'][{key!r}]")
        if b["ais"]["points"] > b["test_size"]:
            raise ValueError(f"budget ais.points={b['ais']['points']} exceeds test_size={b['test_size']}")
    if not b["seeds"] or len(set(b["seeds"])) != len(b["seeds"]):
        raise ValueError(f"budget['seeds'] must list distinct seeds, e.g. [0, 1, 2], got {b['seeds']!r}")
    for s in b["seeds"]:
        check_positive_int(s, "every seed in budget['seeds']", minimum=0)
    if b["batch_size"] > b["train_size"]:
        raise ValueError(f"budget batch_size={b['batch_size']} exceeds train_size={b['train_size']}")
    return b


# -- methods ------------------------------------------------------------------------------------

@dataclass
class Setup:
    """What a method's builder gets: the run's decoder (built already), the sizes, seed and budget."""
    model: Any
    x_dim: int
    z_dim: int
    hidden: list
    seed: int
    budget: dict

    @property
    def encoder(self) -> dict:
        """The common encoder sizes, ``{"x_dim", "z_dim", "hidden"}`` (x-d-d-z, as the decoder's)."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden)}


@dataclass
class Components:
    """What a builder returns (a bare guide means ``Components(guide)``).

    ``objective``: a ``pyro.infer.ELBO`` (default: the ELBO, ``infer.build("elbo")``);
    ``schedule``: a ``pyro_air.train.schedule.StepSchedule`` hook of the training step (default: the
    joint step); ``extra_record``: called after training, returns entries for ``result.json``
    (e.g. the spectral norms the cap left).
    """
    guide: AmortizedGuide
    objective: Any = None
    schedule: StepSchedule | None = None
    extra_record: Callable[[], dict] | None = None


ParamValue = Any  # None, a number, or a string


def param_tag(param: ParamValue) -> str:
    """The directory name of a grid value: "default" for None, ``f"{p:g}"`` for numbers."""
    if param is None:
        return "default"
    if isinstance(param, bool):
        return str(param)
    if isinstance(param, (int, float)):
        return f"{param:g}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", param)


def name_tag(name: str) -> str:
    """The directory name of a method ("DVAE+WNI" -> "DVAE_WNI")."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@dataclass(frozen=True)
class Method:
    """A named encoder (or training scheme) with the grid its hyper-parameter is chosen from.

    ``build(param, setup) -> guide | Components``; ``grid``: the values tried on the selection seed
    (``[None]``: nothing to choose); ``param_name``: how tables name the hyper-parameter.
    """
    name: str
    build: Callable[[ParamValue, Setup], Any]
    grid: tuple = (None,)
    param_name: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a method needs a non-empty name, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"method {self.name!r}: build must be a function (param, setup) -> guide, "
                            f"got {type(self.build).__name__}")
        try:
            if isinstance(self.grid, (str, bytes)):
                raise TypeError
            grid = tuple(self.grid)
        except TypeError:
            raise ValueError(f"method {self.name!r}: grid must be a list of values, e.g. [0.1, 0.3], "
                             f"got {self.grid!r}") from None
        if not grid:
            raise ValueError(f"method {self.name!r} has an empty grid; give at least one value "
                             "(grid=[None] for a method with nothing to choose)")
        for p in grid:
            if not (p is None or isinstance(p, (int, float, str))) or (isinstance(p, float) and not math.isfinite(p)):
                raise ValueError(f"method {self.name!r}: grid values must be None, finite numbers or strings "
                                 f"(they name run directories and go to JSON), got {p!r}")
        tags = [param_tag(p) for p in grid]
        if len(set(tags)) != len(tags):
            raise ValueError(f"method {self.name!r}: the grid {list(grid)} repeats a value "
                             f"(as run directories: {tags})")
        object.__setattr__(self, "grid", grid)

    def label(self, param: ParamValue) -> str:
        """How tables name a chosen value: e.g. ``σ=0.25``; ``—`` for None."""
        if param is None:
            return "—"
        value = f"{param:g}" if isinstance(param, (int, float)) and not isinstance(param, bool) else str(param)
        return f"{self.param_name or 'param'}={value}"


def method(name: str, grid: Iterable = (None,), param_name: str | None = None) -> Callable[[Callable], Method]:
    """Decorator: the builder ``build(param, setup)`` as a ``Method`` (register it with
    ``Benchmark.add``, or use ``Benchmark.method``, which does both)."""
    def decorator(build: Callable) -> Method:
        return Method(name, build, grid, param_name)

    return decorator


# The encoder family of experiments/encoders (issue 20): one decoder, every encoder x-d-d-z tanh.

@method("VAE")
def _vae(param, s: Setup):
    """Plain Gaussian encoder (Kingma & Welling 2014)."""
    return guides.build("gaussian", **s.encoder)


@method("DVAE", grid=[0.25, 0.5], param_name="σ")
def _dvae(sigma, s: Setup):
    """Denoising encoder, alpha = 1 (AIR, Shu et al. 2018, Eq. 13)."""
    return guides.build("denoising", sigma=sigma, alpha=1.0, encoder="gaussian", **s.encoder)


@method("WNI", grid=[1.0, 3.0], param_name="H")
def _wni(H, s: Setup):
    """Weight-normalized encoder with row norms <= H (AIR Eq. 17-18)."""
    return guides.build("weightnorm", H=H, **s.encoder)


@method("DVAE+WNI", grid=[1.0, 3.0], param_name="H (σ=0.25)")
def _dvae_wni(H, s: Setup):
    """Both AIR regularizers, sigma = 0.25 (not run in the AIR paper)."""
    return guides.build("denoising-weightnorm", sigma=0.25, H=H, **s.encoder)


@method("CR", grid=[0.1, 1.0], param_name="λ")
def _cr(weight, s: Setup):
    """Consistency penalty lambda KL(q(z|t(x)) || q(z|x)), shifts <= 2 px (Sinha & Dieng 2021)."""
    guide = guides.build("consistency", encoder="gaussian", transform="shift", max_shift=2, **s.encoder)
    return Components(guide, objective=infer.build("consistency", objective="elbo", weight=weight))


@method("SN", grid=[1.0, 3.0], param_name="bound")
def _sn(bound, s: Setup):
    """Spectral-norm cap ||W||_2 <= bound on every layer (Miyato et al. 2018)."""
    guide = guides.build("spectral-norm", bound=bound, mode="cap", **s.encoder)
    return Components(guide, extra_record=lambda: {"largest_singular_values": guide.largest_singular_values()})


def _semi_amortized(backprop: str):
    def build(lr, s: Setup):
        """T SVI steps from the encoder's output (Kim et al. 2018); grid: the step size."""
        guide = guides.build("semi-amortized", encoder="gaussian", lr=lr, backprop=backprop, **s.budget["sa"],
                             **s.encoder)
        guide.bind(s.model)
        return guide

    return build


_sa_full = Method("SA-full", _semi_amortized("full"), (0.05, 0.2), "η")
_sa_stop = Method("SA-stop", _semi_amortized("stop"), (0.05, 0.2), "η")


@method("Lagging", grid=[10, 50], param_name="max inner")
def _lagging(max_inner_steps, s: Setup):
    """Aggressive encoder steps until I(x; z) stops rising (He et al. 2019); grid: max inner steps."""
    schedule = LaggingSchedule(LaggingConfig(aggressive=True, max_inner_steps=max_inner_steps,
                                             mi_size=s.budget["valid_size"]), s.seed)
    return Components(guides.build("gaussian", **s.encoder), schedule=schedule)


ENCODER_FAMILY: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    _vae, _dvae, _wni, _dvae_wni, _cr, _sn, _sa_full, _sa_stop, _lagging)})


# -- paired differences -------------------------------------------------------------------------

def paired_difference(values: Mapping[int, torch.Tensor], base: Mapping[int, torch.Tensor]) -> dict:
    """Mean paired difference of per-image values against a baseline, over the seeds both have.

    With d_s(x_i) = f_method,s(x_i) - f_base,s(x_i) (same seed s, same test image x_i):

        mean      = (1/S) sum_s Delta_s,   Delta_s = (1/N) sum_i d_s(x_i)
        se        = sd_s(Delta_s) / sqrt(S)               (None for one seed)
        se_images = sd_i(dbar(x_i)) / sqrt(N),   dbar(x_i) = (1/S) sum_s d_s(x_i)

    ``se`` treats seeds as the replicates (training noise included); ``se_images`` only the test
    images' spread. A method against itself gives exactly 0.
    """
    seeds = [s for s in values if s in base]
    if not seeds:
        return {"mean": math.nan, "se": None, "seeds": 0, "se_images": None, "images": 0}
    diffs = []
    for s in seeds:
        a, b = values[s].double(), base[s].double()
        if a.shape != b.shape:
            raise ValueError(f"seed {s}: {tuple(a.shape)} values against {tuple(b.shape)} of the baseline; "
                             "paired differences need the same test images")
        diffs.append(a - b)
    per_seed = [d.mean().item() for d in diffs]
    mean = sum(per_seed) / len(per_seed)
    se = None
    if len(per_seed) > 1:
        se = (sum((d - mean) ** 2 for d in per_seed) / (len(per_seed) - 1) / len(per_seed)) ** 0.5
    per_image = torch.stack(diffs).mean(0)
    n = per_image.numel()
    se_images = per_image.std().item() / n ** 0.5 if n > 1 else None
    return {"mean": mean, "se": se, "seeds": len(seeds), "se_images": se_images, "images": n}


PAIRED = {  # summary key -> (the per-image quantity from test.pt, column title)
    "d_nll": (lambda t: -t["log_px"], "Δ(-log p)"),
    "d_gap": (lambda t: t["log_px"] - t["bound"], "Δ inference gap"),
    "d_amort": (lambda t: t["amortization_gap"], "Δ amort. gap"),
    "d_kl": (lambda t: t["kl"], "ΔKL"),
}
PAIRED_AIS = {"d_nll_ais": (lambda t: -t["log_px_ais"], "Δ(-log p) AIS")}  # only where the budget ran AIS
OVER_SEEDS = ("nll", "inference_gap", "amortization_gap", "neg_elbo", "kl", "active_units", "mutual_information",
              "epoch_seconds", "best_epoch")
OVER_SEEDS_AIS = ("nll_ais", "nll_iwae_on_ais_points")
RECORD_KEYS = {"method", "param", "seed", "best_valid", "best_epoch", "valid_curve", "epoch_seconds",
               "train_seconds", "test_seconds", "aggressive_epochs", "nll", "neg_elbo", "inference_gap",
               "amortization_gap", "kl", "active_units", "mutual_information", "nll_ais", "ais_points",
               "nll_iwae_on_ais_points"}


def _mean_se(v: Mapping, digits: int = 2) -> str:
    """``mean ± se`` of an ``_over_seeds`` entry (the mean alone when there is no s.e.)."""
    return f"{_fmt(v['mean'], digits)} ± {_fmt(v['se'], digits)}" if v["se"] is not None else _fmt(v["mean"], digits)


def _fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def kl_to_standard_normal(guide, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per datapoint: closed form for a diagonal Gaussian,
    0.5 sum_j (mu_j^2 + s_j^2 - 1) - log s_j; otherwise a Monte Carlo mean of log q(z|x) - log N(z; 0, I)."""
    guide.eval()
    try:
        with torch.no_grad():
            q = guide.posterior(x)
            try:
                loc, scale = diagonal_normal(q)
            except TypeError:
                z = q.sample((num_samples,))
                prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
                return (q.log_prob(z) - prior.log_prob(z).sum(-1)).mean(0)
            return (0.5 * (loc ** 2 + scale ** 2 - 1) - scale.log()).sum(-1)
    finally:
        guide.train()


# -- the report ---------------------------------------------------------------------------------

@dataclass
class Report:
    """The summary of a benchmark: ``summary[method]`` holds the chosen value, means ± s.e. over seeds,
    the paired differences ``d_nll``, ``d_gap``, ``d_amort``, ``d_kl`` against the baseline
    (``paired_difference``; the baseline's own are exactly 0) and the selection grid."""
    summary: dict
    budget: dict
    methods: dict = field(repr=False)  # name -> Method
    baseline: str = "VAE"

    def to_json(self) -> dict:
        """``{"budget", "grids", "methods"}``: experiments/encoders/results.json's layout."""
        return {"budget": self.budget, "grids": {n: list(m.grid) for n, m in self.methods.items()},
                "methods": self.summary}

    def table(self) -> str:
        """Markdown: one row per method, every test quantity (experiments/encoders/RESULTS.md's table)."""
        head = ("| method | chosen | seeds | -log p(x) | Δ(-log p) vs VAE | inference gap | Δgap vs VAE | "
                "amort. gap | KL | active units | I(x;z) | best epoch | s/epoch |")
        if self.baseline != "VAE":
            head = head.replace("vs VAE", f"vs {self.baseline}")
        lines = [head, "|" + "---|" * 13]
        for name, e in self.summary.items():
            def ms(key, d=2, e=e):
                return _mean_se(e[key], d)

            def paired(key, e=e, name=name):
                if key not in e or name == self.baseline:
                    return "—"
                v = e[key]
                return f"{v['mean']:+.2f} ± {_fmt(v['se'])}"

            lines.append(f"| {name} | {self.methods[name].label(e['param'])} | {len(e['seeds'])} | {ms('nll')} | "
                         f"{paired('d_nll')} | {ms('inference_gap')} | {paired('d_gap')} | {ms('amortization_gap')} | "
                         f"{ms('kl', 1)} | {ms('active_units', 1)} | {ms('mutual_information')} | "
                         f"{ms('best_epoch', 0)} | {ms('epoch_seconds')} |")
        return "\n".join(lines)

    def paired_table(self) -> str:
        """Markdown: the paired differences against the baseline, mean ± s.e. (over seeds with two or
        more seeds, else over images: the last column says which)."""
        lines = ["| method | chosen | seeds | " + " | ".join(f"{t} vs {self.baseline}" for _, t in PAIRED.values())
                 + " | s.e. over |", "|" + "---|" * (4 + len(PAIRED))]
        for name, e in self.summary.items():
            if "d_nll" not in e:
                continue
            over = "seeds" if e["d_nll"]["se"] is not None else "images"
            cells = []
            for key in PAIRED:
                v = e[key]
                cells.append(f"{v['mean']:+.2f} ± {_fmt(v['se'] if over == 'seeds' else v['se_images'])}")
            lines.append(f"| {name} | {self.methods[name].label(e['param'])} | {e['d_nll']['seeds']} | "
                         + " | ".join(cells) + f" | {over} |")
        return "\n".join(lines)

    def ais_table(self) -> str:
        """Markdown: -log p(x) by AIS from q(z|x) beside IWAE on the same first test images, and the AIS
        paired difference against the baseline; empty when the budget ran no AIS."""
        rows = [(n, e) for n, e in self.summary.items() if "nll_ais" in e]
        if not rows:
            return ""
        lines = [(f"| method | chosen | seeds | images | -log p(x) AIS | -log p(x) IWAE, same images | "
                  f"Δ(-log p) AIS vs {self.baseline} |"), "|" + "---|" * 7]
        for name, e in rows:
            d = e.get("d_nll_ais")
            paired = "—" if d is None or name == self.baseline else f"{d['mean']:+.2f} ± {_fmt(d['se'])}"
            lines.append(f"| {name} | {self.methods[name].label(e['param'])} | {len(e['seeds'])} | {e['ais_points']} | "
                         f"{_mean_se(e['nll_ais'])} | {_mean_se(e['nll_iwae_on_ais_points'])} | {paired} |")
        return "\n".join(lines)

    def grid_table(self) -> str:
        """Markdown: the validation bound of each grid value on the selection seed (the chosen is the best)."""
        lines = ["| method | chosen | best validation bound (seed 0) per grid value |", "|---|---|---|"]
        for name, e in self.summary.items():
            m = self.methods[name]
            cells = ", ".join(f"{g['best_valid']:.2f}" if g["param"] is None else
                              f"{m.label(g['param']).split('=', 1)[-1]}: {g['best_valid']:.2f}" for g in e["grid"])
            lines.append(f"| {name} | {m.label(e['param'])} | {cells or '—'} |")
        return "\n".join(lines)

    def plot(self, path=None, title: str | None = None):
        """Paired differences against the baseline (-log p, inference gap, amortization gap), one row
        per method, error bars ± s.e. (over seeds, or over images with one seed); saved to ``path``."""
        import matplotlib.pyplot as plt

        names = [m for m in self.summary if m != self.baseline and "d_nll" in self.summary[m]]
        fig, axes = plt.subplots(1, 3, figsize=(13, 1.4 + 0.45 * max(len(names), 2)), sharey=True)
        for ax, (key, label) in zip(axes, [("d_nll", f"Δ(-log p(x)) vs {self.baseline} [nats]"),
                                           ("d_gap", f"Δ inference gap vs {self.baseline}"),
                                           ("d_amort", f"Δ amortization gap vs {self.baseline}")]):
            means = [self.summary[m][key]["mean"] for m in names]
            ses = [self.summary[m][key]["se"] if self.summary[m][key]["se"] is not None
                   else (self.summary[m][key]["se_images"] or 0.0) for m in names]
            ax.errorbar(means, range(len(names)), xerr=ses, fmt="o", capsize=3)
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_xlabel(label)
        axes[0].set_yticks(range(len(names)), names)
        axes[0].invert_yaxis()
        fig.suptitle(title or f"paired differences against the {self.baseline}, mean ± s.e. (over seeds; over images "
                     "with one seed; negative = better / smaller)", fontsize=9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


# -- the benchmark ------------------------------------------------------------------------------

def _data_fingerprint(splits) -> str:
    h = hashlib.sha256()
    for x in splits:
        t = x.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


class Benchmark:
    """Train, select and test a set of methods by one protocol (module docstring).

    ``methods``: names from ``ENCODER_FAMILY`` and/or ``Method`` objects (add more with ``add`` or the
    ``method`` decorator). ``budget``: a preset name or a dict (``budget(...)``). ``out_dir``: where
    runs are stored (and found by a rerun). ``data``: (train, valid, test) tensors [N, D]; default
    the budget's MNIST subsets (the nested ``train_size`` training subset, the first ``valid_size``
    validation and ``test_size`` test images, statically binarized). ``model``: the decoder's
    registry name. ``baseline``: the method the paired differences are taken against. ``log``: a
    function that prints one line per run (None: quiet).
    """

    def __init__(self, methods: Iterable = ("VAE",), budget: str | Mapping = "tiny", out_dir="runs/benchmark",
                 data=None, model: str = "bernoulli-vae", baseline: str = "VAE", log: Callable | None = _log):
        self.budget = _budget_preset(budget) if isinstance(budget, str) else check_budget(budget)
        self.out_dir = Path(out_dir)
        self.model_name = model
        if model not in models.MODELS:
            raise ValueError(f"unknown model {model!r}; use one of {', '.join(models.MODELS.names())}")
        self.baseline = baseline
        self.log = log or (lambda msg: None)
        self.methods: dict[str, Method] = {}
        if isinstance(methods, (str, Method)):
            methods = [methods]
        self.add(*methods)
        self._data = None if data is None else self._check_data(data)

    # -- methods --------------------------------------------------------------------------------
    def add(self, *methods) -> None:
        """Add methods: names from ``ENCODER_FAMILY`` or ``Method`` objects."""
        for m in methods:
            if isinstance(m, str):
                if m not in ENCODER_FAMILY:
                    raise ValueError(f"unknown method {m!r}; the built-in ones are {', '.join(ENCODER_FAMILY)}; "
                                     "add your own with Benchmark.method(name, grid)(builder)")
                m = ENCODER_FAMILY[m]
            if not isinstance(m, Method):
                raise TypeError(f"a method is a name or a pyro_air.benchmark.Method, got {type(m).__name__}")
            if m.name in self.methods:
                raise ValueError(f"method {m.name!r} is in this benchmark already; give the new one another name")
            clash = [n for n in self.methods if name_tag(n) == name_tag(m.name)]
            if clash:
                raise ValueError(f"method names {clash[0]!r} and {m.name!r} share the run directory "
                                 f"{name_tag(m.name)!r}; rename one")
            self.methods[m.name] = m

    def method(self, name: str, grid: Iterable = (None,),
               param_name: str | None = None) -> Callable[[Callable], Method]:
        """Decorator: register ``build(param, setup) -> guide | Components`` as the method ``name``."""
        def decorator(build: Callable) -> Method:
            m = Method(name, build, grid, param_name)
            self.add(m)
            return m

        return decorator

    def _names(self, names) -> list:
        names = list(self.methods) if names is None else ([names] if isinstance(names, str) else list(names))
        unknown = [n for n in names if n not in self.methods]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; this benchmark has {', '.join(self.methods)}")
        return names

    # -- data and the run directory -------------------------------------------------------------
    @staticmethod
    def _check_data(splits):
        try:
            train, valid, test = splits
        except (TypeError, ValueError):
            raise ValueError("data must be three tensors (train, valid, test), each [N, D]") from None
        out = []
        for name, x in zip(("train", "valid", "test"), (train, valid, test)):
            if not isinstance(x, torch.Tensor) or x.dim() != 2 or len(x) == 0:
                raise ValueError(f"the {name} data must be a non-empty tensor [N, D], got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            out.append(x.float())
        if len({x.shape[1] for x in out}) != 1:
            raise ValueError(f"train, valid and test must have the same D, got {[x.shape[1] for x in out]}")
        return tuple(out)

    def splits(self) -> tuple:
        """(train, valid, test): the data given, or the budget's MNIST subsets (loaded once)."""
        if self._data is None:
            b = self.budget
            self._data = (datasets.load("mnist", "train", train_size=b["train_size"]),
                          datasets.load("mnist", "valid")[: b["valid_size"]],
                          datasets.load("mnist", "test")[: b["test_size"]])
        return self._data

    def _claim_out_dir(self) -> None:
        settings = {"budget": {k: v for k, v in self.budget.items() if k != "seeds"}, "model": self.model_name,
                    "data": _data_fingerprint(self.splits())}
        path = self.out_dir / "benchmark.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != json.loads(json.dumps(settings)):
                changed = sorted(k for k in settings if stored.get(k) != json.loads(json.dumps(settings[k])))
                raise ValueError(f"{self.out_dir} holds runs of another benchmark (different {', '.join(changed)}); "
                                 "use another out_dir, or delete that one to rerun")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))

    def run_dir(self, name: str, param: ParamValue, seed: int) -> Path:
        return self.out_dir / "runs" / name_tag(name) / param_tag(param) / f"seed{seed}"

    # -- building -------------------------------------------------------------------------------
    def build(self, name: str, param: ParamValue, seed: int):
        """(model, Components) of one run: ``torch.manual_seed(seed)``, the decoder, then the method's parts."""
        m = self.methods[name]
        b, x_dim = self.budget, self.splits()[0].shape[1]
        torch.manual_seed(seed)  # the networks' initialization follows the seed: decoder first, then encoder
        model = models.build(self.model_name, x_dim=x_dim, z_dim=b["z_dim"], hidden=b["hidden"])
        setup = Setup(model, x_dim, b["z_dim"], list(b["hidden"]), seed, b)
        try:
            parts = m.build(param, setup)
        except Exception as err:
            raise ValueError(f"method {name!r} rejects its grid value {param!r}: {type(err).__name__}: {err}") from err
        if isinstance(parts, AmortizedGuide):
            parts = Components(parts)
        if not isinstance(parts, Components) or not isinstance(parts.guide, AmortizedGuide):
            got = type(parts.guide if isinstance(parts, Components) else parts).__name__
            raise TypeError(f"the builder of method {name!r} returned {got}; return an AmortizedGuide "
                            "or pyro_air.benchmark.Components(guide, objective, schedule)")
        try:
            check_compatible(model, parts.guide)
        except ValueError as err:
            raise ValueError(f"method {name!r} at grid value {param!r}: {err}; "
                             "build the guide with **setup.encoder") from err
        if parts.objective is None:
            parts.objective = infer.build("elbo")
        return model, parts

    def check(self, names=None) -> None:
        """Build every method at every grid value once (nothing trains): a builder that rejects one of
        its values fails here, before any run, with the method and value named."""
        for name in self._names(names):
            for param in self.methods[name].grid:
                self.build(name, param, SELECTION_SEED)

    # -- one run --------------------------------------------------------------------------------
    def run_one(self, name: str, param: ParamValue, seed: int) -> dict:
        """Train and test one (method, value, seed); the record (``result.json``), from disk if there."""
        d = self.run_dir(name, param, seed)
        done = d / "result.json"
        if done.exists():
            return json.loads(done.read_text())
        self._claim_out_dir()
        b = self.budget
        train_x, valid_x, test_x = self.splits()
        model, parts = self.build(name, param, seed)
        guide = parts.guide
        config = TrainConfig(epochs=b["epochs"], batch_size=b["batch_size"], lr=b["lr"],
                             lr_final_ratio=b["lr_final_ratio"], seed=seed, valid_every=b["valid_every"],
                             valid_num_samples=b["valid_num_samples"], progress=False)
        t0 = time.perf_counter()
        result = fit(model, guide, parts.objective, train_x, valid_x, config, schedule=parts.schedule)
        train_seconds = time.perf_counter() - t0
        key = f"valid_iwae{config.valid_num_samples}"
        t1 = time.perf_counter()
        torch.manual_seed(TEST_SEED_OFFSET + seed)
        log_px = log_likelihood(model, guide, test_x, num_samples=b["test_num_samples"])
        bound = elbo(model, guide, test_x, num_samples=b["elbo_samples"])
        a = b["amortization"]
        amort = amortization_gap(model, guide, test_x[: a["points"]], num_steps=a["num_steps"],
                                 num_particles=a["num_particles"], elbo_samples=b["elbo_samples"])
        metrics = latent_metrics(model, guide, test_x, seed=seed)
        kl = kl_to_standard_normal(guide, test_x, b["elbo_samples"])
        tensors = {"log_px": log_px, "bound": bound, "amortization_gap": amort, "kl": kl}
        if b["ais"] is not None:  # AIS from q(z|x) (Neal 2001): a second, MCMC-based estimate of log p(x)
            c = b["ais"]
            tensors["log_px_ais"] = ais(model, guide, test_x[: c["points"]], num_steps=c["num_steps"],
                                        num_chains=c["num_chains"], seed=TEST_SEED_OFFSET + seed)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, d / "test.pt")
        record = {
            "method": name, "param": param, "seed": seed,
            "best_valid": result.best_valid, "best_epoch": result.best_epoch,
            "valid_curve": [(r["epoch"], r[key]) for r in result.history if key in r],
            "epoch_seconds": sum(r["epoch_seconds"] for r in result.history) / len(result.history),
            "train_seconds": train_seconds, "test_seconds": time.perf_counter() - t1,
            "aggressive_epochs": sum(bool(r.get("aggressive")) for r in result.history),
            "nll": -log_px.mean().item(), "neg_elbo": -bound.mean().item(),
            "inference_gap": (log_px - bound).mean().item(), "amortization_gap": amort.mean().item(),
            "kl": kl.mean().item(), "active_units": metrics["active_units"],
            "mutual_information": metrics.get("mutual_information"),
        }
        if "log_px_ais" in tensors:
            n_ais = len(tensors["log_px_ais"])
            record.update({"nll_ais": -tensors["log_px_ais"].mean().item(), "ais_points": n_ais,
                           "nll_iwae_on_ais_points": -log_px[:n_ais].mean().item()})
        if hasattr(guide, "evaluation_posterior"):
            record["evaluation_posterior"] = guide.evaluation_posterior
        if parts.extra_record is not None:
            record.update(parts.extra_record())
        done.write_text(json.dumps(record, indent=1))
        self.log(f"{name} param={param} seed={seed}: valid {result.best_valid:.2f} @ {result.best_epoch}, "
                 f"-log p {record['nll']:.2f}, gap {record['inference_gap']:.2f}, "
                 f"amort {record['amortization_gap']:.2f}, AU {record['active_units']}, "
                 f"{record['epoch_seconds']:.2f} s/epoch ({train_seconds:.0f}+{record['test_seconds']:.0f} s)")
        return record

    # -- the stages -----------------------------------------------------------------------------
    def selected(self, name: str) -> ParamValue:
        """The grid value with the best validation bound on the selection seed (the first of a tie);
        FileNotFoundError if a selection run is missing."""
        grid = self.methods[name].grid
        if len(grid) == 1:
            return grid[0]
        records = [json.loads((self.run_dir(name, p, SELECTION_SEED) / "result.json").read_text()) for p in grid]
        return grid[max(range(len(grid)), key=lambda i: records[i]["best_valid"])]

    def select(self, names=None) -> dict:
        """Stage 1: every grid value on the selection seed; {method: chosen value}."""
        names = self._names(names)
        self.check(names)
        chosen = {}
        for name in names:
            for param in self.methods[name].grid:
                self.run_one(name, param, SELECTION_SEED)
            chosen[name] = self.selected(name)
            self.log(f"selected {name}: {chosen[name]}")
        return chosen

    def run_seeds(self, seeds: Iterable[int], names=None) -> None:
        """Stage 2: the chosen values on more seeds (needs stage 1's runs)."""
        names = self._names(names)
        for seed in seeds:
            for name in names:
                self.run_one(name, self.selected(name), seed)

    def report(self, names=None) -> Report:
        """Stage 3: the summary of what is on disk for the budget's seeds (methods without their
        selection runs are left out)."""
        names = self._names(names)
        rows, per_image = {}, {}
        for name in names:
            try:
                param = self.selected(name)
            except FileNotFoundError:
                continue
            recs, tensors = [], {}
            for seed in self.budget["seeds"]:
                d = self.run_dir(name, param, seed)
                if (d / "result.json").exists():
                    recs.append(json.loads((d / "result.json").read_text()))
                    tensors[seed] = torch.load(d / "test.pt", weights_only=True)
            if recs:
                rows[name], per_image[name] = recs, tensors
        base = per_image.get(self.baseline, {})
        summary = {}
        for name, recs in rows.items():
            t = per_image[name]
            entry = {"param": recs[0]["param"], "seeds": [r["seed"] for r in recs],
                     **{k: _over_seeds([r.get(k) for r in recs]) for k in OVER_SEEDS}}
            has_ais = all("log_px_ais" in v for v in t.values())
            if has_ais:
                entry.update({k: _over_seeds([r.get(k) for r in recs]) for k in OVER_SEEDS_AIS})
                entry["ais_points"] = recs[0]["ais_points"]
            if base:
                paired = dict(PAIRED)
                if has_ais and all("log_px_ais" in v for v in base.values()):
                    paired.update(PAIRED_AIS)
                for key, (quantity, _) in paired.items():
                    entry[key] = paired_difference({s: quantity(v) for s, v in t.items()},
                                                   {s: quantity(v) for s, v in base.items()})
            m = self.methods[name]
            entry["grid"] = [{"param": p, "best_valid": json.loads(
                (self.run_dir(name, p, SELECTION_SEED) / "result.json").read_text())["best_valid"]}
                for p in m.grid if (self.run_dir(name, p, SELECTION_SEED) / "result.json").exists()]
            entry.update({k: v for k, v in recs[0].items() if k not in RECORD_KEYS})
            entry["aggressive_epochs"] = [r["aggressive_epochs"] for r in recs]
            summary[name] = entry
        return Report(summary, copy.deepcopy(self.budget), {n: self.methods[n] for n in names}, self.baseline)

    def run(self, names=None) -> Report:
        """All three stages: select on the selection seed, the budget's other seeds, the report."""
        names = self._names(names)
        if self.baseline not in names:
            self.log(f"note: the baseline {self.baseline!r} is not among the methods: no paired differences")
        self.select(names)
        self.run_seeds([s for s in self.budget["seeds"] if s != SELECTION_SEED], names)
        return self.report(names)


def _over_seeds(values: list) -> dict:
    """Mean and standard error over seeds (s.e. None for one seed or missing values)."""
    if any(v is None for v in values):
        return {"mean": None, "se": None}
    vals = torch.tensor(values, dtype=torch.float64)
    return {"mean": vals.mean().item(), "se": (vals.std().item() / len(vals) ** 0.5) if len(vals) > 1 else None}
