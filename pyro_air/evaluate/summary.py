"""Summaries of per-datapoint estimates: mean +- standard error, and the inference gap.

The inference gap of AIR (Eq. 8 / Table 1) is  Delta_inf(x) = log p(x) - L(x),  estimated per
datapoint from the same images, so its standard error is that of the paired differences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pyro_air.evaluate.log_likelihood import elbo, log_likelihood


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
              progress: bool = False, **kwargs) -> dict:
    """Table row: -log p(x) (IWAE-S), -ELBO and the inference gap, each mean ± s.e."""
    log_px = log_likelihood(model, guide, x, num_samples=num_samples, progress=progress, **kwargs)
    lower = elbo(model, guide, x, num_samples=elbo_samples, progress=progress, **kwargs)
    return {
        "nll": mean_stderr(-log_px),
        "neg_elbo": mean_stderr(-lower),
        "inference_gap": mean_stderr(log_px - lower),
        "log_px": log_px,
        "elbo": lower,
    }


def format_table(rows: dict, columns=("nll", "inference_gap", "neg_elbo")) -> str:
    """A plain-text table; ``rows`` maps a row label to a ``summarize`` result."""
    names = {"nll": "-log p(x)", "inference_gap": "gap", "neg_elbo": "-ELBO"}
    header = ["", *[names.get(c, c) for c in columns]]
    body = [[label, *[str(r[c]) for c in columns]] for label, r in rows.items()]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(str(v).ljust(w) for v, w in zip(line, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, body)])
