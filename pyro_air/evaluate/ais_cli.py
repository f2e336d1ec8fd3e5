"""The ``pyro-air evaluate`` options for AIS, BDMC and the gap decomposition (issue 19), kept in
one self-contained module so that ``pyro_air/cli/commands.py`` needs only a two-line hook:

    pyro-air evaluate RUN --ais-steps 1000 --ais-chains 16 [--bdmc] [--gaps]

- ``--ais-steps N`` (> 0): a column -log p(x) by AIS with N annealing steps, ``--ais-chains`` chains
  and ``--ais-leapfrog`` leapfrog steps, annealing from the guide's q(z | x) (``--ais-from prior``:
  from p(z));
- ``--bdmc``: the BDMC sandwich on ``--bdmc-points`` datapoints simulated from the model, forward
  and reverse AIS with the same settings (its width bounds the error of AIS at these settings);
- ``--gaps``: the per-datapoint decomposition log p(x) (AIS) = L[q*] + approximation gap,
  L[q*] = L[q_phi] + amortization gap (Cremer et al. 2018), with ``--gap-steps`` Adam steps per
  datapoint for q*; a table and a plot (``--gap-plot``, default ``gaps.png`` in the run directory).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pyro_air.core.validation import physical_memory
from pyro_air.evaluate.ais import ais, bdmc
from pyro_air.evaluate.gap_decomposition import (
    format_gap_table,
    gap_decomposition,
    plot_gaps,
)
from pyro_air.evaluate.summary import mean_stderr


DEFAULTS = {"ais_chains": 16, "ais_leapfrog": 10, "ais_from": "guide", "bdmc_points": 50, "gap_steps": 500,
            "gap_plot": None}
# which option each of these needs: an option given without it would be silently ignored
NEEDS = {"ais_chains": "--ais-steps", "ais_leapfrog": "--ais-steps", "ais_from": "--ais-steps",
         "bdmc_points": "--bdmc", "gap_steps": "--gaps", "gap_plot": "--gaps"}
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff", ".webp", ".pgf")
SCHEDULE_BYTES_PER_STEP = 48  # the float64 beta schedule [T + 1] and its temporaries (ais.beta_schedule)


def add_ais_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the AIS / BDMC / gap options to an ``evaluate`` parser."""
    group = parser.add_argument_group("AIS, BDMC and the gap decomposition")
    group.add_argument("--ais-steps", type=int, default=0,
                       help="add -log p(x) by AIS with HMC with this many annealing steps (0: off)")
    group.add_argument("--ais-chains", type=int, default=DEFAULTS["ais_chains"], help="AIS chains per datapoint")
    group.add_argument("--ais-leapfrog", type=int, default=DEFAULTS["ais_leapfrog"],
                       help="leapfrog steps per HMC transition")
    group.add_argument("--ais-from", choices=["guide", "prior"], default=DEFAULTS["ais_from"],
                       help="the initial distribution of AIS: the guide's q(z | x) (default) or the prior")
    group.add_argument("--bdmc", action="store_true",
                       help="BDMC sandwich (forward and reverse AIS) on data simulated from the model")
    group.add_argument("--bdmc-points", type=int, default=DEFAULTS["bdmc_points"],
                       help="simulated datapoints for --bdmc")
    group.add_argument("--gaps", action="store_true",
                       help="approximation and amortization gaps per datapoint (AIS, per-datapoint Gaussians)")
    group.add_argument("--gap-steps", type=int, default=DEFAULTS["gap_steps"],
                       help="Adam steps of each per-datapoint Gaussian q*")
    group.add_argument("--gap-plot", default=DEFAULTS["gap_plot"],
                       help="the gap plot's file (.png, .pdf, .svg ...; a directory: DIR/gaps.png; default: "
                            "RUN_DIR/gaps.png)")


def gap_plot_path(args, run_dir=None) -> Path:
    """The file the gap plot is written to: ``--gap-plot`` (a directory: DIR/gaps.png), else RUN_DIR/gaps.png;
    refused (before any work) without a plot suffix, or where it is a symbolic link."""
    if args.gap_plot:
        path = Path(args.gap_plot)
        path = path / "gaps.png" if path.is_dir() else path
    else:
        path = Path(run_dir or ".") / "gaps.png"
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"--gap-plot {args.gap_plot}: name the plot file with its format's suffix, one of "
                         f"{', '.join(PLOT_SUFFIXES)} (e.g. {path.with_suffix('.png')})")
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link (to {path.resolve()}); pyro-air writes the gap plot only as a "
                         "regular file: remove the link or pass another --gap-plot")
    return path


def wants_ais(args) -> bool:
    return bool(getattr(args, "ais_steps", 0) or getattr(args, "gaps", False) or getattr(args, "bdmc", False))


def check_ais_arguments(args, run_dir=None) -> None:
    """Refuse bad combinations before any slow work starts: values out of range, an option that would be
    silently ignored (e.g. --ais-chains without --ais-steps), a gap decomposition that would be 0 by
    construction (--gap-steps 0), a schedule larger than memory, a gap plot path without a plot suffix."""
    given = {name: getattr(args, name) for name in DEFAULTS if getattr(args, name, DEFAULTS[name]) != DEFAULTS[name]}
    active = {"--ais-steps": wants_ais(args), "--bdmc": bool(getattr(args, "bdmc", False)),
              "--gaps": bool(getattr(args, "gaps", False))}
    for name in given:
        needed = NEEDS[name]
        if not active[needed]:
            add = f"{needed} N (e.g. --ais-steps 500)" if needed == "--ais-steps" else needed
            raise ValueError(f"--{name.replace('_', '-')} applies only with {needed}, which is not given, so it "
                             f"would be ignored; add {add} or drop it")
    if not wants_ais(args):
        return
    _ais_steps(args)
    for name in ("ais_chains", "ais_leapfrog", "bdmc_points"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.gap_steps < 0:
        raise ValueError(f"--gap-steps must be >= 0, got {args.gap_steps}")
    if args.gaps and args.gap_steps == 0:
        raise ValueError("--gap-steps 0 leaves each q* at the encoder's q(z | x), so the amortization gap would be 0 "
                         "by construction; give --gap-steps >= 1 (default 500)")
    if getattr(args, "distributed", False):
        raise ValueError("--ais-steps, --bdmc and --gaps are not sharded by --distributed; run them without it")
    if args.gaps:
        gap_plot_path(args, run_dir)


def _ais_steps(args) -> int:
    if args.ais_steps < 0:
        raise ValueError(f"--ais-steps must be >= 0, got {args.ais_steps}")
    if args.ais_steps == 0 and (args.gaps or args.bdmc):
        raise ValueError("--gaps and --bdmc need AIS: give --ais-steps N (e.g. --ais-steps 500)")
    memory = physical_memory()
    if memory is not None and args.ais_steps * SCHEDULE_BYTES_PER_STEP > memory // 2:
        needed = args.ais_steps * SCHEDULE_BYTES_PER_STEP
        raise ValueError(f"--ais-steps {args.ais_steps} needs about {needed / 1e9:.3g} GB for its annealing schedule alone, more than half of this machine's "
                         f"{memory / 1e9:.3g} GB of memory; AIS is run with 100 to 10000 steps (e.g. --ais-steps 1000)")
    return args.ais_steps


def ais_columns(model, guide, x, args) -> dict:
    """The per-datapoint values and mean ± s.e. summaries for one split: "log_px_ais" (Tensor[N])
    and "nll_ais"; with ``args.gaps`` also the ``gap_decomposition`` result under "gaps"."""
    steps = _ais_steps(args)
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


def ais_report(model, guide, splits: dict, args, run_dir=None) -> str:
    """The text ``pyro-air evaluate`` prints for the AIS options; ``splits`` maps a label to x.
    Writes the gap plot (and names it in the text) when ``args.gaps``."""
    steps = _ais_steps(args)
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
        path = gap_plot_path(args, run_dir)
        plot_gaps(gap_rows, path)
        lines.append(f"gap plot: {path}")
    return "\n".join(lines)
