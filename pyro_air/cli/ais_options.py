"""The ``pyro-air evaluate`` options for AIS, BDMC and the gap decomposition, declared without
importing torch, so that ``pyro-air evaluate --help`` and an argument error answer at once.

The options are ``pyro_air.evaluate.ais_cli``'s (which checks and runs them); this copy of its
``add_ais_arguments`` is held equal to it, option by option, by ``tests/test_ais_options.py``:
change both together.
"""
from __future__ import annotations

import argparse


def add_ais_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the AIS / BDMC / gap options to an ``evaluate`` parser."""
    group = parser.add_argument_group("AIS, BDMC and the gap decomposition")
    group.add_argument("--ais-steps", type=int, default=0,
                       help="add -log p(x) by AIS with HMC with this many annealing steps (0: off)")
    group.add_argument("--ais-chains", type=int, default=16, help="AIS chains per datapoint")
    group.add_argument("--ais-leapfrog", type=int, default=10, help="leapfrog steps per HMC transition")
    group.add_argument("--ais-from", choices=["guide", "prior"], default="guide",
                       help="the initial distribution of AIS: the guide's q(z | x) (default) or the prior")
    group.add_argument("--bdmc", action="store_true",
                       help="BDMC sandwich (forward and reverse AIS) on data simulated from the model")
    group.add_argument("--bdmc-points", type=int, default=50, help="simulated datapoints for --bdmc")
    group.add_argument("--gaps", action="store_true",
                       help="approximation and amortization gaps per datapoint (AIS, per-datapoint Gaussians)")
    group.add_argument("--gap-steps", type=int, default=500, help="Adam steps of each per-datapoint Gaussian q*")
    group.add_argument("--gap-plot", default=None,
                       help="the gap plot's file (.png, .pdf, .svg ...; a directory: DIR/gaps.png; default: "
                            "RUN_DIR/gaps.png)")

