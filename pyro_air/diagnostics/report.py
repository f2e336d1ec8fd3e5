"""Everything ``pyro-air diagnose`` writes for one model and guide on a set of datapoints.

- ``khat.txt`` / ``khat.json``: the per-datapoint PSIS k-hat summary (counts and fractions in
  k < 0.5, 0.5 <= k < 0.7, k >= 0.7; Yao et al. 2018) and, in the JSON, every k-hat;
- ``khat.png``; ``posterior_comparison.png`` for the datapoints with the lowest, median and highest
  k-hat (latent dims 0 and 1); ``aggregate_posterior.png``; ``reconstructions.png``;
  ``samples.png`` (if the model can sample); ``training_curves.png`` (if a metrics log is given).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pyro_air.diagnostics import plots
from pyro_air.diagnostics.psis import format_khat_summary, khat_summary, psis_khat


@dataclass
class DiagnosticsReport:
    khat: torch.Tensor
    khat_table: str
    files: dict = field(default_factory=dict)


def _is_square_image(x_dim: int) -> bool:
    side = int(round(x_dim ** 0.5))
    return side * side == x_dim


def write_diagnostics(model, guide, x: torch.Tensor, out_dir, num_samples: int = 1000, metrics=None,
                      label: str = "data", num_images: int = 20, progress: bool = False) -> DiagnosticsReport:
    """Compute k-hat for every row of ``x``, write the table and the plots under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    khat = psis_khat(model, guide, x, num_samples=num_samples, progress=progress)
    table = f"{label}, S={num_samples} guide draws per datapoint\n{format_khat_summary(khat)}"
    files = {"khat table": out / "khat.txt"}
    files["khat table"].write_text(table + "\n")
    files["khat json"] = out / "khat.json"
    files["khat json"].write_text(json.dumps({"num_samples": num_samples, "label": label,
                                              "summary": khat_summary(khat), "khat": khat.tolist()}, indent=1))
    files["khat histogram"] = out / "khat.png"
    plots.plot_khat(khat, files["khat histogram"])
    if model.z_dim >= 2:
        order = torch.argsort(khat)
        chosen = sorted({int(order[0]), int(order[len(order) // 2]), int(order[-1])})
        files["posterior comparison"] = out / "posterior_comparison.png"
        plots.plot_posterior_comparison(model, guide, x[chosen], files["posterior comparison"],
                                        num_samples=num_samples, labels=chosen)
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
    return DiagnosticsReport(khat, table, {k: str(v) for k, v in files.items()})
