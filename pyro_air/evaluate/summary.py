"""Summaries of per-datapoint estimates: mean +- standard error, and the inference gap.

The inference gap of AIR (Eq. 8 / Table 1) is  Delta_inf(x) = log p(x) - L(x),  estimated per
datapoint from the same images, so its standard error is that of the paired differences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pyro_air.evaluate.gaps import amortization_gap, amortization_gap_work
from pyro_air.evaluate.iw_svi import iw_svi, iw_svi_work
from pyro_air.evaluate.log_likelihood import elbo, log_likelihood
from pyro_air.evaluate.resume import resume_files
from pyro_air.evaluate.upper_bound import upper_bound


@dataclass
class Estimate:
    mean: float
    stderr: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.stderr:.2f}"


def mean_stderr(values: torch.Tensor) -> Estimate:
    values = values.detach().double().flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("cannot summarize an empty tensor")
    se = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return Estimate(values.mean().item(), se, n)


def summarize(model, guide, x: torch.Tensor, num_samples: int = 5000, elbo_samples: int = 1,
              progress: bool = False, iw_svi_steps: int = 0, iw_svi_k_train: int = 50, iw_svi_lr: float = 1e-2,
              amortization_gap_steps: int = 0, upper_bound_method: str | None = None,
              upper_bound_samples: int | None = None, resume_dir=None, **kwargs) -> dict:
    """Table row: -log p(x) (IWAE-S), -ELBO and the inference gap, each mean ± s.e.

    ``resume_dir`` (with ``seed=``): the IWAE-S and ELBO estimates keep their finished batches there
    (``pyro_air.evaluate.resume``) until the row is returned, so a row cut short and asked for again
    continues where it stopped with the same numbers; the optional columns start over.

    Optional columns (off by default; they cost optimization steps or extra samples):
    ``iw_svi_steps > 0`` adds "nll_iw_svi" (-IW-SVI, AIR Appendix C, scored with IWAE-S);
    ``amortization_gap_steps > 0`` adds "amortization_gap" (Cremer et al. 2018);
    ``upper_bound_method`` in {"cubo", "vr"} adds "neg_upper_bound" (-CUBO_2 or -VR_{-1}, a lower
    bound of -log p(x), so  neg_upper_bound <= nll <= neg_elbo  sandwiches the NLL).
    """
    with resume_files(resume_dir, "log_px", "elbo") as (log_px_file, elbo_file):
        log_px = log_likelihood(model, guide, x, num_samples=num_samples, progress=progress, resume_file=log_px_file,
                                keep_resume_file=True, **kwargs)
        lower = elbo(model, guide, x, num_samples=elbo_samples, progress=progress, resume_file=elbo_file,
                     keep_resume_file=True, **kwargs)
    row = {
        "nll": mean_stderr(-log_px),
        "neg_elbo": mean_stderr(-lower),
        "inference_gap": mean_stderr(log_px - lower),
        "log_px": log_px,
        "elbo": lower,
    }
    if iw_svi_steps:
        row["log_px_iw_svi"] = iw_svi(model, guide, x, num_steps=iw_svi_steps, k_train=iw_svi_k_train,
                                      k_eval=num_samples, lr=iw_svi_lr, progress=progress)
        row["nll_iw_svi"] = mean_stderr(-row["log_px_iw_svi"])
    if amortization_gap_steps:
        row["amortization_gap_values"] = amortization_gap(model, guide, x, num_steps=amortization_gap_steps,
                                                          lr=iw_svi_lr, progress=progress)
        row["amortization_gap"] = mean_stderr(row["amortization_gap_values"])
    if upper_bound_method is not None:
        row["upper_bound"] = upper_bound(model, guide, x, method=upper_bound_method,
                                         num_samples=upper_bound_samples or num_samples, progress=progress, **kwargs)
        row["neg_upper_bound"] = mean_stderr(-row["upper_bound"])
    return row


def planned_work(num_samples: int = 5000, elbo_samples: int = 1, iw_svi_steps: int = 0, iw_svi_k_train: int = 50,
                 amortization_gap_steps: int = 0, upper_bound_method: str | None = None,
                 upper_bound_samples: int | None = None, **_) -> int:
    """Model evaluations per datapoint of one ``summarize`` row: the unit of a command's one bar
    (``pyro_air.support.progress.JobProgress``), which the evaluators advance batch by batch."""
    work = num_samples + elbo_samples
    if iw_svi_steps:
        work += iw_svi_work(iw_svi_steps, iw_svi_k_train, num_samples)
    if amortization_gap_steps:
        work += amortization_gap_work(amortization_gap_steps)
    if upper_bound_method is not None:
        work += upper_bound_samples or num_samples
    return work


COLUMN_NAMES = {"nll": "-log p(x)", "inference_gap": "gap", "neg_elbo": "-ELBO", "nll_iw_svi": "-IW-SVI",
                "amortization_gap": "amort. gap", "neg_upper_bound": "-upper bound"}
OPTIONAL_COLUMNS = ("nll_iw_svi", "neg_upper_bound", "amortization_gap")


def format_table(rows: dict, columns=None) -> str:
    """A plain-text table; ``rows`` maps a row label to a ``summarize`` result.

    By default the columns are -log p(x), gap, -ELBO and whichever optional columns every row has.
    """
    if columns is None:
        extra = [c for c in OPTIONAL_COLUMNS if rows and all(c in r for r in rows.values())]
        columns = ("nll", "inference_gap", "neg_elbo", *extra)
    header = ["", *[COLUMN_NAMES.get(c, c) for c in columns]]
    body = [[label, *[str(r[c]) for c in columns]] for label, r in rows.items()]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(str(v).ljust(w) for v, w in zip(line, widths))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, body)])
