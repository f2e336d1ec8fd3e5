"""Outside-style models x objectives and evaluators (issue 31): every cell agrees with stock Pyro or
a closed form, or refuses in one line — never a traceback from deep inside, never a silently
different number. The models are in ``tests/outside_models.py``."""
import math

import pyro
import pytest
import torch
from pyro.infer import RenyiELBO as PyroRenyiELBO
from pyro.infer import Trace_ELBO

from pyro_air import diagnostics, evaluate, infer
from pyro_air.infer.log_weights import extend_model
from pyro_air.infer.structure import model_structure
from tests import outside_models as om

N = 4


def _grads(case, elbo, args, seed=0):
    """(loss, {param name: grad}) of one ``loss_and_grads`` from a fresh param store and seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    with pyro.poutine.trace(param_only=True) as tr:
        loss = elbo.loss_and_grads(case.model, case.guide, *args)
    params = {name: site["value"].unconstrained() for name, site in tr.trace.nodes.items()}
    grads = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    for p in params.values():
        p.grad = None
    return loss, grads


def _assert_same(a, b, rtol=1e-5):
    loss_a, grads_a = a
    loss_b, grads_b = b
    assert loss_a == pytest.approx(loss_b, rel=rtol, abs=1e-5)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=rtol, atol=1e-5), name


def _nesting(case, args):
    return model_structure(extend_model(case.model, case.guide), case.guide, args, {}).max_plate_nesting


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_the_data_plate_is_found_by_what_it_holds(name):
    case = om.build(name)
    assert model_structure(case.model, case.guide, case.data(N), {}).data_plate == case.data_plate


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_elbo_gives_trace_elbos_loss_and_gradients(name):
    case = om.build(name)
    args = case.data(N)
    _assert_same(_grads(case, infer.MonteCarloELBO(), args), _grads(case, Trace_ELBO(), args))


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_elbo_with_particles_gives_trace_elbos_on_the_same_draws(name):
    case = om.build(name)
    args = case.data(N)
    if case.broadcasts:
        stock = Trace_ELBO(num_particles=3, vectorize_particles=True, max_plate_nesting=_nesting(case, args) + 1)
    else:   # the fallback runs one particle at a time, as Trace_ELBO does by default
        stock = Trace_ELBO(num_particles=3)
    _assert_same(_grads(case, infer.MonteCarloELBO(num_particles=3), args), _grads(case, stock, args))


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("name", [n for n in om.CASE_NAMES if n not in ("factor", "mixture")])
def test_iw_family_on_one_datapoint_gives_pyros_renyi_bound(name, alpha):
    """With one datapoint the per-datapoint bound is Pyro's (joint) Rényi bound on the same draws."""
    case = om.build(name)
    args = case.data(1)
    ours = infer.IWAE_ELBO(num_particles=4) if alpha == 0 else infer.RenyiELBO(alpha=alpha, num_particles=4)
    if case.broadcasts:
        stock = PyroRenyiELBO(alpha=alpha, num_particles=4, vectorize_particles=True,
                              max_plate_nesting=_nesting(case, args) + 1)
    else:
        stock = PyroRenyiELBO(alpha=alpha, num_particles=4)
    _assert_same(_grads(case, ours, args), _grads(case, stock, args), rtol=1e-4)


OBJECTIVES = {
    "iwae-dreg": lambda: infer.IWAE_ELBO(num_particles=3, estimator="dreg"),
    "iwae-stl": lambda: infer.IWAE_ELBO(num_particles=3, estimator="stl"),
    "renyi-neg": lambda: infer.RenyiELBO(alpha=-0.5, num_particles=3),
    "cubo": lambda: infer.CUBO(num_particles=3),
    "miwae": lambda: infer.MIWAE_ELBO(num_groups=2, group_size=2),
    "piwae": lambda: infer.PIWAE_ELBO(num_groups=2, group_size=2),
    "ciwae": lambda: infer.CIWAE_ELBO(beta=0.5, num_particles=3),
    "infovae": lambda: infer.InfoVAE_ELBO(lam=10.0),
    "free-bits": lambda: infer.FreeBitsELBO(free_bits=0.1, per_dimension=False, kl="sample"),
}
REFUSED = {  # (case, objective) -> what the one-line refusal must name
    **{("mixture", o): "'c'" for o in OBJECTIVES},
    **{("factor", o): "'mu'" for o in ("cubo", "renyi-neg", "infovae", "free-bits")},
    **{(n, "infovae"): "code" for n in ("sequential", "constrained", "no_broadcast")},
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_every_objective_trains_or_refuses_in_one_line(name, objective):
    case = om.build(name)
    args = case.data(N)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    elbo = OBJECTIVES[objective]()
    if (name, objective) in REFUSED:
        with pytest.raises(ValueError) as err:
            elbo.loss_and_grads(case.model, case.guide, *args)
        assert "\n" not in str(err.value) and REFUSED[(name, objective)] in str(err.value)
        return
    loss = elbo.loss_and_grads(case.model, case.guide, *args)
    assert math.isfinite(loss)
    grads = [p.grad for _, p in pyro.get_param_store().named_parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("broadcasts", [True, False])
def test_global_latents_with_exact_guides_give_log_p_x_exactly(broadcasts):
    """Factor model with a global mean: with q(mu) = p(mu | x) and q(z | x, mu) = p(z | x, mu), every
    draw's bound G + sum_b IW_b equals log p(x_1..N) (closed form), at any K, for IWAE and the ELBO;
    also for a guide that cannot broadcast (one run per particle: the K runs share the first run's mu,
    else the bound would mix K different draws of mu and miss log p(x))."""
    case = om.factor(exact_globals=True, broadcasts=broadcasts)
    (x,) = case.data(6)
    exact = om.factor_exact_log_px(x).item()
    for objective in (infer.IWAE_ELBO(num_particles=1), infer.IWAE_ELBO(num_particles=5),
                      infer.MonteCarloELBO(num_particles=3), infer.RenyiELBO(alpha=0.5, num_particles=4)):
        pyro.set_rng_seed(1)
        assert -objective.loss(case.model, case.guide, x) == pytest.approx(exact, rel=1e-5)


def test_global_latent_bound_is_log_p_x_minus_the_global_kl_and_unbiased_under_subsampling():
    """q(mu) off the posterior: E[IWAE-K loss] = -(log p(x) - KL(q(mu) || p(mu | x))) (the locals are
    exact), also when the data plate subsamples (num_data scaling of the per-datapoint sum)."""
    case = om.factor()
    (x,) = case.data(6)
    pyro.clear_param_store()
    pyro.param("mu_loc", torch.tensor([0.3, -0.2]))
    pyro.param("mu_scale", torch.tensor([0.5, 0.7]))
    post_loc, post_cov = om.exact_mu_posterior(x)
    q = torch.distributions.Normal(torch.tensor([0.3, -0.2]), torch.tensor([0.5, 0.7]))
    kl = torch.distributions.kl_divergence(torch.distributions.MultivariateNormal(q.loc, torch.diag(q.scale ** 2)),
                                           torch.distributions.MultivariateNormal(post_loc, post_cov)).item()
    expected = om.factor_exact_log_px(x).item() - kl
    objective = infer.IWAE_ELBO(num_particles=3)
    pyro.set_rng_seed(2)
    values = torch.tensor([-objective.loss(case.model, case.guide, x) for _ in range(1500)])
    assert abs(values.mean().item() - expected) < 4 * values.std().item() / math.sqrt(len(values))


def test_discrete_local_latent_is_evaluated_exactly_with_the_exact_guide():
    case = om.mixture(exact_guide=True)
    (x,) = case.data(8)
    log_px = evaluate.log_likelihood(case.model, case.guide, x, num_samples=64, seed=0)
    assert torch.allclose(log_px, om.mixture_exact_log_px(x), atol=1e-5)
    khat = diagnostics.psis_khat(case.model, case.guide, x, num_samples=100)
    assert torch.all(khat == 0.0)  # constant weights: a perfect proposal


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_evaluators_and_inference_data_on_every_model(name):
    case = om.build(name)
    args = case.data(N)
    data = args if len(args) > 1 else args[0]
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    iwae = evaluate.log_likelihood(case.model, case.guide, data, num_samples=40, seed=0)
    bound = evaluate.elbo(case.model, case.guide, data, num_samples=40, seed=0)
    assert iwae.shape == (N,) and torch.isfinite(iwae).all()
    assert iwae.sum() >= bound.sum() - 1e-4   # same draws: log-mean-exp >= mean, row by row
    idata = diagnostics.to_inference_data(case.model, case.guide, data, num_samples=30)
    assert set(idata.posterior.data_vars) == set(case.local_sites)
    for site in case.local_sites:
        assert idata.posterior[site].shape[:3] == (1, 30, N)
    if case.has_globals:
        with pytest.raises(ValueError, match="'mu'"):
            evaluate.upper_bound(case.model, case.guide, data, num_samples=10)


def test_a_user_data_plate_name_is_taken_and_a_wrong_one_refused():
    case = om.sequential()
    args = case.data(N)
    named = infer.IWAE_ELBO(num_particles=2, data_plate="z_minibatch")
    found = infer.IWAE_ELBO(num_particles=2)
    pyro.set_rng_seed(0)
    a = named.loss(case.model, case.guide, *args)
    pyro.set_rng_seed(0)
    assert found.loss(case.model, case.guide, *args) == a
    with pytest.raises(ValueError, match="no plate named 'data'.*z_minibatch"):
        infer.IWAE_ELBO(num_particles=2, data_plate="data").loss(case.model, case.guide, *args)


def test_the_particle_plate_never_takes_a_user_plates_name():
    case = om.renamed_vae("particles")
    args = case.data(N)
    weights = infer.IWAE_ELBO(num_particles=3).log_weights(case.model, case.guide, *args)
    assert weights.layout.particle_plate == "particles_1" and weights.log_w.shape == (3, N)


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_iw_svi_and_the_amortization_gap_from_any_guide(name):
    """Per-datapoint Gaussians in unconstrained space for every continuous local site
    (pyro_air.evaluate.local_guides); a discrete local latent is refused in one line."""
    case = om.build(name)
    args = case.data(N)
    data = args if len(args) > 1 else args[0]
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    if case.discrete:
        with pytest.raises(ValueError, match="'c' is discrete") as err:
            evaluate.iw_svi(case.model, case.guide, data, num_steps=2, k_train=2, k_eval=4)
        assert "\n" not in str(err.value)
        return
    log_px = evaluate.iw_svi(case.model, case.guide, data, num_steps=3, k_train=3, k_eval=10)
    gap = evaluate.amortization_gap(case.model, case.guide, data, num_steps=3, num_particles=2, elbo_samples=10)
    assert log_px.shape == gap.shape == (N,) and torch.isfinite(log_px).all() and torch.isfinite(gap).all()


AIS_REFUSED = {"factor": "'mu' lies outside", "mixture": "'c' is discrete", "no_broadcast": "cannot broadcast"}


@pytest.mark.parametrize("name", om.CASE_NAMES)
def test_ais_on_every_model_runs_or_refuses_in_one_line(name):
    """HMC on every continuous local latent in unconstrained space (pyro_air.evaluate.traced_target);
    accuracy against closed forms is in tests/test_traced_target.py."""
    case = om.build(name)
    args = case.data(N)
    data = args if len(args) > 1 else args[0]
    pyro.clear_param_store()
    if name in AIS_REFUSED:
        with pytest.raises(ValueError, match=AIS_REFUSED[name]) as err:
            evaluate.ais(case.model, case.guide, data, num_steps=3, num_chains=2, seed=0)
        assert "\n" not in str(err.value)
        if name == "no_broadcast":   # the model broadcasts: AIS from its prior runs
            assert torch.isfinite(evaluate.ais(case.model, "prior", data, num_steps=3, num_chains=2, seed=0)).all()
        return
    est = evaluate.ais(case.model, case.guide, data, num_steps=3, num_chains=2, seed=0)
    assert est.shape == (N,) and torch.isfinite(est).all()


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_score_function_terms_under_poutine_scale_match_trace_elbo(scale):
    """A discrete local latent under poutine.scale: the score term is not scaled a second time (the
    cost already carries the scale), so the gradients are Trace_ELBO's."""
    case = om.mixture()
    model, guide = pyro.poutine.scale(case.model, scale=scale), pyro.poutine.scale(case.guide, scale=scale)
    scaled = om.Case("mixture-scaled", model, guide, case.data)
    args = case.data(N)
    _assert_same(_grads(scaled, infer.MonteCarloELBO(num_particles=2), args),
                 _grads(scaled, Trace_ELBO(num_particles=2, vectorize_particles=True, max_plate_nesting=1), args))


def test_an_observation_outside_every_plate_does_not_hide_the_data_plate():
    """A conditioned global (an observed site outside every plate) does not vote for the data plate."""
    case = om.factor()
    (x,) = case.data(5)
    mu = torch.zeros(2)
    model = pyro.poutine.condition(case.model, data={"mu": mu})
    assert model_structure(model, lambda x: None, (x,), {}).data_plate == "batch"
