"""InfoVAE Figures 2, 3 and 5: ELBO over-estimates the variance of q(z); MMD-InfoVAE does not.

Binarized MNIST, training sets of 500 ... 50000 images, z = 10, lambda = 1000, alpha = 0 (Eq. 6 with
the MMD divergence). For each training-set size and objective a Bernoulli VAE is trained with a
FIXED number of optimizer steps (``train_one``), and log det Cov[q(z)] of the aggregate posterior
is 0 for the N(0, I) prior; > 0 is over-estimation. The command line and result files:
``python experiments/infovae/variance.py``.
"""
from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure

from pyro_air import data, guides, infer, models
from pyro_air.core.seeds import seed_all
from pyro_air.train import TrainConfig, fit

SIZES = (500, 1000, 2000, 5000, 10000, 50000)
OBJECTIVES = {"ELBO": ("elbo", {}), "InfoVAE": ("infovae", {"alpha": 0.0, "lam": 1000.0, "divergence": "mmd"})}


def train_one(objective: str, train_size: int, z_dim: int, steps: int, hidden, batch_size: int, seed: int):
    name, cfg = OBJECTIVES[objective]
    x = data.load("mnist", "train", train_size=train_size)
    seed_all(seed)  # before building: the seed fixes the initial weights too
    model = models.build("bernoulli-vae", z_dim=z_dim, hidden=hidden)
    guide = guides.build("gaussian", z_dim=z_dim, hidden=hidden)
    batch_size = min(batch_size, len(x))
    epochs = max(1, round(steps / (len(x) // batch_size)))
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, progress=False)
    fit(model, guide, infer.build(name, **cfg), x, None, config)
    return model, guide, x, epochs * (len(x) // batch_size)


def contour_plot(pairs, test_x, path, train_size: int | None = None) -> Figure:
    """q(z) = (1/N) sum_n q(z | x_n) on a grid, for each (label, guide), next to p(z) (Figure 3)."""
    grid = torch.linspace(-4, 4, 121)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
    panels = [("prior p(z)", torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1))]
    for label, guide in pairs:
        with torch.no_grad():
            q = guide.posterior(test_x)
            log_q = torch.logsumexp(q.log_prob(zz.unsqueeze(-2)), -1) - math.log(len(test_x))
        panels.append((f"{label} q(z)", log_q))
    fig = Figure(figsize=(4 * len(panels) + 1, 4))
    axes = fig.subplots(1, len(panels))
    for ax, (title, log_density) in zip(axes, panels):
        filled = ax.contourf(grid, grid, log_density.exp().reshape(len(grid), len(grid)), levels=20, cmap="viridis")
        fig.colorbar(filled, ax=ax, shrink=0.8, label="density")
        ax.set_title(title)
        ax.set(xlabel="z[0]", ylabel="z[1]")
        ax.set_aspect("equal")
    trained = f" after training on {train_size} images" if train_size is not None else ""
    fig.suptitle(f"aggregate posterior on the test set{trained} (z = 2)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def samples_plot(pairs, train_x, path, n: int = 16, seed: int = 0) -> Figure:
    """Mean of p(x | z) for z ~ p(z) (samples) and for z ~ q(z | x_train) (reconstructions), Figure 5."""
    fig = Figure(figsize=(8, 2.2 * len(pairs)))
    axes = fig.subplots(len(pairs), 2, squeeze=False)
    torch.manual_seed(seed)
    for row, (label, model, guide) in enumerate(pairs):
        with torch.no_grad():
            samples = model.sample(n)
            z = guide.posterior(train_x[:n]).sample()
            recons = torch.sigmoid(model.decoder(z))
        for col, (title, images) in enumerate([("samples p(z)p(x|z)", samples), ("reconstructions", recons)]):
            tiled = images.reshape(2, n // 2, 28, 28).permute(0, 2, 1, 3).reshape(56, 28 * n // 2)
            axes[row, col].imshow(tiled, cmap="gray")
            axes[row, col].set_title(f"{label}: {title}")
            axes[row, col].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


def trend_plot(rows, path) -> Figure:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for objective in OBJECTIVES:
        pts = [(r["train_size"], r["log_det_cov_test"]) for r in rows if r["objective"] == objective]
        ax.plot(*zip(*pts), marker="o", label=objective)
    ax.axhline(0.0, color="k", lw=0.8, ls="--", label="prior N(0, I)")
    ax.set_xscale("log")
    ax.set_xlabel("training-set size")
    ax.set_ylabel("log det Cov[q(z)] (test set)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig
