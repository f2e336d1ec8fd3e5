"""The ``pyro-air`` command.

    pyro-air compare                        # the main job: VAE vs DVAE vs WNI-VAE at a small budget
    pyro-air quickstart                     # a small VAE run on MNIST, evaluated
    pyro-air train --guide gaussian --objective elbo --epochs 10 --run-dir runs/vae
    pyro-air evaluate runs/vae --num-samples 5000
    pyro-air diagnose runs/vae --num-samples 1000 --max-points 500
    torchrun --standalone --nproc_per_node=2 -m pyro_air train ... --distributed   # data-parallel
    torchrun --standalone --nproc_per_node=2 -m pyro_air evaluate runs/vae --distributed
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from pyro_air import checkpoint as ckpt_io
from pyro_air import data
from pyro_air import run_dir as run_dirs
from pyro_air.core import parallel as dist_utils
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.evaluate import format_table, summarize
from pyro_air.evaluate.ais_cli import (  # issue 19
    add_ais_arguments,
    ais_report,
    check_ais_arguments,
    wants_ais,
)
from pyro_air.evaluate.latent_metrics import format_latent_metrics, latent_metrics
from pyro_air.runs import build_run, vae_spec
from pyro_air.signals import TrainingInterrupted
from pyro_air.train import RESUME_MAY_CHANGE, TrainConfig, check_inputs, fit


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"sigma\": 0.1}}', got {text!r}")
    return value


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist", help="mnist | mnist-amat | omniglot | caltech101")
    p.add_argument("--data-dir", default=None, help="directory of user-supplied data files ($PYRO_AIR_DATA)")
    p.add_argument("--train-size", type=int, default=None, help="fixed random subset of the training split")
    p.add_argument("--guide", default="gaussian")
    p.add_argument("--guide-cfg", type=_json_arg, default={}, help="JSON object of guide options")
    p.add_argument("--objective", default="elbo")
    p.add_argument("--objective-cfg", type=_json_arg, default={}, help="JSON object of objective options")
    p.add_argument("--num-particles", type=int, default=1)
    p.add_argument("--z-dim", type=int, default=50)
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-final-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--valid-num-samples", type=int, default=100)
    p.add_argument("--valid-size", type=int, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--dynamic-binarization", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--checkpoint-every-steps", type=int, default=None,
                   help="also write a resumable checkpoint every this many steps (mid-epoch)")
    p.add_argument("--on-nonfinite", choices=["stop", "rollback"], default="stop",
                   help="on a NaN/inf loss: stop (default) or roll back to the last good state with a lower lr")
    p.add_argument("--rollback-lr-factor", type=float, default=0.5)
    p.add_argument("--max-rollbacks", type=int, default=3)
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes torchrun starts (gloo on CPU, NCCL on CUDA); "
                        "--batch-size is the global batch and must be divisible by their number")


def _spec_from_args(args) -> dict:
    spec = vae_spec(guide=args.guide, objective=args.objective, z_dim=args.z_dim, hidden=args.hidden,
                    num_particles=args.num_particles, dataset=args.dataset, train_size=args.train_size,
                    guide_cfg=args.guide_cfg, objective_cfg=args.objective_cfg)
    spec["data"]["binarize"] = "dynamic" if args.dynamic_binarization else "static"
    spec["data"]["data_dir"] = args.data_dir
    return spec


def _config_from_args(args) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       lr_final_ratio=args.lr_final_ratio, seed=args.seed, device=args.device,
                       valid_num_samples=args.valid_num_samples, valid_size=args.valid_size,
                       patience=args.patience, dynamic_binarization=args.dynamic_binarization,
                       progress=not args.no_progress, checkpoint_every_steps=args.checkpoint_every_steps,
                       on_nonfinite=args.on_nonfinite, rollback_lr_factor=args.rollback_lr_factor,
                       max_rollbacks=args.max_rollbacks)


TRAIN_ARGS_FILE = "train_args.json"  # the train options of a run, so `--resume RUN_DIR` needs no others


_NOT_GIVEN = object()


def _train_option_parser(mark_defaults: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    _add_train_args(p)
    if mark_defaults:  # every option not on the command line parses as _NOT_GIVEN
        p.set_defaults(**{k: _NOT_GIVEN for k in vars(p.parse_args([]))})
    return p


def _resume_args(args, run_dir: Path) -> argparse.Namespace:
    """The run's stored train options, overridden by those named on this command line.

    ``fit`` then refuses the resume if an override changes the result (e.g. --lr), listing the keys.
    """
    parsed = vars(_train_option_parser(mark_defaults=True).parse_known_args(args.argv)[0])
    given = {k: v for k, v in parsed.items() if v is not _NOT_GIVEN}
    stored_path = run_dir / TRAIN_ARGS_FILE
    if not stored_path.exists():
        raise FileNotFoundError(f"{stored_path} not found: {run_dir} was not started by `pyro-air train`; "
                                "resume it from Python with fit(..., run_dir=..., resume=True)")
    defaults = vars(_train_option_parser().parse_args([]))
    return argparse.Namespace(**{**defaults, **json.loads(stored_path.read_text()), **given})


def _run_dir_of(args) -> Path:
    if isinstance(args.resume, str):
        if args.run_dir is not None and Path(args.run_dir) != Path(args.resume):
            raise ValueError(f"--resume {args.resume} and --run-dir {args.run_dir} name different runs; give one")
        return Path(args.resume)
    if args.run_dir is None:
        raise ValueError("name the run directory: --run-dir RUN_DIR (or --resume RUN_DIR to continue a run)")
    return Path(args.run_dir)


def _load_split(spec: dict, split: str) -> torch.Tensor:
    d = spec["data"]
    return data.load(d["name"], split, binarize=d.get("binarize", "static"),
                     train_size=d.get("train_size") if split == "train" else None, data_dir=d.get("data_dir"))


def _train_options(args) -> dict:
    return {k: getattr(args, k) for k in vars(_train_option_parser().parse_args([]))}


def cmd_train(args) -> int:
    """Check everything (options, run directory, model, data) before writing anything; then claim the
    run directory (one writer), write train_args.json, train; a signal ends it with a checkpoint."""
    run_dir = _run_dir_of(args)
    resume = bool(args.resume)
    if resume and args.overwrite:
        raise ValueError("--resume continues a run and --overwrite moves it aside: give one of them")
    run_dirs.check_path(run_dir)
    if resume:
        args = _resume_args(args, run_dir)
    spec, config = _spec_from_args(args), _config_from_args(args)
    config.validate()
    if args.distributed:  # fail before loading any data: no torchrun environment, batch not divisible
        dist_utils.setup(args.device)
        dist_utils.check_batch_divisible(args.batch_size, dist_utils.world_size())
    main_process = dist_utils.is_main_process()
    if resume:  # fail before loading any data (fit checks again)
        path = run_dir / "checkpoint.pt"
        ckpt_io.check_same_run(ckpt_io.load(path), path, spec, asdict(config), may_change=RESUME_MAY_CHANGE)
    elif not args.overwrite:
        run_dirs.refuse_non_empty(run_dir, resume_hint=f"`pyro-air train --resume {run_dir}`")
    model, guide, objective = build_run(spec, seed=args.seed)
    train_x, valid_x = _load_split(spec, "train"), _load_split(spec, "valid")
    check_inputs(model, guide, train_x, valid_x, config)
    if not main_process:
        return _train(model, guide, objective, train_x, valid_x, config, run_dir, spec, resume, args)
    if not resume and args.overwrite:
        moved = run_dirs.move_aside(run_dir)
        if moved is not None:
            print(f"moved the old run to {moved}")
    with run_dirs.claim(run_dir):
        options, stored = _train_options(args), run_dir / TRAIN_ARGS_FILE
        if not resume:
            run_dirs.refuse_non_empty(run_dir)  # again, under the lock
        if not resume or json.loads(stored.read_text()) != options:  # a resume may change some (RESUME_MAY_CHANGE)
            with run_dirs.write_guard(stored, "write the run's options"):
                run_dirs.atomic_write_text(stored, json.dumps(options, indent=1) + "\n")
        return _train(model, guide, objective, train_x, valid_x, config, run_dir, spec, resume, args)


def _train(model, guide, objective, train_x, valid_x, config, run_dir, spec, resume, args) -> int:
    t0 = time.perf_counter()
    try:
        result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=resume,
                     distributed=args.distributed)
    except TrainingInterrupted as stop:
        print(f"pyro-air: interrupted at epoch {stop.epoch} step {stop.step}; continue with: "
              f"pyro-air train --resume {run_dir}", file=sys.stderr)
        return stop.exit_code
    if not dist_utils.is_main_process():
        return 0
    print(f"trained {len(result.history)} epochs in {time.perf_counter() - t0:.1f} s; best validation "
          f"IWAE-{config.valid_num_samples} {result.best_valid} at epoch {result.best_epoch}")
    print(f"checkpoints: {run_dir / 'checkpoint.pt'} (last), {run_dir / 'best.pt'} (best); "
          f"metrics: {run_dir / 'metrics.jsonl'}")
    return 0


def load_run(path, device="cpu"):
    """(model, guide, spec) of a run directory (its best.pt) or a checkpoint file, on ``device``."""
    path = Path(path)
    state = ckpt_io.load(path / "best.pt" if path.is_dir() else path)
    spec = state["spec"]
    model, guide, _ = build_run(spec, seed=0)  # every parameter is then loaded; seeded all the same
    model.load_state_dict(state["model_state"])
    guide.load_state_dict(state["guide_state"])
    model.to(device)
    guide.to(device)
    return model, guide, spec


def _evaluation_split(spec: dict, split: str, max_points=None) -> torch.Tensor:
    """A split as evaluation sees it: binary (dynamic runs binarized with seed 0), first max_points rows."""
    x = _load_split(spec, split)
    if spec["data"].get("binarize") == "dynamic":
        x = data.binarize_dynamic(x, torch.Generator().manual_seed(0))
    return x if max_points is None else x[:max_points]


def evaluate_checkpoint(path, splits=("test",), num_samples=5000, max_points=None, device="cpu",
                        progress=True, with_latent_metrics=False, seed=None, distributed=False,
                        **extra_columns) -> dict:
    """Rows of ``summarize`` per split; ``extra_columns`` (e.g. iw_svi_steps) go to ``summarize``;
    ``seed``/``distributed`` as in ``pyro_air.evaluate.log_likelihood``. With ``with_latent_metrics``
    each row also holds ``"latent"``: InfoVAE's latent-space metrics."""
    if distributed:
        unsupported = [k for k in ("iw_svi_steps", "amortization_gap_steps") if extra_columns.get(k)]
        if unsupported:
            raise ValueError(f"--distributed evaluation does not shard {', '.join(unsupported)} (per-datapoint "
                             "optimization); run those columns without --distributed")
        device = dist_utils.setup(device)
    model, guide, spec = load_run(path, device)
    rows = {}
    for split in splits:
        x = _evaluation_split(spec, split, max_points)
        rows[f"{split} (n={len(x)})"] = summarize(model, guide, x, num_samples=num_samples, progress=progress,
                                                  seed=seed, distributed=distributed, **extra_columns)
        if with_latent_metrics:
            rows[f"{split} (n={len(x)})"]["latent"] = latent_metrics(model, guide, x.to(device))
    return rows


def cmd_evaluate(args) -> int:
    # Estimates draw per datapoint batch from (seed, batch); the columns that optimize per datapoint
    # (IW-SVI, amortization gap) and the latent metrics draw from the global streams: seed them too.
    seed_all(stream_seed(args.seed, "evaluation"))
    check_ais_arguments(args)  # issue 19 hook (AIS / BDMC / gaps, pyro_air/evaluate/ais_cli.py)
    rows = evaluate_checkpoint(args.checkpoint, args.splits, args.num_samples, args.max_points, args.device,
                               progress=not args.no_progress, seed=args.seed, distributed=args.distributed,
                               iw_svi_steps=args.iw_svi_steps,
                               iw_svi_k_train=args.iw_svi_k_train, iw_svi_lr=args.iw_svi_lr,
                               amortization_gap_steps=args.amortization_gap_steps,
                               upper_bound_method=args.upper_bound,
                               with_latent_metrics=args.latent_metrics)
    if not dist_utils.is_main_process():
        return 0
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    if args.iw_svi_steps:
        print(f"-IW-SVI: {args.iw_svi_steps} Adam steps on IWAE-{args.iw_svi_k_train} per datapoint, "
              f"scored with IWAE-{args.num_samples} (AIR Appendix C)")
    if args.amortization_gap_steps:
        print(f"amort. gap: ELBO of a per-datapoint Gaussian ({args.amortization_gap_steps} steps) - amortized ELBO")
    if args.upper_bound:
        bound = "CUBO_2" if args.upper_bound == "cubo" else "VR bound, alpha = -1"
        print(f"-upper bound: -{bound} with {args.num_samples} samples (<= -log p(x) once S is large enough)")
    print(format_table(rows))
    if args.latent_metrics:
        print("\nlatent metrics (InfoVAE): MMD(q(z), p(z)), log det Cov[q(z)], active units, I_q(x; z) in nats")
        print(format_latent_metrics({label: row["latent"] for label, row in rows.items()}))
    if wants_ais(args):  # issue 19 hook: AIS / BDMC / gap decomposition (pyro_air/evaluate/ais_cli.py)
        model, guide, spec = load_run(args.checkpoint, args.device)
        splits = {f"{s} (n={len(x)})": x for s in args.splits for x in [_evaluation_split(spec, s, args.max_points)]}
        path = Path(args.checkpoint)
        print(ais_report(model, guide, splits, args, run_dir=path if path.is_dir() else path.parent))
    return 0


def cmd_diagnose(args) -> int:
    import matplotlib
    matplotlib.use("Agg")  # files only; never open a window
    from pyro_air.diagnostics.report import write_diagnostics

    path = Path(args.checkpoint)
    run_dir = path if path.is_dir() else path.parent
    model, guide, spec = load_run(path, args.device)
    x = _evaluation_split(spec, args.split, args.max_points)
    seed_all(stream_seed(args.seed, "diagnostics"))
    metrics = run_dir / "metrics.jsonl"
    report = write_diagnostics(model, guide, x, args.out or run_dir / "diagnostics", num_samples=args.num_samples,
                               metrics=metrics if metrics.exists() else None, label=f"{args.split} split",
                               progress=not args.no_progress)
    print(report.khat_table)
    for name, file in report.files.items():
        print(f"{name}: {file}")
    return 0


def _fresh_run_dir(args, what: str) -> Path:
    """The run directory of a command that cannot resume: refused if it holds anything, unless
    --overwrite moves the old one aside. Reads only (``_claim_fresh`` does the moving)."""
    path = run_dirs.check_path(args.run_dir)
    if not args.overwrite:
        run_dirs.refuse_non_empty(path, what=what)
    return path


def _claim_fresh(path: Path):
    moved = run_dirs.move_aside(path)
    if moved is not None:
        print(f"moved the old run to {moved}")
    return run_dirs.claim(path)


def cmd_quickstart(args) -> int:
    """Train the AIR MNIST VAE (784-500-500-50) at a small budget, evaluate, print the table."""
    run_dir = _fresh_run_dir(args, "quickstart run")
    spec = vae_spec(train_size=args.train_size)
    config = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed, valid_size=1000,
                         valid_num_samples=50, progress=not args.no_progress)
    config.validate()
    model, guide, objective = build_run(spec, seed=args.seed)
    train_x, valid_x = _load_split(spec, "train"), _load_split(spec, "valid")
    check_inputs(model, guide, train_x, valid_x, config)
    test_x = _load_split(spec, "test")[: args.test_points]
    t0 = time.perf_counter()
    with _claim_fresh(run_dir):
        fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec)
    print(f"trained on {len(train_x)} MNIST images for {args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
    rows = {f"VAE test (n={len(test_x)})": summarize(model, guide, test_x, num_samples=args.num_samples,
                                                      progress=not args.no_progress,
                                                      seed=stream_seed(args.seed, "evaluation"))}
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    print(format_table(rows))
    return 0


def cmd_compare(args) -> int:
    """VAE vs DVAE vs WNI-VAE (AIR Table 1) at a small budget: same decoder, data, seed and test images.

    Everything is checked (hyperparameters, options, run directory, data) before the first model
    trains. Every model is built from ``build_run(spec, seed)`` (so the three start from the same
    decoder weights) and evaluated on the seed's evaluation stream: the same command prints the
    same table.
    """
    from pyro_air.compare import air_spec, evaluate_row, paired_difference

    run_root = _fresh_run_dir(args, "comparison")
    methods = {"VAE": ("vae", {}), f"DVAE (sigma={args.sigma:g}, alpha={args.alpha:g})": ("dvae", {"sigma": args.sigma, "alpha": args.alpha}),
               f"WNI-VAE (H={args.H:g})": ("wni", {"H": args.H})}
    config = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed, valid_size=args.valid_size,
                         valid_num_samples=20, valid_every=max(1, args.epochs // 15), progress=not args.no_progress)
    config.validate()
    if args.test_points < 1:
        raise ValueError(f"--test-points must be >= 1, got {args.test_points}")
    runs = {}
    for label, (method, kw) in methods.items():  # build all first: a bad sigma / alpha / H fails before training
        spec = air_spec(method, k=args.num_particles, z_dim=args.z_dim, hidden=args.hidden,
                        train_size=args.train_size, **kw)
        runs[label] = (method, spec, build_run(spec, seed=args.seed))
    first_spec = next(iter(runs.values()))[1]  # every run has the same data spec
    train_x, valid_x = _load_split(first_spec, "train"), _load_split(first_spec, "valid")
    test_x = _load_split(first_spec, "test")[: args.test_points]
    for _, _, (model, guide, _) in runs.values():
        check_inputs(model, guide, train_x, valid_x, config)
    rows, base = {}, None
    with _claim_fresh(run_root):
        for label, (method, spec, (model, guide, objective)) in runs.items():
            t0 = time.perf_counter()
            result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_root / method, spec=spec)
            print(f"{label}: trained on {len(train_x)} MNIST images for {args.epochs} epochs in "
                  f"{time.perf_counter() - t0:.0f} s (early-stopped at epoch {result.best_epoch} of the validation "
                  "IWAE-20)")
            row = evaluate_row(model, guide, test_x, k=args.num_particles, num_samples=args.num_samples,
                               progress=not args.no_progress, seed=stream_seed(args.seed, "evaluation"))
            base = base or row
            row["Δ(-log p) vs VAE"] = paired_difference(row, base)
            rows[label] = row
    bound = "ELBO" if args.num_particles == 1 else f"IWAE-{args.num_particles} bound"
    print(f"\ntest (first {len(test_x)} images): -log p(x) is IWAE-{args.num_samples}; gap = log p(x) - {bound}; "
          f"-ELBO column = -{bound}; Δ = paired difference on the same images (negative = better than VAE); "
          f"mean ± standard error, nats")
    print(format_table(rows, columns=("nll", "inference_gap", "neg_elbo", "Δ(-log p) vs VAE")))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyro-air", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and guide, writing checkpoints to a run directory")
    _add_train_args(p)
    p.add_argument("--run-dir", default=None, help="where checkpoints and metrics go")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (or --run-dir) exactly where it stopped, with its stored "
                        "options; only --lr, --device, --no-progress, --checkpoint-every-steps, --on-nonfinite, "
                        "--rollback-lr-factor, --max-rollbacks and --data-dir may be changed")
    p.add_argument("--overwrite", action="store_true",
                   help="if the run directory is not empty, move the old run aside (to RUN_DIR.old-<time>) first")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="-log p(x), -ELBO and the inference gap of a checkpoint")
    p.add_argument("checkpoint", help="a run directory (uses best.pt) or a checkpoint file")
    p.add_argument("--num-samples", type=int, default=5000)
    p.add_argument("--splits", nargs="+", default=["test"], choices=list(data.SPLITS))
    p.add_argument("--max-points", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--latent-metrics", action="store_true",
                   help="also report MMD(q(z), p(z)), log det Cov[q(z)], active units and I_q(x; z)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed each batch of datapoints from (SEED, batch index): the same command prints the same "
                        "numbers, equal to --distributed evaluation with the same seed")
    p.add_argument("--distributed", action="store_true",
                   help="each process torchrun starts scores a shard of the data; results gathered in order")
    p.add_argument("--iw-svi-steps", type=int, default=0, help="add an IW-SVI column with this many steps (0: off)")
    p.add_argument("--iw-svi-k-train", type=int, default=50, help="IWAE-k bound optimized by IW-SVI")
    p.add_argument("--iw-svi-lr", type=float, default=1e-2, help="Adam step size of IW-SVI and the amortization gap")
    p.add_argument("--amortization-gap-steps", type=int, default=0,
                   help="add an amortization-gap column with this many local ELBO steps (0: off)")
    p.add_argument("--upper-bound", choices=["cubo", "vr"], default=None,
                   help="add an upper-bound column: CUBO_2 or the VR bound at alpha = -1 (default: off)")
    add_ais_arguments(p)  # issue 19 hook: --ais-steps, --ais-chains, --bdmc, --gaps
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("diagnose", help="PSIS k-hat table and diagnostic plots of a checkpoint")
    p.add_argument("checkpoint", help="a run directory (uses best.pt) or a checkpoint file")
    p.add_argument("--num-samples", type=int, default=1000, help="guide draws per datapoint for k-hat")
    p.add_argument("--max-points", type=int, default=1000, help="first N points of the split")
    p.add_argument("--split", default="test", choices=list(data.SPLITS))
    p.add_argument("--out", default=None, help="output directory (default: CHECKPOINT_DIR/diagnostics)")
    p.add_argument("--seed", type=int, default=0, help="seed of the guide draws (the same command, the same plots)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("quickstart", help="train and evaluate a small VAE on the embedded MNIST")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-points", type=int, default=1000)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default="runs/quickstart")
    p.add_argument("--overwrite", action="store_true", help="move an earlier run in --run-dir aside first")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("compare", help="AIR's comparison at a small budget: VAE vs DVAE vs WNI-VAE, one table")
    # Defaults: the regime of experiments/air/RESULTS.md, where the VAE over-fits (1000 images, 300
    # epochs = 3000 steps; about 1 minute per model on 2 cores) and sigma = 0.25 was selected.
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--train-size", type=int, default=1000, help="the nested MNIST training subset (over-fits fast)")
    p.add_argument("--sigma", type=float, default=0.25, help="DVAE noise scale")
    p.add_argument("--alpha", type=float, default=1.0, help="DVAE weight of the noisy objective (Eq. 16)")
    p.add_argument("--H", type=float, default=1.5, help="WNI weight-norm cap (Eq. 18)")
    p.add_argument("--num-particles", type=int, default=1, help="k: 1 = VAE objective, >1 = IWAE-k")
    p.add_argument("--z-dim", type=int, default=50)
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    p.add_argument("--valid-size", type=int, default=500)
    p.add_argument("--test-points", type=int, default=500)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default="runs/compare")
    p.add_argument("--overwrite", action="store_true", help="move an earlier comparison in --run-dir aside first")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, FloatingPointError) as err:
        if isinstance(err, KeyError) and err.args:
            message = err.args[0]
        elif isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.strerror:
            message = run_dirs.describe_os_error(err, err.filename or "", "write or read a file")
        else:
            message = err
        print(f"pyro-air: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # TrainingInterrupted outside `train` (compare, quickstart), or Ctrl-C
        print(f"pyro-air: {err or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    finally:
        dist_utils.shutdown()


if __name__ == "__main__":
    sys.exit(main())
