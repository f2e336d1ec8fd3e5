"""The biased noise model (AVO paper, section 5.1, Figures 1-2) at a small CPU budget.

    python experiments/avo/biased_noise.py --steps 3000

Data: N draws of x from ``BiasedNoiseModel()`` (eta = 0.75, noise std 0.1; see the model's
docstring for the decisions the paper leaves open). Three generative models of the same form are
fitted - the decoder mean sin/cos(pi tanh(eta z)) with eta learned (started at --eta-init) and the
noise std an MLP of z (32 tanh units, started at 0.3) - which differ only in q(z | x):
  (a) VAE: amortized Gaussian encoder (2-32-32-[mu, sigma]), the ELBO (Eq. 1 with beta = 1);
  (b) IWAE with the prior as proposal, q(z | x) = p(z), 500 samples per datapoint;
  (c) HVI-AVO: the amortized hierarchical guide (encoder as in (a), T = 10 gated transitions of
      width 32), loss-calibrated AVO (section 4.3) with probability a of an AVO step.
Adam, batch 100, lr 3e-3 decayed to 3e-4 (``pyro_air.train.fit``).

Evaluation, all by 1-D quadrature over z (``BiasedNoiseModel.log_marginal``/``posterior_on_grid``):
test log p(x) on held-out draws; Figure 1 the learned p(x) on a 2-D grid; Figure 2 the learned
model's true posterior p(z | x = [0, -1]) beside each method's q(z | x) (HVI: samples of the final
z). Writes figure1_densities.png, figure2_posteriors.png and biased_noise.json into results/biased_noise/.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

from pyro_air.guides import GaussianEncoder, HierarchicalGuide
from pyro_air.infer import AVO_ELBO, IWAE_ELBO, MonteCarloELBO
from pyro_air.models import BiasedNoiseModel
from pyro_air.models.biased_noise import local_maxima
from pyro_air.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "biased_noise"
X_STAR = torch.tensor([[0.0, -1.0]])
T = 10
METHODS = ("vae", "iwae-prior", "hvi-avo")
LABELS = {"vae": "VAE (Gaussian q, ELBO)", "iwae-prior": "IWAE-500, q = p(z)", "hvi-avo": f"HVI-AVO (T={T})"}


def make_run(method: str, eta_init: float, avo_a: float):
    model = BiasedNoiseModel(eta=eta_init, noise_scale=0.3, learn=("eta", "scale"), hidden=(32,))
    if method == "vae":
        return model, GaussianEncoder(x_dim=2, z_dim=1, hidden=(32, 32)), MonteCarloELBO()
    if method == "iwae-prior":  # the non-amortized T = 0 hierarchical guide is q_0 = N(0, 1) = p(z)
        guide = HierarchicalGuide(x_dim=2, z_dim=1, num_transitions=0, amortized=False, initial_scale=1.0)
        return model, guide, IWAE_ELBO(num_particles=500)
    if method == "hvi-avo":
        guide = HierarchicalGuide(x_dim=2, z_dim=1, num_transitions=T, hidden=(32, 32), transition_hidden=32)
        return model, guide, AVO_ELBO(T, a=avo_a)
    raise ValueError(f"unknown method {method!r}; use one of {METHODS}")


@torch.no_grad()
def approximate_posterior_samples(method, model, guide, n=20000):
    """Draws of z from q(z | x = [0, -1]) (for IWAE the proposal, p(z))."""
    x = X_STAR.expand(n, 2)
    if method == "hvi-avo":
        return pyro.poutine.trace(guide).get_trace(x).nodes["z"]["value"][:, 0]
    if method == "iwae-prior":
        return torch.randn(n)
    return guide.posterior(x).sample()[:, 0]


@torch.no_grad()
def posterior_summary(model, grid_points=4001):
    grid, density = model.posterior_on_grid(X_STAR, num_points=grid_points)
    density = density[0]
    h = (grid[1] - grid[0]).item()
    modes = grid[local_maxima(density, min_height=0.05)]
    return grid, density, {"modes": [round(m, 3) for m in modes.tolist()],
                           "mass_z_positive": round((density[grid > 0].sum() * h).item(), 3)}


def density_grid(half_width=1.6, num=121):
    xs = torch.linspace(-half_width, half_width, num)
    return xs, torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)


def main():
    torch.set_num_threads(1)
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--eta-init", type=float, default=0.5)
    p.add_argument("--avo-a", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    args = p.parse_args()

    data_model = BiasedNoiseModel()
    train_x = data_model.sample_data(args.train_size, seed=args.seed)
    test_x = data_model.sample_data(2000, seed=args.seed + 1000)
    batch = 100
    epochs = max(1, args.steps * batch // args.train_size)
    results = {"budget": {"steps": epochs * args.train_size // batch, "batch": batch, "train_size": args.train_size,
                          "eta_init": args.eta_init, "avo_a": args.avo_a, "seed": args.seed},
               "data": {"test_log_px": data_model.log_marginal(test_x).mean().item()}}
    _, data_density, results["data"]["posterior"] = posterior_summary(data_model)
    fitted = {}
    for method in args.methods:
        t0 = time.time()
        model, guide, objective = make_run(method, args.eta_init, args.avo_a)
        config = TrainConfig(epochs=epochs, batch_size=batch, lr=3e-3, lr_final_ratio=0.1, seed=args.seed,
                             progress=False)
        fit(model, guide, objective, train_x, config=config)
        seconds = time.time() - t0
        _, _, post = posterior_summary(model)
        z = approximate_posterior_samples(method, model, guide)
        with torch.no_grad():
            sigma_at_star = model.scale(torch.tensor([[0.0], [2.5]])).tolist()
        results[method] = {"test_log_px": model.log_marginal(test_x).mean().item(), "eta": model.eta.item(),
                           "posterior": post, "q_mass_z_positive": round((z > 0).float().mean().item(), 3),
                           "q_mean": z.mean().item(), "q_std": z.std().item(),
                           "sigma_at_z0_and_z2.5": sigma_at_star, "train_seconds": round(seconds, 1)}
        print(method, json.dumps(results[method]), flush=True)
        fitted[method] = (model, guide, z)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "biased_noise.json").write_text(json.dumps(results, indent=1))
    plot(data_model, fitted, data_density)


@torch.no_grad()
def plot(data_model, fitted, data_density):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs, xx = density_grid()
    panels = [("data distribution", data_model)] + [(LABELS[m], fitted[m][0]) for m in fitted]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, model) in zip(axes, panels):
        density = model.log_marginal(xx, num_points=1001).exp().reshape(len(xs), len(xs))
        ax.imshow(density, origin="lower", extent=(xs[0], xs[-1], xs[0], xs[-1]), cmap="viridis")
        ax.plot([0], [-1], "r+", ms=10)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.88, wspace=0.05)
    path1 = OUT / "figure1_densities.png"
    fig.savefig(path1, dpi=90)

    fig, axes = plt.subplots(1, len(fitted), figsize=(3.6 * len(fitted), 3.0), squeeze=False)
    for ax, (method, (model, guide, z)) in zip(axes[0], fitted.items()):
        grid, density, _ = posterior_summary(model)
        ax.plot(grid, data_density, color="grey", lw=1, ls="--", label="p(z|x), data model")
        ax.plot(grid, density, color="k", lw=1.5, label="p(z|x), learned model")
        ax.hist(z.numpy(), bins=120, range=(-5, 5), density=True, alpha=0.5, label="q(z|x) samples")
        ax.set_xlim(-5, 5)
        ax.set_title(f"{LABELS[method]}, x = [0, -1]", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path2 = OUT / "figure2_posteriors.png"
    fig.savefig(path2, dpi=90)
    print("wrote", path1)
    print("wrote", path2)


if __name__ == "__main__":
    main()
