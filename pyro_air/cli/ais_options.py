"""The ``pyro-air evaluate`` options for AIS, BDMC and the gap decomposition, and every check of them,
declared without importing torch (so ``pyro-air evaluate --help`` and an argument error answer at once):
values out of range, an option that would be silently ignored, a decomposition that is 0 by
construction, a schedule larger than memory, a gap plot path without a plot suffix - all refused
before any work. ``pyro_air.evaluate.ais_report`` runs them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

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
    checked_ais_steps(args)
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


def checked_ais_steps(args) -> int:
    """``--ais-steps``, refused in one line when negative, missing where --gaps / --bdmc need it, or larger than memory."""
    from pyro_air.core.validation import physical_memory  # torch: only when the checks run, after parsing

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


