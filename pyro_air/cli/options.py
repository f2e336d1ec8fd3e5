"""The options of ``pyro-air train`` and how they become a run spec and a ``TrainConfig``; the
stored options of a run (``train_args.json``) that ``--resume RUN_DIR`` reads back."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from pyro_air.cli import names
from pyro_air.support.images import image_shape_for
from pyro_air.backend.threads import resolve_threads

# Parsing needs no torch (``pyro-air --help`` answers at once): the functions that build a run spec or a
# TrainConfig import pyro_air.data / runs / train when they are called.


def json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"sigma\": 0.1}}', got {text!r}")
    return value


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist", metavar="NAME",
                   help=f"one of: {', '.join(names.DATASETS)} (mnist is embedded; "
                        "the others read files from --data-dir); or --data PATH for your own file")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="train on your own .npz / .npy file instead of --dataset (arrays train / valid / test, or one "
                        "array that is split 80/10/10; integers that are only 0 and 1 are binary, other uint8 is divided by 255, with a one-line note; images [N, H, W], [N, C, H, W] or "
                        "[N, H, W, C] are flattened channel-first); or torchvision:NAME (e.g. torchvision:MNIST, "
                        "torchvision:CIFAR10) for a torchvision data set whose files are already under --data-dir "
                        "(needs torchvision; nothing is downloaded)")
    p.add_argument("--likelihood", default="bernoulli", choices=list(names.LIKELIHOODS),
                   help="the decoder's p(x | z): bernoulli for binary data (grey levels are binarized), "
                        "continuous-bernoulli for grey levels in [0, 1], gaussian for real values")
    p.add_argument("--net", default="mlp", choices=list(names.NETS),
                   help="mlp: fully connected decoder and encoder (--hidden sizes); conv: convolutional decoder and "
                        "encoder over H x W images with one or more channels (--image-shape; --hidden's first size is their dense layer; "
                        "--guide gaussian becomes conv-gaussian, denoising wraps it)")
    p.add_argument("--image-shape", type=int, nargs="+", default=None, metavar="SIZE",
                   help="the image shape of --net conv: H W, or C H W for C channels (e.g. 3 32 32 for RGB) "
                        "(default: the shape of the --data images, else the most square H x W with H * W = D)")
    p.add_argument("--data-dir", default=None,
                   help="directory of user-supplied data files (default: $PYRO_AIR_DATA, else ./data)")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on a fixed random subset of this many training images (default: all)")
    p.add_argument("--guide", default="gaussian", metavar="NAME",
                   help=f"the encoder q(z | x), one of: {', '.join(names.GUIDES)}")
    p.add_argument("--guide-cfg", type=json_arg, default={},
                   help="JSON object of guide options, e.g. '{\"sigma\": 0.25}' for denoising")
    p.add_argument("--objective", default="elbo", metavar="NAME",
                   help=f"the training bound, one of: {', '.join(names.OBJECTIVES)}")
    p.add_argument("--objective-cfg", type=json_arg, default={},
                   help="JSON object of objective options, e.g. '{\"alpha\": 0.5}' for renyi")
    p.add_argument("--num-particles", type=int, default=1,
                   help="samples per datapoint in the objective (k of IWAE-k)")
    p.add_argument("--z-dim", type=int, default=50, help="latent dimension")
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500],
                   help="hidden layer sizes of the decoder (and of the encoder)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=100, help="minibatch size (the global batch with --distributed)")
    p.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    p.add_argument("--lr-final-ratio", type=float, default=0.1,
                   help="the learning rate decays exponentially to lr * this ratio at the last epoch")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of every random draw")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--valid-num-samples", type=int, default=100,
                   help="k of the validation IWAE-k bound used for early stopping and best.pt")
    p.add_argument("--valid-size", type=int, default=None,
                   help="validate on the first this many validation images (default: all)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many validations without improvement (default: never stop early)")
    p.add_argument("--dynamic-binarization", action="store_true",
                   help="redraw binary pixels from the grey levels at every step (mnist only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log each epoch's metrics (train loss, validation bound, lr, epoch seconds) for "
                        "TensorBoard under RUN_DIR/tensorboard (needs: pip install tensorboard)")
    p.add_argument("--checkpoint-every-steps", type=int, default=None,
                   help="also write a resumable checkpoint every this many steps (mid-epoch)")
    p.add_argument("--checkpoint-every-epochs", type=int, default=1,
                   help="write the resumable checkpoint.pt every this many epochs (always after the last one)")
    p.add_argument("--on-nonfinite", choices=["stop", "rollback"], default="stop",
                   help="on a NaN/inf loss: stop, or roll back to the last good state with a lower lr")
    p.add_argument("--rollback-lr-factor", type=float, default=0.5,
                   help="learning-rate multiplier at each rollback (--on-nonfinite rollback)")
    p.add_argument("--max-rollbacks", type=int, default=3, help="give up after this many rollbacks")
    add_threads_arg(p)
    p.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                   help="bf16: mixed-precision training steps (autocast; fast on CPUs with AMX and on CUDA, "
                        "allowed with a warning elsewhere); evaluation and validation stay float32")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (CUDA: CUDA graphs; CPU: fused C++ kernels); the first "
                        "step pays the compilation (pyro_air.train.compiled)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes torchrun starts (gloo on CPU, NCCL on CUDA); "
                        "--batch-size is the global batch and must be divisible by their number")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch's kernels (default: $OMP_NUM_THREADS, else min(physical cores, "
                        "available CPUs)); on a machine shared with other busy processes use fewer, e.g. 1")


def threads_of(args) -> int:
    """The thread count a command runs with: ``--threads``, else ``pyro_air.backend.threads.default_threads()``."""
    return resolve_threads(getattr(args, "threads", None))


def report_threads(args, threads: int, progress: bool) -> None:
    """With progress bars on, the line that says which thread count a command chose and why, on stderr
    beside the bars (``pyro_air.backend.threads.thread_report``)."""
    if progress:
        import sys

        from pyro_air.backend.threads import thread_report
        print(thread_report(threads, getattr(args, "threads", None)), file=sys.stderr)


def default_image_shape(shape: tuple):
    """The conv nets' image shape for datapoints of ``shape``: the images' own (H, W) or (C, H, W), or
    None (the nets' default, the most square H x W) where that is the same or the data are flat."""
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) not in (2, 3) or tuple(shape) == image_shape_for(math.prod(shape)):
        return None
    return list(shape)


def spec_from_args(args) -> dict:
    from pyro_air import data
    from pyro_air.data.vision import is_torchvision_name
    from pyro_air.runs import vae_spec

    own = getattr(args, "data", None)
    likelihood = getattr(args, "likelihood", "bernoulli")
    net, image_shape = getattr(args, "net", "mlp"), getattr(args, "image_shape", None)
    if own is not None and args.dataset != "mnist":
        raise ValueError(f"--data {own} and --dataset {args.dataset} both name the data; give one")
    if args.dynamic_binarization and likelihood != "bernoulli":
        raise ValueError(f"--dynamic-binarization draws binary pixels, for --likelihood bernoulli; the {likelihood} "
                         "likelihood models the grey levels themselves: drop --dynamic-binarization")
    if image_shape is not None and len(image_shape) not in (2, 3):
        raise ValueError(f"--image-shape takes H W or C H W, got {len(image_shape)} numbers: "
                         f"{' '.join(map(str, image_shape))}")
    dataset, path = args.dataset, None
    if own is not None and is_torchvision_name(own):
        dataset = own
    elif own is not None:
        dataset, path = "file", own
    if own is not None or dataset in data.DATASETS:  # the record's shape (a named set's, or the file's)
        shape = data.dataset_shape(dataset, path=path, data_dir=args.data_dir)
    else:  # an unknown name: refused when the data are loaded, after the run directory's checks
        shape = (28, 28)
    if net == "conv" and image_shape is None:
        image_shape = default_image_shape(shape)
    spec = vae_spec(guide=args.guide, objective=args.objective, z_dim=args.z_dim, hidden=args.hidden,
                    num_particles=args.num_particles, dataset=dataset,
                    train_size=args.train_size, guide_cfg=args.guide_cfg, objective_cfg=args.objective_cfg,
                    likelihood=likelihood, x_dim=math.prod(shape), data_path=path,
                    net=net, image_shape=image_shape)
    if likelihood == "bernoulli":
        spec["data"]["binarize"] = "dynamic" if args.dynamic_binarization else "static"
    spec["data"]["data_dir"] = args.data_dir
    return spec


def config_from_args(args):
    """The ``TrainConfig`` of ``pyro-air train``'s options."""
    from pyro_air.train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       lr_final_ratio=args.lr_final_ratio, seed=args.seed, device=args.device,
                       valid_num_samples=args.valid_num_samples, valid_size=args.valid_size,
                       patience=args.patience, dynamic_binarization=args.dynamic_binarization,
                       progress=not args.no_progress, checkpoint_every_steps=args.checkpoint_every_steps,
                       checkpoint_every_epochs=args.checkpoint_every_epochs,
                       on_nonfinite=args.on_nonfinite, rollback_lr_factor=args.rollback_lr_factor,
                       max_rollbacks=args.max_rollbacks, threads=threads_of(args),
                       precision=getattr(args, "precision", "float32"),
                       tensorboard=getattr(args, "tensorboard", False), compile=getattr(args, "compile", False))


TRAIN_ARGS_FILE = "train_args.json"  # the train options of a run, so `--resume RUN_DIR` needs no others


NOT_GIVEN = object()


def train_option_parser(mark_defaults: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_train_args(p)
    if mark_defaults:  # every option not on the command line parses as NOT_GIVEN
        p.set_defaults(**{k: NOT_GIVEN for k in vars(p.parse_args([]))})
    return p


def resume_args(args, run_dir: Path) -> argparse.Namespace:
    """The run's stored train options, overridden by those named on this command line.

    ``fit`` then refuses the resume if an override changes the result (e.g. --lr), listing the keys.
    """
    parsed = vars(train_option_parser(mark_defaults=True).parse_known_args(args.argv)[0])
    given = {k: v for k, v in parsed.items() if v is not NOT_GIVEN}
    stored_path = run_dir / TRAIN_ARGS_FILE
    if not stored_path.exists():
        raise FileNotFoundError(f"{stored_path} not found: {run_dir} was not started by `pyro-air train`; "
                                "resume it from Python with fit(..., run_dir=..., resume=True)")
    defaults = vars(train_option_parser().parse_args([]))
    return argparse.Namespace(**{**defaults, **json.loads(stored_path.read_text()), **given})


def run_dir_of(args) -> Path:
    if isinstance(args.resume, str):
        if args.run_dir is not None and Path(args.run_dir) != Path(args.resume):
            raise ValueError(f"--resume {args.resume} and --run-dir {args.run_dir} name different runs; give one")
        return Path(args.resume)
    if args.run_dir is None:
        raise ValueError("name the run directory: --run-dir RUN_DIR (or --resume RUN_DIR to continue a run)")
    return Path(args.run_dir)


def train_options(args) -> dict:
    return {k: getattr(args, k) for k in vars(train_option_parser().parse_args([]))}
