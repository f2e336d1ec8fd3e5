"""Posterior collapse with a PixelCNN decoder: InfoVAE's information preference, and the remedies.

InfoVAE (Zhao, Song & Ermon; shared/papers/002_*.txt, "The Information Preference Property",
Table 1, Figure 6) says that with a powerful autoregressive decoder the ELBO lets q(z | x) fall
back to the prior (z carries no information about x), while the MMD objective with alpha = 1,
lambda = 1000 keeps the code informative. Here: binarized MNIST, the gated PixelCNN decoder
``pixelcnn-vae`` and the convolutional encoder ``conv-gaussian`` (z = 10), each objective trained
for the same number of decoder evaluations; on held-out test images we report I_q(x; z), active
units, KL(q(z|x) || p(z)), MMD(q(z), p(z)), -ELBO and -log p(x) (IWAE-S).

Runs (``--runs``; the defaults are all of them):

- information preference: ELBO; InfoVAE-MMD (alpha = 1, lambda = 1000, the paper's PixelCNN
  setting); the beta-VAE case of Eq. 6 (alpha = 1 - lambda, D = KL: beta = lambda = 0.5, the only
  way a beta-VAE can prefer information, by weakening the KL);
- remedies: KL warm-up (beta 0 -> 1 over the first half), free bits (lambda = 0.5 nats per
  dimension), the delta-VAE committed rate (delta = 0.25 nats per dimension, posterior scale
  capped), MIWAE(2, 2), PIWAE(2, 2), CIWAE(beta = 0.5, K = 4).

Budget (RESULTS.md, "Posterior collapse"): one torch thread per process; every run takes
``--steps`` Adam steps that evaluate the decoder on ``--decoder-images`` images each (batch 50 for
one particle; the 4-particle objectives use batches of 12), one pass over the first
steps * batch training images; lr 1e-3.

    python experiments/infovae/collapse.py --runs elbo infovae beta-vae --figure   # one worker
    python experiments/infovae/collapse.py --runs kl-warmup free-bits delta-vae miwae piwae ciwae
    python experiments/infovae/collapse.py --table                                  # both tables
    python experiments/infovae/collapse.py --steps 5 --eval-images 20 --iwae-samples 4 --out /tmp/c  # smoke
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's pyro_air, run from anywhere

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

from pyro_air import data, guides, infer, models
from pyro_air.evaluate.latent_metrics import (
    active_units,
    latent_mmd,
    mutual_information,
)
from pyro_air.evaluate.log_likelihood import elbo, log_likelihood
from pyro_air.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
Z_DIM = 10
DECODER = {"channels": 16, "num_layers": 4, "kernel_size": 5}
ENCODER = {"channels": [16, 32], "hidden": 256}

# name -> (label, objective name, objective cfg, extra guide cfg, particles per datapoint)
RUNS = {
    "elbo": ("ELBO", "elbo", {}, {}, 1),
    "infovae": ("InfoVAE-MMD (alpha=1, lambda=1000)", "infovae",
                {"alpha": 1.0, "lam": 1000.0, "divergence": "mmd"}, {}, 1),
    "beta-vae": ("beta-VAE (beta=0.5: alpha=0.5, lambda=0.5, D=KL)", "infovae",
                 {"alpha": 0.5, "lam": 0.5, "divergence": "kl"}, {}, 1),
    "kl-warmup": ("KL warm-up (beta 0 -> 1 over 50%)", "kl-warmup", {"objective": "elbo", "fraction": 0.5}, {}, 1),
    "free-bits": ("free bits (lambda=0.5 nats/dim)", "free-bits", {"free_bits": 0.5}, {}, 1),
    "delta-vae": ("delta-VAE committed rate (delta=0.25 nats/dim)", "elbo", {}, {"committed_rate": 0.25}, 1),
    "miwae": ("MIWAE(M=2, K=2)", "miwae", {"num_groups": 2, "group_size": 2}, {}, 4),
    "piwae": ("PIWAE(M=2, K=2)", "piwae", {"num_groups": 2, "group_size": 2}, {}, 4),
    "ciwae": ("CIWAE(beta=0.5, K=4)", "ciwae", {"beta": 0.5, "num_particles": 4}, {}, 4),
}
INFORMATION_PREFERENCE = ("elbo", "infovae", "beta-vae")
# InfoVAE Table 1 (MNIST, PixelCNN decoder, z = 5, stochastically binarized, converged training)
PAPER_NLL = {"elbo": 82.75, "infovae": 80.76}


def build(name: str):
    _, objective, cfg, guide_cfg, _ = RUNS[name]
    model = models.build("pixelcnn-vae", x_dim=784, z_dim=Z_DIM, **DECODER)
    guide = guides.build("conv-gaussian", x_dim=784, z_dim=Z_DIM, **ENCODER, **guide_cfg)
    return model, guide, infer.build(objective, **cfg)


def mean_kl(guide, x: torch.Tensor) -> float:
    """E_x KL(q(z | x) || N(0, I)) in closed form, nats."""
    with torch.no_grad():
        q = guide.posterior(x).base_dist
        return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1).mean().item()


def evaluate(model, guide, test_x, args) -> dict:
    model.eval()
    guide.eval()
    x_metrics = test_x[: args.metric_images]
    x_ll = test_x[: args.eval_images]
    pyro.set_rng_seed(0)
    t0 = time.process_time()
    log_p = log_likelihood(model, guide, x_ll, num_samples=args.iwae_samples, batch_size=50, seed=0)
    elbos = elbo(model, guide, x_ll, num_samples=1, batch_size=50, seed=1)
    out = {
        "mutual_information": mutual_information(guide, x_metrics),
        "mi_cap": math.log(len(x_metrics)),
        "active_units": active_units(guide, x_metrics)["active_units"],
        "kl": mean_kl(guide, x_metrics),
        "mmd": latent_mmd(model, guide, x_metrics, seed=0),
        "nll": -log_p.mean().item(), "nll_se": log_p.std().item() / math.sqrt(len(log_p)),
        "neg_elbo": -elbos.mean().item(),
        "eval_cpu_s": time.process_time() - t0,
    }
    return out


def train(name: str, train_x: torch.Tensor, args):
    model, guide, objective = build(name)
    particles = RUNS[name][4]
    batch = max(1, args.decoder_images // particles)
    x = train_x[: args.steps * batch]
    config = TrainConfig(epochs=1, batch_size=batch, lr=args.lr, seed=args.seed, progress=False)
    t0, w0 = time.process_time(), time.perf_counter()
    result = fit(model, guide, objective, x, None, config)
    return model, guide, {"train_cpu_s": time.process_time() - t0, "train_wall_s": time.perf_counter() - w0,
                          "steps": result.steps, "batch_size": batch, "particles": particles,
                          "history": result.history}


def figure(trained: dict, test_x: torch.Tensor, path: Path, n: int = 8) -> None:
    """Rows per objective: test images, reconstructions x ~ p(x | z), z ~ q(z | x), prior samples."""
    fig, axes = plt.subplots(len(trained), 3, figsize=(12, 1.9 * len(trained)), squeeze=False)
    x = test_x[:n]
    for row, (name, (model, guide)) in enumerate(trained.items()):
        torch.manual_seed(0)
        with torch.no_grad():                  # one autoregressive pass over both batches
            z = torch.cat([guide.posterior(x).sample(), torch.randn(n, model.z_dim)])
            recon, samples = model.sample(2 * n, z=z).chunk(2)
        for col, (title, images) in enumerate([("test images", x), ("reconstructions", recon),
                                               ("samples z ~ p(z)", samples)]):
            axes[row, col].imshow(images.reshape(n, 28, 28).permute(1, 0, 2).reshape(28, 28 * n), cmap="gray")
            axes[row, col].set_title(f"{RUNS[name][0].split(' (')[0]}: {title}", fontsize=9)
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def table(out: Path) -> str:
    rows = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("run_*.json"))}
    rows = {k.removeprefix("run_"): v for k, v in rows.items()}
    head = ("| objective | I_q(x;z) | active units | KL | MMD | -ELBO | -log p(x) (IWAE-S) | "
            "train CPU min |\n|---|---|---|---|---|---|---|---|")

    def line(name, r):
        paper = f" (paper {PAPER_NLL[name]})" if name in PAPER_NLL else ""
        return (f"| {RUNS[name][0]} | {r['mutual_information']:.2f} | {r['active_units']}/{Z_DIM} | {r['kl']:.2f} | "
                f"{r['mmd']:.4f} | {r['neg_elbo']:.1f} | {r['nll']:.1f} ± {r['nll_se']:.1f}{paper} | "
                f"{r['train_cpu_s'] / 60:.1f} |")

    parts = ["Information preference:", head]
    parts += [line(n, rows[n]) for n in INFORMATION_PREFERENCE if n in rows]
    parts += ["", "Remedies (ELBO repeated as the baseline):", head]
    parts += [line(n, rows[n]) for n in ("elbo", *[k for k in RUNS if k not in INFORMATION_PREFERENCE]) if n in rows]
    total = sum(r["train_cpu_s"] + r["eval_cpu_s"] for r in rows.values())
    parts += ["", (f"total CPU time of the {len(rows)} runs (training + evaluation): {total / 60:.1f} min; "
                   f"CPU: {next(iter(rows.values()))['cpu']}, 1 torch thread per process")]
    return "\n".join(parts)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--decoder-images", type=int, default=50, help="decoder evaluations per step (batch x particles)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--metric-images", type=int, default=1000, help="test images for MI, active units, KL, MMD")
    p.add_argument("--eval-images", type=int, default=200, help="test images for -log p(x) and -ELBO")
    p.add_argument("--iwae-samples", type=int, default=32)
    p.add_argument("--figure", action="store_true", help="samples/reconstructions of the information-preference runs")
    p.add_argument("--table", action="store_true", help="only print the tables of the runs in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "collapse"))
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(out))
        return
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    train_x = data.load("mnist", "train")
    test_x = data.load("mnist", "test")
    trained = {}
    for name in args.runs:
        model, guide, record = train(name, train_x, args)
        record.update(evaluate(model, guide, test_x, args))
        record.update({"name": name, "label": RUNS[name][0], "cpu": cpu_name(), "threads": torch.get_num_threads(),
                       "z_dim": Z_DIM, "decoder": DECODER, "encoder": ENCODER, "lr": args.lr,
                       "iwae_samples": args.iwae_samples, "eval_images": args.eval_images,
                       "metric_images": args.metric_images,
                       "decoder_parameters": sum(q.numel() for q in model.parameters()),
                       "encoder_parameters": sum(q.numel() for q in guide.parameters())})
        (out / f"run_{name}.json").write_text(json.dumps(record, indent=1))
        print(json.dumps(record), flush=True)
        if args.figure and name in INFORMATION_PREFERENCE:
            trained[name] = (model, guide)
    if trained:
        t0 = time.process_time()
        figure(trained, test_x, out / "samples_reconstructions.png")
        print(f"figure: {out / 'samples_reconstructions.png'} ({time.process_time() - t0:.0f} CPU-s)")


if __name__ == "__main__":
    main()
