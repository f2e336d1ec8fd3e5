"""Closing measurements for the objectives (issue 4), on statically binarized MNIST, one CPU thread.

1. Train the AIR MNIST VAE (784-500-500-50 BernoulliVAE + Gaussian encoder) with the ELBO on a
   fixed 10,000-image training subset for a few epochs (a few hundred Adam steps).
2. Encoder-gradient variance of the IWAE estimators at that point: for a fixed batch, R repeated
   draws of the encoder's gradient with "standard", "dreg" and "stl"; the ratio of total variances
   (sum over all encoder parameters of the per-parameter variance) to the standard estimator's.
3. A small table on the first 200 MNIST test images: -IWAE-5000 (amortized guide), -IW-SVI
   (S Adam steps on IWAE-k per image, scored with IWAE-5000), -CUBO_2 (5000 samples), -ELBO,
   and the amortization gap.

    PYTHONPATH=. python experiments/objectives/measure.py   # writes experiments/objectives/RESULTS.md
"""
from __future__ import annotations

import time
from pathlib import Path

import pyro
import torch

from pyro_air import data
from pyro_air.evaluate import (
    amortization_gap,
    elbo,
    iw_svi,
    log_likelihood,
    mean_stderr,
    upper_bound,
)
from pyro_air.infer import IWAE_ELBO
from pyro_air.runs import build_run, vae_spec
from pyro_air.train import TrainConfig, fit

TRAIN_SIZE, EPOCHS, BATCH = 10_000, 4, 100
VAR_BATCH, VAR_DRAWS = 20, 50
TEST_POINTS, K_EVAL = 200, 5000
IW_SVI_STEPS, IW_SVI_K, IW_SVI_LR = 50, 50, 1e-2
GAP_STEPS = 50
OUT = Path(__file__).with_name("RESULTS.md")


def encoder_gradient_draws(objective, model, guide, x, draws):
    g = []
    for seed in range(draws):
        for p in [*model.parameters(), *guide.parameters()]:
            p.grad = None
        pyro.set_rng_seed(1000 + seed)
        objective.loss_and_grads(model, guide, x)
        g.append(torch.cat([p.grad.flatten() for p in guide.parameters()]))
    return torch.stack(g)


def variance_table(model, guide, x):
    lines = ["| K | estimator | total variance / standard | mean cosine to standard mean |", "|---|---|---|---|"]
    for k in (1, 5, 50):
        draws = {e: encoder_gradient_draws(IWAE_ELBO(k, e), model, guide, x, VAR_DRAWS) for e in ("standard", "dreg", "stl")}
        base_var = draws["standard"].var(0).sum()
        base_mean = draws["standard"].mean(0)
        for name, g in draws.items():
            cos = torch.nn.functional.cosine_similarity(g.mean(0), base_mean, dim=0).item()
            lines.append(f"| {k} | {name} | {(g.var(0).sum() / base_var).item():.3f} | {cos:.3f} |")
        print("\n".join(lines[-3:]), flush=True)
    return lines


def main():
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    spec = vae_spec(train_size=TRAIN_SIZE)
    model, guide, objective = build_run(spec, seed=0)
    train_x = data.load("mnist", "train", train_size=TRAIN_SIZE)
    test_x = data.load("mnist", "test")[:TEST_POINTS]
    config = TrainConfig(epochs=EPOCHS, batch_size=BATCH, lr=1e-3, seed=0, valid_num_samples=10, progress=False)
    fit(model, guide, objective, train_x, None, config)
    steps = EPOCHS * (TRAIN_SIZE // BATCH)
    t_train = time.perf_counter() - t0
    print(f"trained {steps} steps in {t_train:.0f} s", flush=True)

    var_lines = variance_table(model, guide, test_x[:VAR_BATCH])
    t_var = time.perf_counter() - t0 - t_train
    print(f"variances in {t_var:.0f} s", flush=True)

    torch.manual_seed(0)
    timings, cols = {}, {}

    def timed(name, fn):
        s = time.perf_counter()
        cols[name] = fn()
        timings[name] = time.perf_counter() - s
        print(name, mean_stderr(cols[name]), f"{timings[name]:.0f} s", flush=True)

    timed("IWAE-5000 (amortized)", lambda: log_likelihood(model, guide, test_x, num_samples=K_EVAL))
    timed("IW-SVI", lambda: iw_svi(model, guide, test_x, num_steps=IW_SVI_STEPS, k_train=IW_SVI_K, k_eval=K_EVAL,
                                   lr=IW_SVI_LR))
    timed("CUBO_2", lambda: upper_bound(model, guide, test_x, method="cubo", n=2, num_samples=K_EVAL))
    timed("ELBO (100 samples)", lambda: elbo(model, guide, test_x, num_samples=100))
    timed("amortization gap", lambda: amortization_gap(model, guide, test_x, num_steps=GAP_STEPS, lr=IW_SVI_LR))

    ll = cols["IWAE-5000 (amortized)"]
    rows = ["| estimate | value (nats, mean ± s.e. over images) | seconds |", "|---|---|---|"]
    for name, v in cols.items():
        shown = v if name == "amortization gap" else -v
        label = name if name == "amortization gap" else f"-{name}"
        rows.append(f"| {label} | {mean_stderr(shown)} | {timings[name]:.0f} |")
    rows.append(f"| IW-SVI - IWAE-5000 (paired) | {mean_stderr(cols['IW-SVI'] - ll)} | |")
    rows.append(f"| CUBO_2 - IWAE-5000 (paired) | {mean_stderr(cols['CUBO_2'] - ll)} | |")
    frac_below = (cols["CUBO_2"] < ll).float().mean().item()
    total = time.perf_counter() - t0
    text = f"""# Objectives: gradient variance and an MNIST sandwich (issue 4)

Produced by `PYTHONPATH=. python experiments/objectives/measure.py` (one CPU thread, `torch.set_num_threads(1)`),
total {total / 60:.1f} min on the shared machine.

Model: BernoulliVAE 784-500-500-50 (tanh) with the Gaussian encoder 784-500-500-(2x50), trained
with the ELBO (K = 1), Adam lr 1e-3 decayed to 1e-4, batch {BATCH}, on a fixed {TRAIN_SIZE}-image
subset of statically binarized MNIST for {EPOCHS} epochs = {steps} steps ({t_train:.0f} s). This is a
small budget: the model is far from converged, so the numbers are not comparable with the papers'.

## Encoder-gradient variance after {steps} steps

Fixed batch: the first {VAR_BATCH} test images; {VAR_DRAWS} independent draws of the encoder's gradient
(all {sum(p.numel() for p in guide.parameters())} parameters) per estimator and K. Ratio = sum over
parameters of the per-parameter variance, divided by the standard estimator's. The last column is the
cosine between the estimator's mean gradient and the standard estimator's mean gradient (both noisy
with {VAR_DRAWS} draws; STL for K > 1 is biased by construction, Tucker et al. 2018).

{chr(10).join(var_lines)}

## First {TEST_POINTS} MNIST test images

IW-SVI: {IW_SVI_STEPS} Adam steps (lr {IW_SVI_LR}) on IWAE-{IW_SVI_K} per image from the amortized q(z|x),
then IWAE-{K_EVAL}. CUBO_2: {K_EVAL} samples from the amortized guide. Amortization gap: ELBO of a
per-image diagonal Gaussian ({GAP_STEPS} Adam steps on a 10-sample ELBO) minus the amortized ELBO, both
with 100 samples.

{chr(10).join(rows)}

CUBO_2 estimate below the IWAE-5000 estimate on {100 * frac_below:.0f}% of the images (a CUBO estimate
below a lower bound shows that {K_EVAL} samples do not estimate E_q[w^2] there: the estimate is biased
down; see `pyro_air/evaluate/upper_bound.py`).
"""
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
