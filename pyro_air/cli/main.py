"""pyro-air: train, evaluate and diagnose amortized variational inference (VAEs and their
Amortized Inference Regularization variants: denoising and weight-normalized encoders; IWAE, Renyi,
CUBO, InfoVAE ... objectives) from the command line.

examples:
  pyro-air compare                        # the main job: VAE vs DVAE vs WNI-VAE at a small budget
  pyro-air quickstart                     # a small VAE run on MNIST, evaluated
  pyro-air train --guide gaussian --objective elbo --epochs 10 --run-dir runs/vae
  pyro-air evaluate runs/vae --num-samples 5000
  pyro-air diagnose runs/vae --num-samples 1000 --max-points 500
  pyro-air zoo list                       # trained models shipped with pyro-air
  pyro-air evaluate zoo:NAME              # evaluate one (no run directory needed)
  torchrun --standalone --nproc_per_node=2 -m pyro_air train ... --distributed   # data-parallel
  torchrun --standalone --nproc_per_node=2 -m pyro_air evaluate runs/vae --distributed

`pyro-air COMMAND --help` lists a command's options with their defaults.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import textwrap

# Only what parsing needs: `pyro-air --help`, `pyro-air COMMAND --help`, an argument error and
# `pyro-air zoo list` answer without importing torch or Pyro; a command imports its modules when it runs
# (tests/test_main.py holds this).
from pyro_air.cli import names
from pyro_air.cli.ais_options import add_ais_arguments  # issue 19's options (run by pyro_air.evaluate.ais_report)
from pyro_air.cli.options import add_threads_arg, add_train_args
from pyro_air.zoo.manifest import ZOO_ENV


def command(name: str, module: str = "pyro_air.cli.commands"):
    """``args.func``: the command ``name`` of ``module``, imported when it runs (not when parsing)."""
    def run(args):
        return getattr(importlib.import_module(module), name)(args)
    run.__name__ = run.__qualname__ = name
    return run


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written (examples keep their lines); every option's help ends with its default."""

    def _get_help_string(self, action):  # no "(default: None)" / "(default: False)": they say nothing
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:  # 0 is shown
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text, width):  # keep hyphenated names (conv-gaussian, kl-warmup) whole
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)


SOURCE_HELP = ("a run directory (uses best.pt), a checkpoint file, or zoo:NAME (a trained model shipped with "
               "pyro-air: see `pyro-air zoo list`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyro-air", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=lambda **kw: argparse.ArgumentParser(formatter_class=HelpFormatter, **kw))

    p = sub.add_parser("train", help="train a model and guide, writing checkpoints to a run directory")
    add_train_args(p)
    p.add_argument("--run-dir", default=None, help="where checkpoints and metrics go")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (or --run-dir) exactly where it stopped, with its stored "
                        "options; only these may be changed: --no-progress, --checkpoint-every-steps, "
                        "--checkpoint-every-epochs, --on-nonfinite, --rollback-lr-factor, --max-rollbacks, "
                        "--tensorboard and --data-dir (the same result), --lr, --device, --threads and --compile "
                        "(another result from the resume point on; docs/runs.md, \"What a resume may change\")")
    p.add_argument("--overwrite", action="store_true",
                   help="if the run directory is not empty, move the old run aside (to RUN_DIR.old-<time>) first")
    p.set_defaults(func=command("cmd_train"))

    p = sub.add_parser("evaluate", help="-log p(x), -ELBO and the inference gap of a checkpoint or zoo model")
    p.add_argument("checkpoint", help=SOURCE_HELP)
    p.add_argument("--num-samples", type=int, default=None,
                   help="S of the IWAE-S estimate of log p(x) (default: 5000; for zoo:NAME without it, the manifest's "
                        "quick check: its first 100 test images at IWAE-1000, about a minute, beside the recorded "
                        "value, then the full job's command and estimated time)")
    p.add_argument("--splits", nargs="+", default=["test"], choices=list(names.SPLITS), help="splits to evaluate")
    p.add_argument("--max-points", type=int, default=None, help="evaluate the first N points of each split (default: all)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--latent-metrics", action="store_true",
                   help="also report MMD(q(z), p(z)), log det Cov[q(z)], active units and I_q(x; z)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed each batch of datapoints from (SEED, batch index): the same command prints the same "
                        "numbers, equal to --distributed evaluation with the same seed (default: 0; for the zoo's "
                        "quick check, the check's seed)")
    p.add_argument("--distributed", action="store_true",
                   help="each process torchrun starts scores a shard of the data; results gathered in order")
    p.add_argument("--resume-dir", default=None, metavar="DIR",
                   help="keep the finished batches of -log p(x) and -ELBO in DIR: the same command, interrupted "
                        "(Ctrl-C, a kill), continues from them and prints the same numbers (other columns start "
                        "over); emptied when the command ends")
    p.add_argument("--iw-svi-steps", type=int, default=0, help="add an IW-SVI column with this many steps (0: off)")
    p.add_argument("--iw-svi-k-train", type=int, default=50, help="IWAE-k bound optimized by IW-SVI")
    p.add_argument("--iw-svi-lr", type=float, default=1e-2, help="Adam step size of IW-SVI and the amortization gap")
    p.add_argument("--amortization-gap-steps", type=int, default=0,
                   help="add an amortization-gap column with this many local ELBO steps (0: off)")
    p.add_argument("--upper-bound", choices=["cubo", "vr"], default=None,
                   help="add an upper-bound column: CUBO_2 or the VR bound at alpha = -1 (default: off)")
    add_ais_arguments(p)  # issue 19 hook: --ais-steps, --ais-chains, --bdmc, --gaps
    add_threads_arg(p)  # issue 17
    p.set_defaults(func=command("cmd_evaluate"))

    p = sub.add_parser("diagnose", help="PSIS k-hat table and diagnostic plots of a checkpoint or zoo model")
    p.add_argument("checkpoint", help=SOURCE_HELP)
    p.add_argument("--num-samples", type=int, default=1000, help="guide draws per datapoint for k-hat")
    p.add_argument("--max-points", type=int, default=1000, help="first N points of the split")
    p.add_argument("--split", default="test", choices=list(names.SPLITS), help="the split to diagnose")
    p.add_argument("--out", default=None,
                   help="output directory (default: CHECKPOINT_DIR/diagnostics; for zoo:NAME runs/zoo-NAME)")
    p.add_argument("--seed", type=int, default=0, help="seed of the guide draws (the same command, the same plots)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_threads_arg(p)
    p.set_defaults(func=command("cmd_diagnose"))

    p = sub.add_parser("quickstart", help="train and evaluate a small VAE on the embedded MNIST (the run of tutorial 01)")
    p.add_argument("--epochs", type=int, default=names.QUICKSTART_EPOCHS, help="passes over the training set")
    p.add_argument("--train-size", type=int, default=None, help="train on a random subset of this many images (default: all 50000)")
    p.add_argument("--test-points", type=int, default=1000, help="evaluate on the first this many test images")
    p.add_argument("--num-samples", type=int, default=1000, help="S of the IWAE-S estimate of log p(x)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and every draw")
    p.add_argument("--run-dir", default="runs/quickstart", help="where checkpoints and metrics go")
    p.add_argument("--overwrite", action="store_true", help="move an earlier run in --run-dir aside first")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_threads_arg(p)
    p.set_defaults(func=command("cmd_quickstart"))

    p = sub.add_parser("compare", help="AIR's comparison at a small budget: VAE vs DVAE vs WNI-VAE, one table")
    # Defaults: the regime of experiments/air/RESULTS.md, where the VAE over-fits (1000 images, 300
    # epochs = 3000 steps; about 1 minute per model on 2 cores) and sigma = 0.25 was selected.
    p.add_argument("--epochs", type=int, default=300, help="passes over the training subset per model")
    p.add_argument("--train-size", type=int, default=1000, help="the nested MNIST training subset (over-fits fast)")
    p.add_argument("--sigma", type=float, default=0.25, help="DVAE noise scale")
    p.add_argument("--alpha", type=float, default=1.0, help="DVAE weight of the noisy objective (Eq. 16)")
    p.add_argument("--H", type=float, default=1.5, help="WNI weight-norm cap (Eq. 18)")
    p.add_argument("--num-particles", type=int, default=1, help="k: 1 = VAE objective, >1 = IWAE-k")
    p.add_argument("--z-dim", type=int, default=50, help="latent dimension")
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500], help="hidden layer sizes of decoder and encoder")
    p.add_argument("--valid-size", type=int, default=500, help="validation images for picking the best epoch")
    p.add_argument("--test-points", type=int, default=500, help="evaluate on the first this many test images")
    p.add_argument("--num-samples", type=int, default=1000, help="S of the IWAE-S estimate of log p(x)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and every draw (shared by the three models)")
    p.add_argument("--run-dir", default="runs/compare", help="the three runs go to RUN_DIR/vae, RUN_DIR/dvae, RUN_DIR/wni")
    p.add_argument("--checkpoint-every-epochs", type=int, default=10,
                   help="write each run's resumable checkpoint.pt every this many epochs (and after the last)")
    p.add_argument("--overwrite", action="store_true", help="move an earlier comparison in --run-dir aside first")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_threads_arg(p)  # issue 17
    p.set_defaults(func=command("cmd_compare"))

    p = sub.add_parser("zoo", help="the trained models shipped with pyro-air: list them, show one",
                       description=f"Trained models shipped with pyro-air (pyro_air.zoo; docs/design.md, \"Zoo\").\n"
                                   f"${ZOO_ENV} names another zoo directory (default: the one shipped).\n\n"
                                   "use one:\n  pyro-air evaluate zoo:NAME\n  pyro-air diagnose zoo:NAME\n"
                                   "  model, guide = pyro_air.zoo.load(NAME)     # Python")
    zoo_sub = p.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND", help="list or show",
                               parser_class=lambda **kw: argparse.ArgumentParser(formatter_class=HelpFormatter, **kw))
    q = zoo_sub.add_parser("list", help="a table of the zoo's models: recorded numbers, file sizes")
    q.set_defaults(func=command("cmd_zoo_list", "pyro_air.cli.zoo_commands"))
    q = zoo_sub.add_parser("show", help="what the manifest records about one model (--json: all of it)")
    q.add_argument("name", metavar="NAME", help="a model's name (see `pyro-air zoo list`)")
    q.add_argument("--json", action="store_true", help="the whole manifest entry as JSON (run spec, budget, kernels ...)")
    q.set_defaults(func=command("cmd_zoo_show", "pyro_air.cli.zoo_commands"))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    clean_exit = False
    try:
        if hasattr(args, "threads"):  # a command that computes: before torch (and OpenMP) load
            from pyro_air.backend.threads import default_threads, sleep_waiting_threads_if_busy
            sleep_waiting_threads_if_busy(args.threads if (args.threads or 0) > 0 else default_threads())
        code = args.func(args)
        clean_exit = code == 0  # a non-zero code may come from one rank only: no barrier then
        return code
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, FloatingPointError) as err:
        if isinstance(err, KeyError) and err.args:
            message = err.args[0]
        elif isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.strerror:
            from pyro_air.train import run_dir as run_dirs
            message = run_dirs.describe_os_error(err, err.filename or "", "write or read a file")
        else:
            message = err
        print(f"pyro-air: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # TrainingInterrupted outside `train` (compare, quickstart), or Ctrl-C
        print(f"pyro-air: {str(err) or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    finally:
        parallel = sys.modules.get("pyro_air.support.parallel")  # loaded only by a command that computes
        if parallel is not None:
            parallel.shutdown(synchronize=clean_exit)


if __name__ == "__main__":
    sys.exit(main())
