"""Everything ``pyro-air diagnose`` writes for one model and guide on a set of datapoints.

- ``khat.txt`` / ``khat.json``: the per-datapoint PSIS k-hat summary (counts and fractions in
  k < 0.5, 0.5 <= k < 0.7, k >= 0.7; Yao et al. 2018) and, in the JSON, every k-hat;
- ``khat_note``: what a share of images with k >= 0.7 means for this kind of model, and what to do;
- ``khat.png``; ``posterior_comparison.png`` for the datapoints with the lowest (best), median and
  highest (worst) k-hat (latent dims 0 and 1), drawn from the very draws of the table; ``aggregate_posterior.png``; ``reconstructions.png``;
  ``samples.png`` (if the model can sample); ``training_curves.png`` (if a metrics log is given).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pyro_air.support.atomic import atomic_write_text
from pyro_air.support.progress import JobProgress
from pyro_air.diagnostics import plots
from pyro_air.diagnostics.draws import importance_draws
from pyro_air.diagnostics.psis import (
    format_khat_summary,
    khat_from_log_weights,
    khat_summary,
    psis_khat,
)


@dataclass
class DiagnosticsReport:
    khat: torch.Tensor
    khat_table: str
    files: dict = field(default_factory=dict)
    panel_titles: list = field(default_factory=list)  # of posterior_comparison.png: "best: x #n: k-hat 0.12", ...


OUTPUT_FILES = ("khat.txt", "khat.json", "khat.png", "posterior_comparison.png", "aggregate_posterior.png",
                "reconstructions.png", "samples.png", "training_curves.png")  # what write_diagnostics may write


def check_output_dir(out_dir) -> Path:
    """Refuse, before anything is computed or created, an output folder that is a file, or one in which a
    file ``write_diagnostics`` writes is a symbolic link or resolves outside the folder (the output would
    land elsewhere). Creates nothing."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a directory; pass --out DIR for the diagnostics")
    inside = out.resolve()
    for name in OUTPUT_FILES:
        target = out / name
        if target.is_symlink() or not target.resolve().is_relative_to(inside):
            raise ValueError(f"{target} is a symbolic link (to {target.resolve()}); pyro-air writes diagnostics "
                             f"only as regular files inside {out}: remove the link or pass another --out DIR")
    return out


def _is_square_image(x_dim: int) -> bool:
    side = int(round(x_dim ** 0.5))
    return side * side == x_dim


def write_diagnostics(model, guide, x: torch.Tensor, out_dir, num_samples: int = 1000, metrics=None,
                      label: str = "data", num_images: int = 20, progress: bool = False) -> DiagnosticsReport:
    """Compute k-hat for every row of ``x``, write the table and the plots under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    panel_titles = []
    # one set of draws for the table and the panels: the titles' k-hat is the table's; one bar over
    # them (the command's work: the plots after them take seconds)
    with JobProgress(len(x) * num_samples, desc="diagnose: guide draws", disable=not progress):
        if model.z_dim >= 2:
            draws = importance_draws(model, guide, x, num_samples, progress=progress, keep_dims=(0, 1))
            khat = khat_from_log_weights(draws.log_w)
        else:
            khat = psis_khat(model, guide, x, num_samples=num_samples, progress=progress)
    table = f"{label}, S={num_samples} guide draws per datapoint\n{format_khat_summary(khat)}"
    files = {"khat table": out / "khat.txt"}
    atomic_write_text(files["khat table"], table + "\n")
    files["khat json"] = out / "khat.json"
    atomic_write_text(files["khat json"], json.dumps({"num_samples": num_samples, "label": label,
                                                     "summary": khat_summary(khat), "khat": khat.tolist()}, indent=1))
    files["khat histogram"] = out / "khat.png"
    plots.plot_khat(khat, files["khat histogram"])
    if model.z_dim >= 2:
        order = torch.argsort(khat, stable=True)
        panels = {}  # best / median / worst k-hat; fewer panels when they are the same datapoint
        for name, n in (("best", int(order[0])), ("median", int(order[(len(order) - 1) // 2])),
                        ("worst", int(order[-1]))):
            panels.setdefault(n, name)
        chosen = list(panels)
        files["posterior comparison"] = out / "posterior_comparison.png"
        fig = plots.plot_posterior_comparison(model, guide, x[chosen], files["posterior comparison"],
                                              draws=draws.rows(chosen),
                                              labels=[f"{panels[n]}: x #{n}" for n in chosen])
        panel_titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        files["aggregate posterior"] = out / "aggregate_posterior.png"
        plots.plot_aggregate_posterior(model, guide, x, files["aggregate posterior"])
    if _is_square_image(model.x_dim):
        files["reconstructions"] = out / "reconstructions.png"
        plots.plot_reconstructions(model, guide, x[:num_images], files["reconstructions"])
        if hasattr(model, "sample"):
            files["samples"] = out / "samples.png"
            plots.plot_samples(model, files["samples"])
    if metrics is not None:
        files["training curves"] = out / "training_curves.png"
        plots.plot_training_curves(metrics, files["training curves"])
    return DiagnosticsReport(khat, table, {k: str(v) for k, v in files.items()}, panel_titles)


def khat_note(bad: float, z_dim: int, guide: str) -> str:
    """What a share ``bad`` of images with k-hat >= 0.7 means for this kind of model, and what to do."""
    remedies = ("for tighter log p(x): more samples (pyro-air evaluate --num-samples), per-image optimization "
                "(--iw-svi-steps 100) or a more expressive guide (--guide iaf or hierarchical)")
    if bad >= 0.5:
        kind = "typical" if z_dim >= 10 else "more than usual"
        return (f"note: k-hat >= 0.7 on {bad:.0%} of the images is {kind} for an amortized {guide} guide with a "
                f"{z_dim}-dimensional latent (the zoo's 50-dimensional AIR models: over 90 %): its importance "
                f"weights are heavy-tailed there, so IWAE-S under-states log p(x) for those images; {remedies}")
    if bad >= 0.1:
        return (f"note: k-hat >= 0.7 on {bad:.0%} of the images: IWAE-S is unreliable for those (see the worst "
                f"panel of posterior_comparison.png); {remedies}")
    return f"note: k-hat < 0.7 on {1 - bad:.0%} of the images: the guide is a reliable importance proposal for them"
