"""What ``pyro-air evaluate`` computes and prints for its AIS, BDMC and gap-decomposition options
(issue 19; the options and their checks are ``pyro_air.cli.ais_options``, so nothing here parses):

    pyro-air evaluate RUN --ais-steps 1000 --ais-chains 16 [--bdmc] [--gaps]

- ``--ais-steps N`` (> 0): a column -log p(x) by AIS with N annealing steps, ``--ais-chains`` chains
  and ``--ais-leapfrog`` leapfrog steps, annealing from the guide's q(z | x) (``--ais-from prior``:
  from p(z));
- ``--bdmc``: the BDMC sandwich on ``--bdmc-points`` datapoints simulated from the model, forward
  and reverse AIS with the same settings (its width bounds the error of AIS at these settings);
- ``--gaps``: the per-datapoint decomposition log p(x) (AIS) = L[q*] + approximation gap,
  L[q*] = L[q_phi] + amortization gap (Cremer et al. 2018), with ``--gap-steps`` Adam steps per
  datapoint for q*; a table and a plot (``--gap-plot``, default ``gaps.png`` in the run directory; the
command line resolves the path and passes it in).
"""
from __future__ import annotations

from pathlib import Path

from pyro_air.evaluate.ais import ais, bdmc
from pyro_air.evaluate.gap_decomposition import (
    format_gap_table,
    gap_decomposition,
    plot_gaps,
)
from pyro_air.evaluate.summary import mean_stderr


def ais_columns(model, guide, x, args) -> dict:
    """The per-datapoint values and mean ± s.e. summaries for one split: "log_px_ais" (Tensor[N])
    and "nll_ais"; with ``args.gaps`` also the ``gap_decomposition`` result under "gaps"."""
    steps = args.ais_steps  # checked by the command line before any work
    initial = guide if args.ais_from == "guide" else "prior"
    progress = not getattr(args, "no_progress", False)
    seed = 0 if getattr(args, "seed", None) is None else args.seed
    out = {}
    if args.gaps:
        gaps = gap_decomposition(model, guide, x, ais_steps=steps, ais_chains=args.ais_chains,
                                 ais_leapfrog=args.ais_leapfrog, local_steps=args.gap_steps, progress=progress,
                                 seed=seed)
        out["gaps"] = gaps
        log_px = gaps["log_px"]
        if initial == "prior":  # the decomposition anneals from the guide; a prior-started column is separate
            log_px = ais(model, "prior", x, steps, args.ais_chains, args.ais_leapfrog, progress=progress, seed=seed)
    else:
        log_px = ais(model, initial, x, steps, args.ais_chains, args.ais_leapfrog, progress=progress, seed=seed)
    out["log_px_ais"] = log_px
    out["nll_ais"] = mean_stderr(-log_px)
    return out


def ais_report(model, guide, splits: dict, args, plot_path: Path | None = None) -> str:
    """The text ``pyro-air evaluate`` prints for the AIS options; ``splits`` maps a label to x.
    Writes the gap plot (and names it in the text) when ``args.gaps``."""
    steps = args.ais_steps  # checked by the command line before any work
    start = "q(z | x)" if args.ais_from == "guide" else "p(z)"
    lines = [(f"\nAIS with HMC from {start}: T={steps} steps, C={args.ais_chains} chains, "
              f"L={args.ais_leapfrog} leapfrog steps; mean ± standard error, nats")]
    gap_rows = {}
    for label, x in splits.items():
        cols = ais_columns(model, guide, x, args)
        lines.append(f"  {label}: -log p(x) (AIS) = {cols['nll_ais']}")
        if "gaps" in cols:
            gap_rows[label] = cols["gaps"]
    if args.bdmc:
        initial = guide if args.ais_from == "guide" else "prior"
        res = bdmc(model, args.bdmc_points, steps, args.ais_chains, guide_or_prior=initial,
                   num_leapfrog=args.ais_leapfrog, progress=not getattr(args, "no_progress", False),
                   seed=0 if getattr(args, "seed", None) is None else args.seed)
        lines.append(f"\nBDMC on {args.bdmc_points} points simulated from the model: forward AIS "
                     f"{mean_stderr(res.lower)}, reverse AIS {mean_stderr(res.upper)}, "
                     f"sandwich width {mean_stderr(res.width)} nats")
    if gap_rows:
        lines.append(f"\ngap decomposition (Cremer et al. 2018): L[q*] = ELBO of a diagonal Gaussian fitted to each "
                     f"x ({args.gap_steps} Adam steps from the encoder's q(z | x)); L[q_phi] = amortized ELBO")
        lines.append(format_gap_table(gap_rows))
        plot_gaps(gap_rows, plot_path)
        lines.append(f"gap plot: {plot_path}")
    return "\n".join(lines)
