"""Diagnostic plots (seaborn / matplotlib). Each saves to ``path`` and returns the Figure.

Figures are made with ``matplotlib.figure.Figure`` directly, never through pyplot, so they work
under any backend (the CLI selects the non-interactive "Agg"), keep no global state, and still
display in a notebook when returned.

- ``plot_posterior_comparison``: q(z | x) against the importance-resampled true posterior p(z | x)
  (sampling-importance-resampling from the guide's own draws, ``pyro_air.diagnostics.draws``),
  one panel per chosen x, for a pair of latent dimensions.
- ``plot_aggregate_posterior``: the aggregate posterior q(z) = (1/N) sum_n q(z | x_n) (one draw
  per datapoint) against the prior p(z) (one draw per datapoint from the model).
- ``plot_khat``: histogram of per-datapoint PSIS k-hat with the 0.5 / 0.7 lines (Yao et al. 2018).
- ``plot_training_curves``: the ``metrics.jsonl`` a training run writes (``pyro_air.train``).
- ``plot_reconstructions`` / ``plot_samples``: image grids of E[x | z], z ~ q(z | x), and of model
  samples.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure
from pyro import poutine

from pyro_air.support.atomic import atomic_save_figure
from pyro_air.core.validation import check_positive_int
from pyro_air.diagnostics.draws import (
    LATENT_SITE,
    ImportanceDraws,
    importance_draws,
    resample,
)
from pyro_air.diagnostics.psis import (
    KHAT_BAD,
    KHAT_GOOD,
    MIN_PSIS_SAMPLES,
    khat_from_log_weights,
)
from pyro_air.evaluate.chunking import evaluation_mode, module_device

GUIDE_COLOR, POSTERIOR_COLOR, PRIOR_COLOR = "tab:blue", "tab:orange", "tab:gray"


def _save(fig: Figure, path) -> Figure:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_figure(fig, path, dpi=100, bbox_inches="tight")
    return fig


def _check_dims(dims, z_dim: int) -> tuple[int, int]:
    dims = tuple(dims)
    if z_dim < 2:
        raise ValueError(f"these plots show a pair of latent dimensions; the model has z_dim={z_dim}")
    if len(dims) != 2 or dims[0] == dims[1] or not all(isinstance(d, int) and 0 <= d < z_dim for d in dims):
        raise ValueError(f"dims must be two different latent dimensions in 0..{z_dim - 1}, got {dims!r}")
    return dims


def density_panel(ax, z: np.ndarray, color: str, label: str) -> None:
    """Density contours and a scatter of 2-D draws. Importance-resampled draws of a datapoint whose
    weights are dominated by a few draws (k-hat >= 0.7) repeat those few points, and their kernel
    density has no contour levels; such a panel shows the points alone and says so in its legend."""
    try:
        sns.kdeplot(x=z[:, 0], y=z[:, 1], ax=ax, color=color, levels=5, gridsize=60, warn_singular=False)
    except ValueError:   # "Contour levels must be increasing": the draws sit on a few points
        label = f"{label} ({len(np.unique(z, axis=0))} distinct draws: no density)"
    ax.scatter(z[:200, 0], z[:200, 1], s=3, alpha=0.3, color=color, label=label)


def plot_posterior_comparison(model, guide, x: torch.Tensor, path, dims=(0, 1), num_samples: int = 2000,
                              labels=None, generator: torch.Generator | None = None,
                              draws: ImportanceDraws | None = None) -> Figure:
    """q(z|x_n) draws vs importance-resampled p(z|x_n) draws, one panel per row of ``x`` (<= 12).

    Each title shows the k-hat of that panel's own S draws. With ``draws`` (``importance_draws`` of
    these rows, e.g. ``all_draws.rows(chosen)``) those very draws are plotted, so the titles equal a
    k-hat table computed from them; without, S fresh draws are made (the k-hat varies with the seed).
    ``labels``: one title prefix per panel (default: "x #n").
    """
    if x.dim() != 2 or not 1 <= len(x) <= 12:
        raise ValueError(f"pass 1 to 12 chosen datapoints as x of shape [n, D], got {list(x.shape)}")
    i, j = _check_dims(dims, model.z_dim)
    if draws is None:
        if num_samples < MIN_PSIS_SAMPLES:
            raise ValueError(f"num_samples must be >= {MIN_PSIS_SAMPLES} (k-hat is shown per panel), "
                             f"got {num_samples}")
        draws = importance_draws(model, guide, x, num_samples)
    elif draws.z is None or len(draws.log_w) != len(x):
        raise ValueError(f"draws must hold the guide draws (keep_z=True) of the {len(x)} rows of x, got "
                         f"{len(draws.log_w)} rows{' without z' if draws.z is None else ''}")
    if draws.dims is None:
        cols = [i, j]
    elif i in draws.dims and j in draws.dims:
        cols = [draws.dims.index(i), draws.dims.index(j)]
    else:
        raise ValueError(f"draws hold latent dimensions {draws.dims}, not the plotted dims ({i}, {j})")
    z_post, _ = resample(draws, generator=generator)
    khat = khat_from_log_weights(draws.log_w)
    labels = [str(label) for label in labels] if labels is not None else [f"x #{n}" for n in range(len(x))]
    fig = Figure(figsize=(3.2 * len(x), 3.6))
    axes = fig.subplots(1, len(x), squeeze=False)[0]
    for n, ax in enumerate(axes):
        density_panel(ax, draws.z[n][:, cols].numpy(), GUIDE_COLOR, "q(z|x)")
        density_panel(ax, z_post[n][:, cols].numpy(), POSTERIOR_COLOR, "resampled p(z|x)")
        ax.set_title(f"{labels[n]}: k-hat {khat[n].item():.2f}", fontsize=9)
        ax.set_xlabel(f"z[{i}]")
        ax.set_ylabel(f"z[{j}]" if n == 0 else "")
    axes[0].legend(loc="best", fontsize=7, markerscale=3)
    fig.tight_layout()
    return _save(fig, path)


def plot_aggregate_posterior(model, guide, x: torch.Tensor, path, dims=(0, 1)) -> Figure:
    """One draw z_n ~ q(z|x_n) per datapoint (the aggregate posterior) against z_n ~ p(z)."""
    i, j = _check_dims(dims, model.z_dim)
    device = module_device(model)
    with evaluation_mode(model, guide):
        xb = x.to(device)
        q_trace = poutine.trace(guide).get_trace(xb)
        p_trace = poutine.trace(poutine.block(model, hide=["x"])).get_trace(xb)  # z from the prior
    z_q = q_trace.nodes[LATENT_SITE]["value"].cpu().numpy()
    z_p = p_trace.nodes[LATENT_SITE]["value"].cpu().numpy()
    fig = Figure(figsize=(4.5, 4.2))
    ax = fig.subplots()
    density_panel(ax, z_p[:, [i, j]], PRIOR_COLOR, "prior p(z)")
    density_panel(ax, z_q[:, [i, j]], GUIDE_COLOR, "aggregate q(z)")
    ax.set(xlabel=f"z[{i}]", ylabel=f"z[{j}]", title=f"aggregate posterior vs prior (n={len(x)})")
    ax.legend(loc="best", fontsize=8, markerscale=3)
    return _save(fig, path)


def plot_khat(khat: torch.Tensor, path, title: str | None = None) -> Figure:
    """Histogram of per-datapoint k-hat with the 0.5 (good) and 0.7 (unreliable) thresholds."""
    k = torch.as_tensor(khat).detach().cpu().double().flatten().numpy()
    if k.size == 0:
        raise ValueError("khat is empty")
    finite = k[np.isfinite(k)]
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    sns.histplot(finite, ax=ax, bins=min(40, max(5, finite.size // 5)), color=GUIDE_COLOR)
    ax.axvline(KHAT_GOOD, color="tab:green", ls="--", label=f"k = {KHAT_GOOD}")
    ax.axvline(KHAT_BAD, color="tab:red", ls="--", label=f"k = {KHAT_BAD}")
    bad = float((k >= KHAT_BAD).mean())
    ax.set(xlabel="PSIS k-hat", ylabel="datapoints",
           title=title or f"k-hat per datapoint (n={k.size}, {100 * bad:.0f}% >= {KHAT_BAD})")
    if finite.size < k.size:
        ax.text(0.98, 0.95, f"{k.size - finite.size} infinite, not shown", transform=ax.transAxes,
                ha="right", va="top", fontsize=8)
    ax.legend(fontsize=8)
    return _save(fig, path)


def read_metrics(metrics) -> list[dict]:
    """Records from a ``metrics.jsonl`` file, a run directory holding one, or a list of dicts."""
    if isinstance(metrics, (list, tuple)):
        return list(metrics)
    path = Path(metrics)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no metrics log at {path}; pass the run directory that `pyro-air train` wrote")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(metrics, path) -> Figure:
    """Training loss (mean negative bound per datapoint) and -valid IWAE-k against epoch; the lr."""
    records = read_metrics(metrics)
    if not records:
        raise ValueError("the metrics log is empty; train at least one epoch first")
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(9, 3.4))
    ax, ax_lr = fig.subplots(1, 2)
    sns.lineplot(x=epochs, y=[r["train_loss"] for r in records], ax=ax, marker="o", label="train loss")
    for key in sorted({k for r in records for k in r if re.fullmatch(r"valid_iwae\d+", k)}):
        pts = [(r["epoch"], -r[key]) for r in records if key in r]
        sns.lineplot(x=[p[0] for p in pts], y=[p[1] for p in pts], ax=ax, marker="o",
                     label=f"valid -IWAE-{key[len('valid_iwae'):]}")
    ax.set(xlabel="epoch", ylabel="nats per datapoint", title="training curves")
    sns.lineplot(x=epochs, y=[r["lr"] for r in records], ax=ax_lr, marker="o", color="tab:gray")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", yscale="log", title="learning rate")
    fig.tight_layout()  # the right panel's y label does not overlap the left panel
    return _save(fig, path)


def _image_shape(x_dim: int, image_shape, model=None):
    """(H, W) or (C, H, W) of the images: ``image_shape``, else the model's own (convolutional
    models have one), else the square side of x_dim."""
    if image_shape is None and model is not None and getattr(model, "image_shape", None) is not None:
        image_shape = model.image_shape
    if image_shape is not None:
        if math.prod(image_shape) != x_dim:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold x_dim={x_dim} pixels")
        shape = tuple(image_shape)
        if len(shape) == 3 and shape[0] == 1:
            return shape[1:]
        if len(shape) == 3 and shape[0] != 3:
            raise ValueError(f"images of {shape[0]} channels cannot be shown; plot grey (1 channel) or RGB (3) images")
        return shape
    side = math.isqrt(x_dim)
    if side * side != x_dim:
        raise ValueError(f"x_dim={x_dim} is not a square image; pass image_shape=(height, width)")
    return side, side


def _mosaic(images: np.ndarray, shape, ncols: int) -> np.ndarray:
    """The images in a grid with 1-pixel borders: [rows, cols] for grey, [rows, cols, 3] for RGB
    (flattened channel-first rows of shape (3, H, W), clipped to [0, 1])."""
    n = len(images)
    nrows = math.ceil(n / ncols)
    h, w = shape[-2:]
    rgb = len(shape) == 3
    canvas = np.ones((nrows * (h + 1) + 1, ncols * (w + 1) + 1) + ((3,) if rgb else ()))
    for k, img in enumerate(images):
        r, c = divmod(k, ncols)
        tile = np.clip(img.reshape(3, h, w).transpose(1, 2, 0), 0, 1) if rgb else img.reshape(h, w)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = tile
    return canvas


def _grid_figure(rows: list[tuple[str, np.ndarray]], shape, ncols: int) -> Figure:
    fig = Figure(figsize=(0.6 * ncols + 1, 0.7 * sum(math.ceil(len(im) / ncols) for _, im in rows) + 0.4 * len(rows)))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (title, images) in zip(axes, rows):
        ax.imshow(_mosaic(images, shape, ncols), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def plot_reconstructions(model, guide, x: torch.Tensor, path, image_shape=None, ncols: int = 10) -> Figure:
    """Top: the data x; bottom: E[x | z] with z ~ q(z | x) (one draw each). ``image_shape`` (H, W) or
    (3, H, W) for RGB defaults to the model's ``image_shape`` (convolutional models), else square."""
    check_positive_int(ncols, "ncols")
    shape = _image_shape(model.x_dim, image_shape, model)
    device = module_device(model)
    with evaluation_mode(model, guide):
        xb = x.to(device)
        z = poutine.trace(guide).get_trace(xb).nodes[LATENT_SITE]["value"]
        recon = model.likelihood(z).mean.cpu().numpy()
    ncols = min(ncols, len(x))
    fig = _grid_figure([("data x", x.cpu().numpy()), ("reconstruction E[x | z], z ~ q(z | x)", recon)], shape, ncols)
    return _save(fig, path)


def plot_samples(model, path, num_samples: int = 64, image_shape=None, ncols: int = 8) -> Figure:
    """A grid of E[x | z] for z ~ p(z) (``model.sample``); ``image_shape`` as in ``plot_reconstructions``."""
    check_positive_int(num_samples, "num_samples")
    if not hasattr(model, "sample"):
        raise ValueError(f"{type(model).__name__} has no sample(n) method to draw images from")
    shape = _image_shape(model.x_dim, image_shape, model)
    with evaluation_mode(model):
        images = model.sample(num_samples).cpu().numpy()
    fig = _grid_figure([("model samples E[x | z], z ~ p(z)", images)], shape, min(ncols, num_samples))
    return _save(fig, path)


__all__ = [
    "plot_aggregate_posterior",
    "plot_khat",
    "plot_posterior_comparison",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "read_metrics",
]
