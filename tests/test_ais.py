"""AIS with HMC and the BDMC sandwich against closed forms (linear-Gaussian) and IWAE (a trained VAE).

Tolerances are stated next to each assertion; every run is seeded, so the numbers are fixed for a
given torch build and the margins cover Monte Carlo error at other seeds (checked at seeds 0-4
when the tests were written).
"""
import math

import pytest
import torch

from pyro_air import data
from pyro_air.compare import air_spec
from pyro_air.evaluate import (
    ais,
    bdmc,
    beta_schedule,
    log_likelihood,
    reverse_ais,
    simulate,
)
from pyro_air.guides import ExactPosteriorGuide, HierarchicalGuide
from pyro_air.models import LinearGaussianModel
from pyro_air.runs import build_run
from pyro_air.train import TrainConfig, fit

STEPS = (1, 10, 100, 400)


def test_beta_schedules_run_from_zero_to_one():
    for schedule in ("sigmoid", "linear"):
        betas = beta_schedule(50, schedule)
        assert betas.shape == (51,)
        assert betas[0] == 0.0 and betas[-1] == 1.0
        assert (betas.diff() > 0).all()
    sig, lin = beta_schedule(50, "sigmoid"), beta_schedule(50, "linear")
    # the sigmoid schedule spends its steps at both ends: smaller first and last increments than linear
    assert sig.diff()[0] < lin.diff()[0] and sig.diff()[-1] < lin.diff()[-1]
    assert torch.equal(beta_schedule(1), torch.tensor([0.0, 1.0], dtype=torch.float64))


def _slack(errors: torch.Tensor) -> float:
    """Three standard errors of the mean over datapoints, plus 0.02 nats."""
    return 3 * errors.std().item() / math.sqrt(len(errors)) + 0.02


def test_ais_converges_to_the_exact_log_likelihood(linear_gaussian):
    """From the prior, AIS - log p(x) over 16 datapoints (16 chains, 5 leapfrog steps, seed 0):

        T     mean|err|  mean err
        1       2.85     -2.35      (IWAE-16 with the prior as proposal)
        10      0.42     -0.13
        100     0.09     +0.03
        400     0.05     +0.02

    Asserted: mean|err| falls with T and is < 0.12 nats at T = 400 (seeds 0-2: 0.045-0.086); the
    mean error at T = 400 is within three standard errors (+ 0.02) of 0."""
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x).detach()
    table, errors = {}, {}
    for steps in STEPS:
        est, diag = ais(model, "prior", x, num_steps=steps, num_chains=16, num_leapfrog=5, seed=0,
                        return_diagnostics=True)
        assert est.shape == (len(x),) and torch.isfinite(est).all()
        errors[steps] = est - exact
        table[steps] = (errors[steps].abs().mean().item(), errors[steps].mean().item(), diag.acceptance.mean().item())
    print("\nT     mean|err|  mean err  acceptance")
    for steps, (abs_err, err, acc) in table.items():
        print(f"{steps:<5} {abs_err:9.4f} {err:9.4f} {acc:10.3f}")
    abs_errs = [table[s][0] for s in STEPS]
    assert abs_errs[0] > 1.0
    assert abs_errs[0] > abs_errs[1] > abs_errs[2] > abs_errs[3]
    assert abs_errs[3] < 0.12
    assert abs(table[400][1]) < _slack(errors[400])
    assert abs(table[400][2] - 0.65) < 0.1  # the tuned step sizes reach the target acceptance


def test_ais_from_the_exact_posterior_is_exact(linear_gaussian, exact_guide):
    """q0 = p(z | x): every increment is (beta_t - beta_{t-1}) log p(x), for any chain."""
    model, x = linear_gaussian
    est = ais(model, exact_guide, x, num_steps=5, num_chains=3, num_leapfrog=2, seed=0)
    assert torch.allclose(est, model.exact_log_likelihood(x).detach(), atol=1e-4)


def test_ais_from_a_guide_beats_its_iwae_and_tightens(linear_gaussian):
    model, x = linear_gaussian
    poor = ExactPosteriorGuide(model, scale_factor=2.0, loc_shift=0.5)
    exact = model.exact_log_likelihood(x).detach()
    iwae_err = (exact - log_likelihood(model, poor, x, num_samples=8, seed=0)).mean()
    ais_errors = exact - ais(model, poor, x, num_steps=100, num_chains=8, num_leapfrog=5, seed=0)
    assert iwae_err > 0.3  # the poor guide's IWAE-8 is loose
    # AIS is unbiased for p(x), so its mean error is zero within Monte Carlo error (three standard
    # errors over 16 points, ~0.1 nats here), and far below the IWAE-8 gap
    assert abs(ais_errors.mean()) < _slack(ais_errors) < 0.5 * iwae_err


def test_bdmc_brackets_the_exact_value_and_narrows():
    """On 16 points simulated from a linear-Gaussian model (log p(x) exact; 16 chains, seed 0):

        T     lower-exact  upper-exact  width
        1       -1.46        +2.20      3.66
        10      -0.43        +1.01      1.44
        100     -0.02        +0.04      0.06
        400     +0.00        +0.01      0.00

    Asserted: mean lower <= exact and mean upper >= exact, each up to three standard errors
    (+ 0.02 nats) of Monte Carlo slack; the width falls with T and is within 0.1 of 0 at T = 400."""
    model = LinearGaussianModel(x_dim=5, z_dim=2, noise_scale=0.5, seed=3)
    simulated = simulate(model, 16, seed=0)
    exact = model.exact_log_likelihood(simulated[0]).detach()
    widths = {}
    print("\nT     lower-exact  upper-exact  width")
    for steps in STEPS:
        res = bdmc(model, 16, num_steps=steps, num_chains=16, num_leapfrog=5, simulated=simulated, seed=0)
        lo, up = res.lower - exact, res.upper - exact
        widths[steps] = res.width.mean().item()
        print(f"{steps:<5} {lo.mean():11.4f} {up.mean():12.4f} {widths[steps]:6.4f}")
        assert lo.mean() < _slack(lo) and up.mean() > -_slack(up)
    assert widths[1] > widths[10] > widths[100]
    assert widths[1] > 1.0 and abs(widths[400]) < 0.1


def test_reverse_ais_with_one_exact_draw_per_chain_is_an_upper_bound(linear_gaussian):
    model, x = linear_gaussian
    exact = model.exact_log_likelihood(x).detach()
    z = model.exact_posterior(x).sample((8,)).detach()  # [C, N, z_dim]
    upper = reverse_ais(model, "prior", x, z, num_steps=10, num_chains=8, num_leapfrog=5, seed=0)
    assert upper.shape == (len(x),)
    assert (upper - exact).mean() > 0.3  # T = 10 from the prior: a clearly loose upper bound (seed 0: 1.0)
    tight = reverse_ais(model, "prior", x, z, num_steps=100, num_chains=8, num_leapfrog=5, seed=0)
    assert -_slack(tight - exact) < (tight - exact).mean() < 0.2 * (upper - exact).mean()


def test_seeded_runs_repeat_and_leave_the_caller_rng_alone(linear_gaussian):
    model, x = linear_gaussian
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = ais(model, "prior", x, num_steps=5, num_chains=4, num_leapfrog=2, seed=7, batch_size=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = ais(model, "prior", x, num_steps=5, num_chains=4, num_leapfrog=2, seed=7, batch_size=5)
    c = ais(model, "prior", x, num_steps=5, num_chains=4, num_leapfrog=2, seed=8, batch_size=5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the model is fixed: parameters unchanged, still trainable, no gradients left behind
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_bad_input_is_refused_with_a_clear_message(linear_gaussian):
    model, x = linear_gaussian
    cases = [
        ({"num_steps": 0}, "num_steps"),
        ({"num_chains": 0}, "num_chains"),
        ({"num_leapfrog": 0}, "num_leapfrog"),
        ({"step_size": -0.1}, "step_size"),
        ({"target_accept": 1.0}, "target_accept"),
        ({"schedule": "cosine"}, "schedule"),
    ]
    for kwargs, word in cases:
        with pytest.raises(ValueError, match=word):
            ais(model, "prior", x, **{"num_steps": 2, "num_chains": 2, **kwargs})
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        ais(model, "prior", x[0], num_steps=2, num_chains=2)
    with pytest.raises(ValueError, match="x_dim=5"):
        ais(model, "prior", torch.zeros(3, 4), num_steps=2, num_chains=2)
    with pytest.raises(ValueError, match="'prior' or a guide"):
        ais(model, "posterior", x, num_steps=2, num_chains=2)
    with pytest.raises(ValueError, match="posterior_z"):
        reverse_ais(model, "prior", x, torch.zeros(len(x) + 1, 2), num_steps=2, num_chains=2)
    hierarchical = HierarchicalGuide(x_dim=5, z_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="start from the prior"):
        ais(model, hierarchical, x, num_steps=2, num_chains=2)


# -- a small trained VAE ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_vae():
    """784-64-10 VAE trained for 30 epochs on 500 MNIST images (~4 s on one thread), 16 test images."""
    torch.manual_seed(0)
    model, guide, objective = build_run(air_spec("vae", z_dim=10, hidden=(64,), train_size=500))
    fit(model, guide, objective, data.load("mnist", train_size=500), None,
        TrainConfig(epochs=30, batch_size=50, lr=3e-3, progress=False))
    return model, guide, data.load("mnist", "test")[:16]


def test_ais_beats_iwae_at_matched_cost_and_agrees_with_iwae_5000(trained_vae):
    """Cost in log p(x, z) evaluations: AIS with T steps, C chains and L leapfrog steps evaluates
    C * T * (L + 1) gradients; counting a gradient as 3 evaluations (forward + backward), IWAE gets
    k = 3 C T (L + 1) samples (T = 100, C = 8, L = 5: k = 14400). Tolerances: AIS >= IWAE-k on
    average (seed 0: +0.2 nats); AIS and
    IWAE-5000 agree within 0.5 nats on average and 3 nats per image (both are lower bounds, and
    IWAE-5000 is the looser one here)."""
    model, guide, x = trained_vae
    steps, chains, leapfrog = 100, 8, 5
    est = ais(model, guide, x, num_steps=steps, num_chains=chains, num_leapfrog=leapfrog, seed=0)
    k = 3 * chains * steps * (leapfrog + 1)
    iwae_k = log_likelihood(model, guide, x, num_samples=k, seed=1)
    iwae_5000 = log_likelihood(model, guide, x, num_samples=5000, seed=2)
    print(f"\nAIS T={steps} C={chains} L={leapfrog}: {est.mean():.3f}; IWAE-{k}: {iwae_k.mean():.3f}; "
          f"IWAE-5000: {iwae_5000.mean():.3f}")
    assert (est - iwae_k).mean() > 0
    assert abs((est - iwae_5000).mean()) < 0.5
    assert (est - iwae_5000).abs().max() < 3.0


def test_bdmc_on_a_trained_vae_sandwiches(trained_vae):
    """On simulated MNIST-model data, from the guide: the sandwich narrows with T and is finite."""
    model, guide, _ = trained_vae
    simulated = simulate(model, 8, seed=0)
    assert ((simulated[0] == 0) | (simulated[0] == 1)).all()
    short = bdmc(model, 8, num_steps=5, num_chains=4, num_leapfrog=5, guide_or_prior=guide, simulated=simulated)
    long = bdmc(model, 8, num_steps=50, num_chains=4, num_leapfrog=5, guide_or_prior=guide, simulated=simulated)
    assert math.isfinite(long.width.mean().item())
    assert short.width.mean() > long.width.mean() > -0.1
    assert long.lower.mean() >= short.lower.mean() - 0.1 and long.upper.mean() <= short.upper.mean() + 0.1


# -- CLI --------------------------------------------------------------------------------------------

def test_cli_evaluate_with_ais_bdmc_and_gaps(tiny_cli_run, tmp_path, capsys):
    from pyro_air.cli import main

    plot = tmp_path / "gaps.png"
    code = main(["evaluate", str(tiny_cli_run), "--num-samples", "10", "--max-points", "4", "--splits", "train", "test",
                 "--ais-steps", "5", "--ais-chains", "2", "--ais-leapfrog", "2", "--bdmc", "--bdmc-points", "3",
                 "--gaps", "--gap-steps", "5", "--gap-plot", str(plot), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "-log p(x) (AIS)" in out and "BDMC on 3 points" in out and "sandwich width" in out
    assert "approx. gap" in out and "train (n=4)" in out and "test (n=4)" in out
    assert plot.stat().st_size > 1000 and str(plot) in out


def test_cli_refuses_gaps_without_ais_steps(tiny_cli_run, capsys):
    from pyro_air.cli import main

    assert main(["evaluate", str(tiny_cli_run), "--gaps", "--no-progress"]) == 2
    assert "--ais-steps" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_cli_run), "--ais-steps", "3", "--ais-chains", "0", "--no-progress"]) == 2
    assert "--ais-chains must be >= 1" in capsys.readouterr().err
