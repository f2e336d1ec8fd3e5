"""The runner: train, select and test a set of methods by one protocol (``Benchmark``; the
protocol is the package docstring's, ``pyro_air.compare``)."""
from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from pyro_air import data as datasets
from pyro_air import infer, models
from pyro_air.compare.budgets import budget as budget_preset
from pyro_air.compare.budgets import check_budget
from pyro_air.compare.evaluation import kl_to_standard_normal
from pyro_air.compare.methods import ENCODER_FAMILY, Components, Method, ParamValue, Setup, name_tag, param_tag
from pyro_air.compare.report import (
    OVER_SEEDS,
    OVER_SEEDS_AIS,
    PAIRED,
    PAIRED_AIS,
    Report,
    over_seeds,
    paired_difference,
)
from pyro_air.core.validation import check_compatible
from pyro_air.evaluate import ais, amortization_gap, elbo, latent_metrics, log_likelihood
from pyro_air.guides.base import AmortizedGuide
from pyro_air.train import TrainConfig, fit

SELECTION_SEED = 0       # the seed whose validation bound chooses each method's hyper-parameter
TEST_SEED_OFFSET = 10_000  # the test estimates of seed k draw from torch.manual_seed(10_000 + k)

RECORD_KEYS = {"method", "param", "seed", "best_valid", "best_epoch", "valid_curve", "epoch_seconds",
               "train_seconds", "test_seconds", "aggressive_epochs", "nll", "neg_elbo", "inference_gap",
               "amortization_gap", "kl", "active_units", "mutual_information", "nll_ais", "ais_points",
               "nll_iwae_on_ais_points"}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


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
        self.budget = budget_preset(budget) if isinstance(budget, str) else check_budget(budget)
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
                raise TypeError(f"a method is a name or a pyro_air.compare.Method, got {type(m).__name__}")
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
                            "or pyro_air.compare.Components(guide, objective, schedule)")
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
                     **{k: over_seeds([r.get(k) for r in recs]) for k in OVER_SEEDS}}
            has_ais = all("log_px_ais" in v for v in t.values())
            if has_ais:
                entry.update({k: over_seeds([r.get(k) for r in recs]) for k in OVER_SEEDS_AIS})
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
