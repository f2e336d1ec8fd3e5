"""Annealed importance sampling (AIS) with HMC transitions, and bidirectional Monte Carlo (BDMC).

AIS (Neal 2001, "Annealed importance sampling", Statistics and Computing 11). For one datapoint x,
anneal from a normalized initial density q0(z) (the prior p(z), or the guide's q(z | x)) to the
unnormalized posterior p(x, z), whose normalizer is p(x), along the geometric path

    f_t(z) = q0(z)^(1 - beta_t) p(x, z)^beta_t,        0 = beta_0 < beta_1 < ... < beta_T = 1.

Draw z_0 ~ q0 and z_t ~ K_t(. | z_{t-1}) for t = 1 .. T-1, with K_t a Markov kernel that leaves
f_t / Z_t invariant (here HMC). The importance weight of the chain (Neal 2001, Eq. 3-4) is

    log w = sum_{t=1..T} log f_t(z_{t-1}) - log f_{t-1}(z_{t-1})
          = sum_{t=1..T} (beta_t - beta_{t-1}) [log p(x, z_{t-1}) - log q0(z_{t-1})],

and E[w] = p(x). With C independent chains per datapoint the estimate is
log (1/C) sum_c w_c, a stochastic lower bound of log p(x) (Jensen) that tends to log p(x) as T
or C grows. With T = 1 no transition runs and the estimate is IWAE-C with proposal q0.

Reverse AIS and BDMC (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using
bidirectional Monte Carlo"; Grosse et al. 2016; Wu, Burda, Salakhutdinov & Grosse 2017, "On the
quantitative analysis of decoder-based generative models", section 4). Run the same chain
backwards: start at an exact posterior sample z'_0 ~ p(z | x) (for data simulated from the model,
x ~ p(x | z*), z* ~ p(z), the z* that generated x is one) and go from beta = 1 down to 0,

    log w_rev = sum_{t=1..T} (beta_{T-t} - beta_{T-t+1}) [log p(x, z'_{t-1}) - log q0(z'_{t-1})],
    z'_t ~ K_{T-t}(. | z'_{t-1}),

so E[w_rev] = 1 / p(x) (the reverse kernels equal the forward ones because HMC is reversible), and
-log (1/C) sum_c w_rev,c is a stochastic *upper* bound of log p(x). On simulated data the two runs
sandwich log p(x); the width upper - lower bounds the error of either, and both converge as T grows.
In code the reverse run is the forward recursion with the reversed schedule.

Transitions: one HMC step per annealing step (Neal 2011, "MCMC using Hamiltonian dynamics"): a
fresh momentum r ~ N(0, I), ``num_leapfrog`` steps of Pyro's ``pyro.ops.integrator.velocity_verlet``
on the potential U_t(z) = -log f_t(z) and kinetic energy |r|^2 / 2, then a Metropolis accept /
reject per chain. All datapoints of a chunk and all chains run at once (tensors [C, B, D]); the
potential is a sum over chains and datapoints, so one backward pass gives every chain's gradient.

Step size: one per datapoint and annealing step (shared by the datapoint's C chains), tuned toward
the acceptance rate ``target_accept`` (0.65, as Wu et al. 2017) by the constant-gain update

    log eps_b <- log eps_b + adapt_rate * (mean_c a_{c,b} - target_accept),

a_{c,b} = min(1, exp(-Delta H)) the acceptance probability of chain c after a transition. AIS is
exact only if every kernel K_t is fixed independently of the chains it moves; a step size adapted
from the same chains breaks this, and the resulting bias is upward and of order 1/C (measured on
the linear-Gaussian model, 400 points, T = 400: +0.044 nats at C = 4 and +0.012 at C = 8 above the
exact value, where fixed step sizes give -0.029 and -0.015). So by default (``adapt="pilot"``) a
pilot run of ``pilot_chains`` separate chains, started from q0, tunes the step-size schedule
eps_b(t) for every datapoint b and step t; the estimate then runs fresh chains with that frozen
schedule (cost: ``pilot_chains / num_chains`` more transitions). The reverse chain uses the same
forward pilot (started from q0, never from the posterior sample, which would make the kernels
depend on the chain's start). ``adapt="online"`` adapts on the estimating chains themselves, as
Wu et al. 2017 do (cheaper, biased up by O(1/C)); ``adapt="none"`` keeps ``step_size`` fixed.

Pyro's ``DualAveraging`` is not used for the tuning because it targets one *stationary*
distribution: its iterate averages with weights decaying like t^-kappa and freezes, whereas along
the annealing path the best step size drifts by orders of magnitude (from q0's scale to the
posterior's), so a constant gain that keeps tracking fits better (Wu et al. 2017 use a constant
multiplicative rule for the same reason).

Schedules: ``"sigmoid"`` (Grosse et al. 2015, section 6; Wu et al. 2017): beta_t proportional to
sigmoid(delta (2 t / T - 1)), shifted and scaled so beta_0 = 0 and beta_T = 1, delta = 4, which
spends more steps near both ends; ``"linear"``: beta_t = t / T.

Results are one number per datapoint (Tensor[N], DESIGN.md contract 3), computed in chunks of
datapoints: memory is that of one chunk's [C, B, D] tensors, whatever ``num_steps``.

Any Pyro model: a model without the ``prior`` / ``likelihood`` methods of the project's models is
annealed by HMC on all its continuous local latents in unconstrained space, the log joint read from
its trace (``pyro_air.evaluate.traced_target``); x may then be a tuple of the model's data tensors,
with ``model_kwargs`` and ``data_plate`` passed on. The project's models keep their direct path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.ops.integrator import velocity_verlet
from pyro.poutine.util import site_is_subsample

from pyro_air.support.progress import tqdm
from pyro_air.core.seeds import derive_seed, seeded
from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.evaluate.chunking import (
    DEFAULT_CHUNK_ELEMENTS,
    as_data,
    batches,
    evaluation_mode,
    module_device,
    row_size,
    slice_data,
)
from pyro_air.evaluate.traced_target import TracedAnnealingTarget, simulate_data

SCHEDULES = ("sigmoid", "linear")
PRIOR = "prior"
MIN_STEP_SIZE, MAX_STEP_SIZE = 1e-6, 10.0


def beta_schedule(num_steps: int, schedule: str = "sigmoid", delta: float = 4.0) -> torch.Tensor:
    """The inverse temperatures beta_0 = 0 < ... < beta_T = 1 (T = ``num_steps``), float64 [T + 1]."""
    check_positive_int(num_steps, "num_steps")
    t = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64)
    if schedule == "linear":
        return t
    if schedule == "sigmoid":
        check_positive(delta, "delta (the steepness of the sigmoid schedule)")
        s = torch.sigmoid(delta * (2.0 * t - 1.0))
        betas = (s - s[0]) / (s[-1] - s[0])
        betas[0], betas[-1] = 0.0, 1.0
        return betas
    raise ValueError(f"unknown annealing schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


class AnnealingTarget:
    """log q0(z) and l(z) = log p(x, z) - log q0(z) for one chunk x [B, D], z [C, B, z_dim]."""

    def __init__(self, model, initial, xb: torch.Tensor):
        self.model, self.xb = model, xb
        self.from_prior = isinstance(initial, str)
        self.q0 = model.prior(len(xb), xb) if self.from_prior else _guide_distribution(initial, xb)

    def sample(self, num_chains: int) -> torch.Tensor:
        return self.q0.sample((num_chains,)).detach()

    def parts(self, z: torch.Tensor):
        log_q0 = self.q0.log_prob(z)
        log_lik = self.model.likelihood(z).log_prob(self.xb)
        if self.from_prior:  # l = log p(x | z): no cancellation of log p(z) against itself
            return log_q0, log_lik
        return log_q0, self.model.prior(len(self.xb), self.xb).log_prob(z) + log_lik - log_q0


def _guide_distribution(guide, xb: torch.Tensor):
    """q(z | x) of a guide, read from its trace at site "z" (batch shape [B], event shape [z_dim])."""
    if not callable(guide):
        raise TypeError(f"the initial distribution must be 'prior' or a Pyro guide, got {type(guide).__name__}")
    trace = poutine.trace(guide).get_trace(xb)
    latent = [name for name, site in trace.nodes.items()  # latent sample sites, plate subsamples excluded
              if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)]
    if "z" not in latent:
        raise ValueError(f"the guide {type(guide).__name__} has no sample site 'z' (sites: {latent}); "
                         "AIS starts from q(z | x) at site 'z'")
    if latent != ["z"]:
        raise ValueError(
            f"AIS needs q(z | x) in closed form, but the guide {type(guide).__name__} samples other latent "
            f"sites too ({', '.join(n for n in latent if n != 'z')}), so its marginal q(z | x) has no density; "
            "start from the prior instead (guide_or_prior='prior')"
        )
    q = trace.nodes["z"]["fn"]
    if tuple(q.batch_shape) != (len(xb),):
        raise ValueError(f"q(z | x) at site 'z' has batch shape {list(q.batch_shape)}; expected [{len(xb)}] "
                         "(one distribution per datapoint, event dims via .to_event(1))")
    return q


def _hmc_transition(target, z, log_q0, ell, beta: float, step_size: torch.Tensor, num_leapfrog: int):
    """One HMC step on f_beta for every chain; returns the new state and the acceptance probabilities [C, B]."""
    last = {}

    def potential(sites):
        lq, el = target.parts(sites["z"])
        last["parts"] = lq, el
        return -(lq + beta * el).sum()

    r = torch.randn_like(z)
    with torch.enable_grad():
        z_new, r_new, _, _ = velocity_verlet({"z": z}, {"z": r}, potential, lambda p: p,
                                             step_size.view(1, -1, 1), num_leapfrog)
    lq_new, el_new = (t.detach() for t in last["parts"])
    h_old = -(log_q0 + beta * ell) + 0.5 * r.pow(2).sum(-1)
    h_new = -(lq_new + beta * el_new) + 0.5 * r_new["z"].pow(2).sum(-1)
    log_accept = (h_old - h_new).clamp(max=0.0)
    log_accept = torch.where(torch.isfinite(log_accept), log_accept, torch.full_like(log_accept, -math.inf))
    accept = torch.rand_like(log_accept).log() < log_accept
    z = torch.where(accept.unsqueeze(-1), z_new["z"].detach(), z)
    log_q0 = torch.where(accept, lq_new, log_q0)
    ell = torch.where(accept, el_new, ell)
    return z, log_q0, ell, log_accept.exp()


def _anneal(target, z, betas: torch.Tensor, num_leapfrog: int, step_size: float, target_accept: float,
            adapt_rate: float, schedule: torch.Tensor | None = None, on_step=None):
    """The AIS recursion over ``betas`` from the chains' states z [C, B, z_dim].

    ``schedule`` [T - 1, B]: frozen step sizes, one per transition and datapoint; without it the
    step size starts at ``step_size`` and adapts online (``adapt_rate`` 0: stays fixed). Returns
    log w [C, B] (log p(x) estimates for an increasing schedule, log 1/p(x) for a decreasing one),
    the mean acceptance probability [B] and the step sizes used [T - 1, B].
    """
    with torch.no_grad():
        log_q0, ell = (t.detach() for t in target.parts(z))
    batch = ell.shape[1]
    log_w = torch.zeros_like(ell)
    log_eps = torch.full((batch,), math.log(step_size), dtype=z.dtype, device=z.device)
    accept_sum = torch.zeros(batch, dtype=z.dtype, device=z.device)
    used = []
    num_transitions = len(betas) - 2
    for t in range(1, len(betas)):
        log_w = log_w + (betas[t] - betas[t - 1]).item() * ell
        if t < len(betas) - 1:
            eps = schedule[t - 1] if schedule is not None else log_eps.exp()
            used.append(eps)
            z, log_q0, ell, accept = _hmc_transition(target, z, log_q0, ell, betas[t].item(), eps, num_leapfrog)
            rate = accept.mean(0)
            accept_sum += rate
            if schedule is None and adapt_rate > 0:
                log_eps = (log_eps + adapt_rate * (rate - target_accept)).clamp(
                    math.log(MIN_STEP_SIZE), math.log(MAX_STEP_SIZE))
        if on_step is not None:
            on_step()
    mean_accept = accept_sum / num_transitions if num_transitions else torch.full_like(accept_sum, math.nan)
    used = torch.stack(used) if used else log_eps.new_empty((0, batch))
    return log_w, mean_accept, used


@dataclass
class AISDiagnostics:
    """Per datapoint: the HMC acceptance probability of the estimating chains averaged over chains
    and transitions, the step size of their last transition, and the effective sample size of
    the C chains' weights, (sum w)^2 / sum w^2 (between 1 and C; small = a few chains dominate)."""
    acceptance: torch.Tensor
    step_size: torch.Tensor
    ess: torch.Tensor


ADAPT_MODES = ("pilot", "online", "none")


@dataclass
class _HMCSettings:
    num_leapfrog: int
    step_size: float
    target_accept: float
    adapt_rate: float
    adapt: str
    pilot_chains: int


def uses_traces(model) -> bool:
    """Whether AIS reads the model's log joint from its traces (a model without ``prior`` and
    ``likelihood``, i.e. not one of the project's ``LatentVariableModel``s)."""
    return not (callable(getattr(model, "prior", None)) and callable(getattr(model, "likelihood", None)))


def _check_common(model, x, num_steps, num_chains, settings: _HMCSettings, schedule) -> None:
    check_positive_int(num_steps, "num_steps (the number of annealing steps T)")
    check_positive_int(num_chains, "num_chains (independent AIS chains per datapoint)")
    check_positive_int(settings.num_leapfrog, "num_leapfrog (leapfrog steps per HMC transition)")
    check_positive(settings.step_size, "step_size (the initial HMC step size)")
    check_positive(settings.adapt_rate, "adapt_rate", allow_zero=True)
    check_positive_int(settings.pilot_chains, "pilot_chains (chains of the step-size pilot run)")
    if not 0.0 < float(settings.target_accept) < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1) (e.g. 0.65), got {settings.target_accept!r}")
    if settings.adapt not in ADAPT_MODES:
        raise ValueError(f"unknown step-size adaptation {settings.adapt!r}; choose one of {', '.join(ADAPT_MODES)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown annealing schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if uses_traces(model):
        as_data(x)
        return
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a tensor of shape [N, D], got "
                         f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.shape[1] != getattr(model, "x_dim", x.shape[1]):
        raise ValueError(f"x has {x.shape[1]} columns but the model expects x_dim={model.x_dim}")
    if getattr(model, "validate_inputs", False):
        model.validate(x)  # once, up front: the per-call checks are off inside evaluation_mode


def _default_batch_size(n: int, num_chains: int, x_dim: int) -> int:
    return max(1, min(n, DEFAULT_CHUNK_ELEMENTS // max(1, num_chains * x_dim)))


def _chunk(target, betas, num_chains, settings: _HMCSettings, start_z, on_step):
    """One chunk of datapoints: the optional pilot run, then the estimating chains; log w [C, B]."""
    forward_betas = betas if start_z is None else betas.flip(0)
    schedule = None
    if settings.adapt == "pilot":  # tune the step sizes on separate chains from q0, then freeze them
        pilot_z = target.sample(settings.pilot_chains)
        _, _, schedule = _anneal(target, pilot_z, forward_betas, settings.num_leapfrog, settings.step_size,
                                 settings.target_accept, settings.adapt_rate, on_step=on_step)
        if start_z is not None:
            schedule = schedule.flip(0)  # transition j of the reverse run is at beta_{T-j}
    z = target.sample(num_chains) if start_z is None else start_z
    adapt_rate = settings.adapt_rate if settings.adapt == "online" else 0.0
    return _anneal(target, z, betas, settings.num_leapfrog, settings.step_size, settings.target_accept,
                   adapt_rate, schedule=schedule, on_step=on_step)


def _run_chunks(model, initial, x, betas, num_chains, settings: _HMCSettings, batch_size, progress, seed, desc,
                start_z=None, model_kwargs=None, data_plate=None):
    data = as_data(x)
    traced = uses_traces(model)
    n = len(data[0])
    device = module_device(model, default=data[0].device)
    batch_size = batch_size or _default_batch_size(n, num_chains, row_size(data))
    check_positive_int(batch_size, "batch_size")
    modules = [m for m in [model] if isinstance(m, torch.nn.Module)] + (
        [] if isinstance(initial, str) else [m for m in [initial] if isinstance(m, torch.nn.Module)])
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    estimates, acceptance, step_sizes, ess = (torch.empty(n) for _ in range(4))
    ranges = list(batches(n, batch_size))
    runs = 2 if settings.adapt == "pilot" else 1
    bar = tqdm(total=runs * len(ranges) * (len(betas) - 1), desc=desc, disable=not progress, leave=False)
    try:
        for p in params:  # gradients w.r.t. z only
            p.requires_grad_(False)
        with evaluation_mode(*modules), pyro.validation_enabled(False):
            for i, (start, stop) in enumerate(ranges):
                xb = slice_data(data, start, stop, device)
                with seeded(None if seed is None else derive_seed(seed, i), device):
                    if traced:
                        target = TracedAnnealingTarget(model, initial, xb, model_kwargs, data_plate)
                    else:
                        target = AnnealingTarget(model, initial, xb[0])
                    if start_z is None:
                        z = None
                    elif traced:   # {site: [N, ...]} exact posterior values, first dim the datapoint
                        z = target.flatten_values({k: v[start:stop].to(device) for k, v in start_z.items()}, num_chains)
                    else:
                        z = start_z[:, start:stop].to(device=device, dtype=xb[0].dtype).clone()
                    log_w, acc, eps = _chunk(target, betas, num_chains, settings, z, bar.update)
                lse = torch.logsumexp(log_w, 0)
                estimates[start:stop] = (lse - math.log(num_chains)).cpu()
                ess[start:stop] = (2 * lse - torch.logsumexp(2 * log_w, 0)).exp().cpu()
                acceptance[start:stop] = acc.cpu()
                step_sizes[start:stop] = (eps[-1] if len(eps) else torch.full_like(acc, settings.step_size)).cpu()
    finally:
        bar.close()
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return estimates, AISDiagnostics(acceptance, step_sizes, ess)


_HMC_DOC = """``num_leapfrog`` leapfrog steps per HMC transition (one transition per annealing step; it costs
    ``num_leapfrog + 1`` gradient evaluations of log p(x, z)); ``step_size`` the initial step size,
    tuned per datapoint toward acceptance ``target_accept`` with gain ``adapt_rate`` by ``adapt``:
    "pilot" (default: a separate run of ``pilot_chains`` chains tunes a per-step schedule that the
    estimate then uses frozen; exact AIS), "online" (adapt on the estimating chains; biased up by
    O(1/C)) or "none" (fixed step size). ``schedule``: "sigmoid" or "linear" betas.
    ``batch_size`` datapoints run at once (default: as many as fit 2**20 elements of [C, B, D]).
    ``seed``: datapoint chunk i draws from a stream seeded by ``derive_seed(seed, i)``, the caller's
    RNG untouched (None: the caller's stream). ``return_diagnostics``: also return
    ``AISDiagnostics``."""


def ais(model, guide_or_prior, x, num_steps: int = 1000, num_chains: int = 16,
        num_leapfrog: int = 10, step_size: float = 0.05, target_accept: float = 0.65, adapt_rate: float = 0.5,
        adapt: str = "pilot", pilot_chains: int = 4, schedule: str = "sigmoid", batch_size: int | None = None,
        progress: bool = False, seed: int | None = None, return_diagnostics: bool = False,
        model_kwargs: dict | None = None, data_plate: str | None = None):
    """AIS estimate of log p(x) per datapoint, Tensor[N] (module docstring; Neal 2001 Eq. 3-4).

    ``guide_or_prior``: ``"prior"`` anneals from p(z); a guide (any Pyro guide whose only latent
    site is "z", e.g. every ``AmortizedGuide``, run in eval mode) anneals from its q(z | x), which
    needs far fewer steps. ``num_steps`` = T (T = 1: IWAE-``num_chains`` with proposal q0),
    ``num_chains`` = C independent chains per datapoint. Any Pyro model and guide: module docstring.
    {hmc}
    """
    settings = _HMCSettings(num_leapfrog, step_size, target_accept, adapt_rate, adapt, pilot_chains)
    _check_common(model, x, num_steps, num_chains, settings, schedule)
    initial = _check_initial(guide_or_prior)
    betas = beta_schedule(num_steps, schedule)
    estimates, diagnostics = _run_chunks(model, initial, x, betas, num_chains, settings, batch_size, progress, seed,
                                         f"AIS, T={num_steps}, C={num_chains}", model_kwargs=model_kwargs,
                                         data_plate=data_plate)
    return (estimates, diagnostics) if return_diagnostics else estimates


def reverse_ais(model, guide_or_prior, x, posterior_z, num_steps: int = 1000,
                num_chains: int = 16, num_leapfrog: int = 10, step_size: float = 0.05, target_accept: float = 0.65,
                adapt_rate: float = 0.5, adapt: str = "pilot", pilot_chains: int = 4, schedule: str = "sigmoid",
                batch_size: int | None = None, progress: bool = False, seed: int | None = None,
                return_diagnostics: bool = False, model_kwargs: dict | None = None, data_plate: str | None = None):
    """Reverse AIS from exact posterior samples: a stochastic upper bound of log p(x), Tensor[N].

    ``posterior_z``: exact draws from p(z | x), [N, z_dim] (every chain of datapoint n starts at
    the same draw, which keeps E[w_rev] = 1 / p(x) for each chain) or [num_chains, N, z_dim]
    (one draw per chain). The estimate is  -log (1/C) sum_c w_rev,c  (module docstring); the
    schedule runs from beta = 1 down to 0; the "pilot" step sizes come from a forward pilot run
    from q0. For a model read from its traces, ``posterior_z`` is {{site name: [N, ...]}}, the values
    of its local latent sites (first dim the datapoint), every chain starting there. {hmc}
    """
    settings = _HMCSettings(num_leapfrog, step_size, target_accept, adapt_rate, adapt, pilot_chains)
    _check_common(model, x, num_steps, num_chains, settings, schedule)
    initial = _check_initial(guide_or_prior)
    if uses_traces(model):
        if not isinstance(posterior_z, dict):
            raise ValueError("for a model without prior / likelihood, posterior_z must be {site name: [N, ...] exact "
                             "posterior values} of its local latent sites (e.g. from simulate_data)")
        posterior_z = {k: v.detach() for k, v in posterior_z.items()}
    else:
        posterior_z = _check_posterior_z(model, x, posterior_z, num_chains)
    betas = beta_schedule(num_steps, schedule).flip(0)
    log_inv, diagnostics = _run_chunks(model, initial, x, betas, num_chains, settings, batch_size, progress, seed,
                                       f"reverse AIS, T={num_steps}, C={num_chains}", start_z=posterior_z,
                                       model_kwargs=model_kwargs, data_plate=data_plate)
    return (-log_inv, diagnostics) if return_diagnostics else -log_inv


def _check_posterior_z(model, x, posterior_z, num_chains):
    z_dim = getattr(model, "z_dim", None)
    if not isinstance(posterior_z, torch.Tensor) or posterior_z.dim() not in (2, 3):
        raise ValueError("posterior_z must be a tensor [N, z_dim] or [num_chains, N, z_dim] of exact posterior draws")
    if posterior_z.dim() == 2:
        posterior_z = posterior_z.unsqueeze(0).expand(num_chains, -1, -1)
    if posterior_z.shape[:2] != (num_chains, len(x)) or (z_dim is not None and posterior_z.shape[2] != z_dim):
        raise ValueError(f"posterior_z has shape {list(posterior_z.shape)}; expected [{len(x)}, {z_dim}] or "
                         f"[{num_chains}, {len(x)}, {z_dim}] (num_chains, N, z_dim)")
    return posterior_z.detach()


ais.__doc__ = ais.__doc__.format(hmc=_HMC_DOC)
reverse_ais.__doc__ = reverse_ais.__doc__.format(hmc=_HMC_DOC)


def _check_initial(guide_or_prior):
    if isinstance(guide_or_prior, str):
        if guide_or_prior != PRIOR:
            raise ValueError(f"guide_or_prior must be 'prior' or a guide, got the string {guide_or_prior!r}")
        return PRIOR
    if guide_or_prior is None:
        raise ValueError("guide_or_prior is None; pass 'prior' to anneal from p(z), or a guide")
    return guide_or_prior


# -- BDMC -----------------------------------------------------------------------------------------

@dataclass
class BDMCResult:
    """The BDMC sandwich on simulated data: ``lower`` (forward AIS) <= log p(x) <= ``upper``
    (reverse AIS) in expectation, per datapoint; ``x`` [N, D] and ``z`` [N, z_dim] the simulated
    data and the latents that generated them."""
    lower: torch.Tensor
    upper: torch.Tensor
    x: torch.Tensor
    z: torch.Tensor

    @property
    def width(self) -> torch.Tensor:
        """upper - lower per datapoint: a stochastic bound on the error of either estimate."""
        return self.upper - self.lower


def simulate(model, num_points: int, seed: int | None = 0):
    """(x, z): z ~ p(z), x ~ p(x | z), N = ``num_points`` draws from the model, on the model's device."""
    check_positive_int(num_points, "num_points")
    p = next(model.parameters(), None)
    like = torch.zeros((), device=p.device if p is not None else None, dtype=p.dtype if p is not None else None)
    with torch.no_grad(), evaluation_mode(model), seeded(seed, like.device):
        z = model.prior(num_points, like).sample()
        x = model.likelihood(z).sample()
    return x.detach(), z.detach()


def bdmc(model, num_points: int, num_steps: int = 1000, num_chains: int = 16, guide_or_prior=PRIOR,
         simulated=None, seed: int | None = 0, data=None, model_kwargs: dict | None = None,
         **ais_kwargs) -> BDMCResult:
    """Bidirectional Monte Carlo on ``num_points`` datapoints simulated from ``model`` (Grosse et al.
    2015; Wu et al. 2017): forward AIS gives ``lower``, reverse AIS started at the latent that
    generated each x (an exact posterior sample) gives ``upper``. ``simulated=(x, z)`` reuses
    data from ``simulate`` (e.g. to compare several ``num_steps`` on the same points); ``seed``
    seeds the simulation and both chains; ``ais_kwargs`` go to ``ais`` / ``reverse_ais``.

    A model read from its traces (no prior / likelihood) simulates through ``simulate_data`` on a
    template ``data`` of ``num_points`` datapoints (the arguments it observes are replaced by
    simulated ones); ``z`` is then {site: values} and ``x`` the simulated data.
    """
    if uses_traces(model):
        ais_kwargs = dict(ais_kwargs, model_kwargs=model_kwargs)
        if simulated is None:
            if data is None:
                raise ValueError("bdmc on a model without prior / likelihood needs data=, a template of num_points "
                                 "datapoints whose observed arguments are replaced by simulated ones")
            template = as_data(data)
            if len(template[0]) != num_points:
                raise ValueError(f"data holds {len(template[0])} points but num_points={num_points}")
            with torch.no_grad(), seeded(seed, template[0].device):
                x, z = simulate_data(model, template, model_kwargs)
        else:
            x, z = simulated
        x = x[0] if len(x) == 1 else x
        lower = ais(model, guide_or_prior, x, num_steps, num_chains,
                    seed=None if seed is None else derive_seed(seed, 1), **ais_kwargs)
        upper = reverse_ais(model, guide_or_prior, x, z, num_steps, num_chains,
                            seed=None if seed is None else derive_seed(seed, 2), **ais_kwargs)
        return BDMCResult(lower, upper, x, z)
    if simulated is None:
        x, z = simulate(model, num_points, seed)
    else:
        x, z = simulated
        if len(x) != num_points or len(z) != num_points:
            raise ValueError(f"simulated holds {len(x)} points but num_points={num_points}")
    lower = ais(model, guide_or_prior, x, num_steps, num_chains,
                seed=None if seed is None else derive_seed(seed, 1), **ais_kwargs)
    upper = reverse_ais(model, guide_or_prior, x, z, num_steps, num_chains,
                        seed=None if seed is None else derive_seed(seed, 2), **ais_kwargs)
    return BDMCResult(lower, upper, x.cpu(), z.cpu())
