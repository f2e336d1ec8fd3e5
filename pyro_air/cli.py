"""The ``pyro-air`` command.

    pyro-air quickstart                     # the main job: a small VAE run on MNIST, evaluated
    pyro-air train --guide gaussian --objective elbo --epochs 10 --run-dir runs/vae
    pyro-air evaluate runs/vae --num-samples 5000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from pyro_air import checkpoint as ckpt_io
from pyro_air import data
from pyro_air.evaluate import format_table, summarize
from pyro_air.evaluate.latent_metrics import format_latent_metrics, latent_metrics
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit


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
                       progress=not args.no_progress)


def _load_split(spec: dict, split: str) -> torch.Tensor:
    d = spec["data"]
    return data.load(d["name"], split, binarize=d.get("binarize", "static"),
                     train_size=d.get("train_size") if split == "train" else None, data_dir=d.get("data_dir"))


def cmd_train(args) -> int:
    run_dir = Path(args.run_dir)
    if args.resume:
        state = ckpt_io.load(run_dir / "checkpoint.pt")
        spec = state["spec"]
        config = TrainConfig(**{**state["train_config"], "progress": not args.no_progress})
    else:
        spec, config = _spec_from_args(args), _config_from_args(args)
    model, guide, objective = build_run(spec)
    train_x, valid_x = _load_split(spec, "train"), _load_split(spec, "valid")
    t0 = time.perf_counter()
    result = fit(model, guide, objective, train_x, valid_x, config, run_dir=run_dir, spec=spec, resume=args.resume)
    print(f"trained {len(result.history)} epochs in {time.perf_counter() - t0:.1f} s; best validation "
          f"IWAE-{config.valid_num_samples} {result.best_valid} at epoch {result.best_epoch}")
    print(f"checkpoints: {run_dir / 'checkpoint.pt'} (last), {run_dir / 'best.pt'} (best); "
          f"metrics: {run_dir / 'metrics.jsonl'}")
    return 0


def evaluate_checkpoint(path, splits=("test",), num_samples=5000, max_points=None, device="cpu",
                        progress=True, with_latent_metrics=False) -> dict:
    path = Path(path)
    state = ckpt_io.load(path / "best.pt" if path.is_dir() else path)
    spec = state["spec"]
    model, guide, _ = build_run(spec)
    model.load_state_dict(state["model_state"])
    guide.load_state_dict(state["guide_state"])
    model.to(device)
    guide.to(device)
    rows = {}
    for split in splits:
        x = _load_split(spec, split)
        if spec["data"].get("binarize") == "dynamic":
            x = data.binarize_dynamic(x, torch.Generator().manual_seed(0))
        if max_points is not None:
            x = x[:max_points]
        rows[f"{split} (n={len(x)})"] = summarize(model, guide, x, num_samples=num_samples, progress=progress)
        if with_latent_metrics:
            rows[f"{split} (n={len(x)})"]["latent"] = latent_metrics(model, guide, x.to(device))
    return rows


def cmd_evaluate(args) -> int:
    rows = evaluate_checkpoint(args.checkpoint, args.splits, args.num_samples, args.max_points, args.device,
                               progress=not args.no_progress, with_latent_metrics=args.latent_metrics)
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    print(format_table(rows))
    if args.latent_metrics:
        print("\nlatent metrics (InfoVAE): MMD(q(z), p(z)), log det Cov[q(z)], active units, I_q(x; z) in nats")
        print(format_latent_metrics({label: row["latent"] for label, row in rows.items()}))
    return 0


def cmd_quickstart(args) -> int:
    """Train the AIR MNIST VAE (784-500-500-50) at a small budget, evaluate, print the table."""
    spec = vae_spec(train_size=args.train_size)
    config = TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed, valid_size=1000,
                         valid_num_samples=50, progress=not args.no_progress)
    model, guide, objective = build_run(spec)
    train_x, valid_x = _load_split(spec, "train"), _load_split(spec, "valid")
    t0 = time.perf_counter()
    fit(model, guide, objective, train_x, valid_x, config, run_dir=args.run_dir, spec=spec)
    print(f"trained on {len(train_x)} MNIST images for {args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
    test_x = _load_split(spec, "test")[: args.test_points]
    rows = {f"VAE test (n={len(test_x)})": summarize(model, guide, test_x, num_samples=args.num_samples,
                                                      progress=not args.no_progress)}
    print(f"-log p(x) is IWAE-{args.num_samples}; gap = log p(x) - ELBO; mean ± standard error, nats")
    print(format_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyro-air", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and guide, writing checkpoints to a run directory")
    _add_train_args(p)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir where it stopped")
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
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("quickstart", help="train and evaluate a small VAE on the embedded MNIST")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-points", type=int, default=1000)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default="runs/quickstart")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_quickstart)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"pyro-air: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
