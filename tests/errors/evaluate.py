"""`pyro-air evaluate` and `pyro-air diagnose`: evaluation and diagnostics options, refused before any work.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""

from tests.errors.builders import tiny_zoo
from tests.errors.table import Case, cli

TITLE = "`pyro-air evaluate` and `pyro-air diagnose`"


def _zoo_linked_output(tmp, mp):
    tiny_zoo(tmp, mp)
    mp.chdir(tmp)
    (tmp / "runs" / "zoo-tiny").mkdir(parents=True)
    (tmp / "runs" / "zoo-tiny" / "khat.json").symlink_to(tmp / "victim.json")
    return cli("diagnose", "zoo:tiny")


def _diagnose_few_samples(tmp, mp):
    tiny_zoo(tmp, mp)
    mp.chdir(tmp)
    return cli("diagnose", "zoo:tiny", "--num-samples", "3")


def _evaluate_cli(*options):
    def trigger(tmp, mp):
        return cli("evaluate", tmp / "run", *options)
    return trigger


CASES = [
    Case("ais-option-ignored", "an AIS / BDMC / gap option without the option it belongs to (e.g. `--ais-chains` "
         "without `--ais-steps`)", "exit 2", "pyro-air: error: --ais-chains applies only with --ais-steps, which is "
         "not given, so it would be ignored; add --ais-steps N (e.g. --ais-steps 500) or drop it",
         _evaluate_cli("--ais-chains", "4")),
    Case("gaps-zero-steps", "`--gaps --gap-steps 0` (an amortization gap of 0 by construction)", "exit 2",
         "pyro-air: error: --gap-steps 0 leaves each q* at the encoder's q(z | x), so the amortization gap would be "
         "0 by construction; give --gap-steps >= 1 (default 500)",
         _evaluate_cli("--ais-steps", "5", "--gaps", "--gap-steps", "0")),
    Case("ais-steps-memory", "`--ais-steps` whose annealing schedule alone exceeds memory", "exit 2",
         "pyro-air: error: --ais-steps 1000000000000 needs about 4.8e+04 GB for its annealing schedule alone, more "
         "than half of this machine's … GB of memory; AIS is run with 100 to 10000 steps (e.g. --ais-steps 1000)",
         _evaluate_cli("--ais-steps", str(10 ** 12))),
    Case("gap-plot-suffix", "`--gap-plot` without a plot suffix (refused before the AIS computation)", "exit 2",
         "pyro-air: error: --gap-plot …/plots: name the plot file with its format's suffix, one of .png, .pdf, .svg, "
         ".jpg, .jpeg, .eps, .ps, .tif, .tiff, .webp, .pgf (e.g. …/plots.png)",
         lambda tmp, mp: cli("evaluate", tmp / "run", "--ais-steps", "5", "--gaps", "--gap-plot", tmp / "plots")),
    Case("evaluate-max-points-zero", "`pyro-air evaluate --max-points 0`", "exit 2",
         "pyro-air: error: --max-points must be >= 1 (the first N points of each split), got 0; omit it to evaluate "
         "whole splits", _evaluate_cli("--max-points", "0")),
    Case("diagnose-output-linked", "an output file of `pyro-air diagnose` that is a symbolic link", "exit 2",
         "pyro-air: error: runs/zoo-tiny/khat.json is a symbolic link (to …/victim.json); pyro-air writes "
         "diagnostics only as regular files inside runs/zoo-tiny: remove the link or pass another --out DIR",
         _zoo_linked_output),
    Case("diagnose-few-samples", "`pyro-air diagnose --num-samples` too few for a Pareto fit (refused before any "
         "folder is created)", "exit 2", "pyro-air: error: --num-samples must be >= … for a Pareto tail fit of k-hat, "
         "got 3; the default is 1000", _diagnose_few_samples),
]
