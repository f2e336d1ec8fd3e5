"""Reports: paired differences against a baseline (``paired_difference``, the one implementation;
``paired_estimate`` for two rows of one seed) and the benchmark's tables and plot (``Report``)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from pyro_air.evaluate import Estimate

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


def paired_estimate(row: Mapping, baseline: Mapping, key: str = "log_px") -> Estimate:
    """Mean ± s.e. over test images of  -log p_model(x) - (-log p_baseline(x))  (negative = better):
    ``paired_difference`` of two rows of one seed (``evaluate_row``), as an ``Estimate`` (s.e. over
    the images; nan for one image)."""
    d = paired_difference({0: -row[key]}, {0: -baseline[key]})
    return Estimate(d["mean"], math.nan if d["se_images"] is None else d["se_images"], d["images"])


def _mean_se(v: Mapping, digits: int = 2) -> str:
    """``mean ± se`` of an ``_over_seeds`` entry (the mean alone when there is no s.e.)."""
    return f"{_fmt(v['mean'], digits)} ± {_fmt(v['se'], digits)}" if v["se"] is not None else _fmt(v["mean"], digits)


def _fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


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
        """``{"budget", "grids", "methods"}``: experiments/encoders/results/<budget>/results.json's layout."""
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


def over_seeds(values: list) -> dict:
    """Mean and standard error over seeds (s.e. None for one seed or missing values)."""
    if any(v is None for v in values):
        return {"mean": None, "se": None}
    vals = torch.tensor(values, dtype=torch.float64)
    return {"mean": vals.mean().item(), "se": (vals.std().item() / len(vals) ** 0.5) if len(vals) > 1 else None}
