"""The shared primitive: particle-vectorized, per-datapoint log importance weights.

    log w[k, b] = log p(x_b, z_kb) - log q(z_kb | x_b),    z_kb ~ q(z | x_b),  k = 1..K

(docs/design.md, contract 2). The guide is run once under an outer ``pyro.plate("particles", K)`` at
dim -2, the model is replayed against it, and each site's *unscaled* log density is summed into
a [K, B] tensor. The data plate's subsample scale N / B is returned separately, so objectives
apply it *outside* any log-sum-exp over particles:

    objective = (N / B) * sum_b bound(log w[:, b])

Any extra scale a site carries on top of the data plate's (e.g. ``poutine.scale`` used for KL
warm-up, beta * [log p(z) - log q(z|x)]) multiplies that site's log density inside the weight.
Guide sites the model does not have are auxiliary variables: the model must score them too, otherwise
this is an error. A guide that declares auxiliary variables provides ``guide.extended_model(model)``
(e.g. the hierarchical guide: the model times its reverse kernels, AVO paper Eq. 3); the primitive
applies that hook itself (``extend_model``), so every objective and every evaluator that goes
through it gets the extended bound with no change to the model.

Fixed-latent log densities (``fixed_latent_densities=True``, used by the STL, DReG and CUBO
gradient estimators): the guide and the model are replayed once more against the *detached*
latent values z' = stop_gradient(z), giving [K, B] tensors

    log_q_fixed = log q(z' | x; phi),      log_p_fixed = log p(x, z'; theta)

equal in value to log q and log p but differentiable only through the parameters, not through
the sampling path z(eps, phi). Hence, for any reparameterized guide (any distribution family,
any number of latent sites, hierarchical or not):

    log q - log_q_fixed + stop_gradient(log_q_fixed)   has only the path gradient of log q
    log p - log_p_fixed + stop_gradient(log_p_fixed)   has only the path gradient of log p

The guide's replay restores the torch RNG state of the first run, so a guide that draws its own
noise (e.g. a denoising encoder) sees the same noise; a guide that still disagrees with itself on
replay is an error.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro import poutine

from pyro_air.core.plates import DATA_PLATE

PARTICLE_PLATE = "particles"


@dataclass
class LogWeights:
    log_w: torch.Tensor          # [K, B]
    scale: float                 # N / B, to be applied outside any log-sum-exp
    model_trace: poutine.Trace
    guide_trace: poutine.Trace
    log_p_fixed: torch.Tensor | None = None   # [K, B] log p(x, z'), z' = detached z (see module doc)
    log_q_fixed: torch.Tensor | None = None   # [K, B] log q(z' | x), z' = detached z

    @property
    def num_particles(self) -> int:
        return self.log_w.shape[0]


def _data_frame(site):
    for frame in site["cond_indep_stack"]:
        if frame.name == DATA_PLATE:
            return frame
    return None


def site_log_density(site, batch_size: int, num_particles: int, data_scale: float) -> torch.Tensor:
    """Unscaled log density of one sample site as a [K, B] tensor (event dims summed)."""
    if _data_frame(site) is None:
        raise ValueError(
            f"site {site['name']!r} is outside pyro.plate('data'); the objectives here need every "
            "latent and observed site per datapoint (put it inside the data plate)"
        )
    log_p = site["fn"].log_prob(site["value"])
    if site["mask"] is not None and site["mask"] is not True:
        log_p = log_p.masked_fill(~site["mask"], 0.0) if isinstance(site["mask"], torch.Tensor) else log_p * 0
    extra_scale = site["scale"] / data_scale
    if not (isinstance(extra_scale, float) and extra_scale == 1.0):
        log_p = log_p * extra_scale
    return log_p.expand(num_particles, batch_size)


def sample_sites(trace: poutine.Trace):
    """The sample sites of a trace, without plates' subsample sites."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not poutine.util.site_is_subsample(s)]


def _detached_values(trace: poutine.Trace) -> poutine.Trace:
    fixed = poutine.Trace()
    for name, site in trace.nodes.items():
        site = dict(site)
        if site["type"] == "sample" and isinstance(site["value"], torch.Tensor):
            site["value"] = site["value"].detach()
        fixed.add_node(name, **site)
    return fixed


def _sum_log_densities(sites, batch_size, num_particles, data_scale, like):
    total = like.new_zeros(num_particles, batch_size)
    for site in sites:
        total = total + site_log_density(site, batch_size, num_particles, data_scale)
    return total


def extend_model(model, guide):
    """``guide.extended_model(model)`` when the guide has auxiliary variables, else ``model``.

    The hook must be idempotent (extending an already extended model returns it unchanged).
    """
    hook = getattr(guide, "extended_model", None)
    return hook(model) if hook is not None else model


def log_importance_weights(model, guide, *args, num_particles: int = 1, require_reparam: bool = True,
                           fixed_latent_densities: bool = False, **kwargs) -> LogWeights:
    """Run ``guide`` K times in parallel, replay ``model``; return log w of shape [K, B].

    ``args`` and ``kwargs`` (e.g. the batch x of shape [B, D] and ``num_data``) go to both. B and the
    scale N / B come from the model's data plate (``data_plate_batch``), so a model may pass the full
    data and subsample it itself with ``pyro.plate("data", N, subsample_size=B)``.
    With ``fixed_latent_densities=True`` also return ``log_p_fixed`` and ``log_q_fixed`` (module doc).
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    model = extend_model(model, guide)
    rng_state = torch.get_rng_state() if fixed_latent_densities else None
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)

    model_sites = sample_sites(model_trace)
    batch_size, data_scale = data_plate_batch(model_sites)
    like = _like(args)

    guide_sites = sample_sites(guide_trace)
    for site in guide_sites:
        name = site["name"]
        if name not in model_trace.nodes:
            raise ValueError(
                f"guide site {name!r} has no counterpart in the model; an auxiliary variable must be "
                "scored by the model side (wrap the model with the guide's extended model)"
            )
        if require_reparam and not site["fn"].has_rsample:
            raise ValueError(f"guide site {name!r} is not reparameterizable; these objectives need rsample")
    log_p = _sum_log_densities(model_sites, batch_size, num_particles, data_scale, like)
    log_q = _sum_log_densities(guide_sites, batch_size, num_particles, data_scale, like)
    weights = LogWeights(log_p - log_q, data_scale, model_trace, guide_trace)
    if fixed_latent_densities:
        weights.log_p_fixed, weights.log_q_fixed = _fixed_latent_densities(
            model, guide, args, kwargs, guide_trace, rng_state, num_particles, batch_size, data_scale, log_q)
    return weights


def data_plate_batch(model_sites) -> tuple[int, float]:
    """(B, N / B) of the model's data plate: B is the plate's subsample size (the batch that the
    sites see), N its full size. Taken from the plate, not from the arguments, so a model that
    subsamples its full data itself (``pyro.plate("data", N, subsample_size=B)`` or
    ``subsample=idx``) gets its own batch and scale."""
    frame = next((f for f in map(_data_frame, model_sites) if f is not None), None)
    if frame is None:
        raise ValueError("the model has no site inside pyro.plate('data'); see docs/design.md, contract 1")
    return frame.size, float(frame.full_size or frame.size) / frame.size


def _like(args) -> torch.Tensor:
    """A tensor whose dtype and device the [K, B] sums take: the first floating-point argument."""
    for a in args:
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            return a
    return torch.zeros(())


def _fixed_latent_densities(model, guide, args, kwargs, guide_trace, rng_state, num_particles, batch_size,
                            data_scale, log_q):
    """(log p(x, z'), log q(z' | x)) with z' the detached latent values of ``guide_trace`` (the guide's
    subsample indices, if it draws any, are replayed too)."""
    like = _like(args)
    fixed = _detached_values(guide_trace)
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(rng_state)
        with pyro.plate(PARTICLE_PLATE, num_particles, dim=-2):
            guide_fixed = poutine.trace(poutine.replay(guide, trace=fixed)).get_trace(*args, **kwargs)
            model_fixed = poutine.trace(poutine.replay(model, trace=fixed)).get_trace(*args, **kwargs)
    log_q_fixed = _sum_log_densities(sample_sites(guide_fixed), batch_size, num_particles, data_scale, like)
    log_p_fixed = _sum_log_densities(sample_sites(model_fixed), batch_size, num_particles, data_scale, like)
    if not torch.allclose(log_q_fixed.detach(), log_q.detach(), rtol=1e-4, atol=1e-3):
        raise ValueError(
            "the guide gives a different log q(z | x) when replayed with the same latent values and RNG "
            "state, so its parameter-only (score) term cannot be formed; make the guide deterministic "
            "given its pyro.sample sites and the torch RNG (draw extra noise with torch, before sampling)"
        )
    return log_p_fixed, log_q_fixed
