"""The shared primitive: particle-vectorized, per-datapoint log importance weights.

    log w[k, b] = log p(x_b, z_kb | theta_k) - log q(z_kb | x_b, theta_k),   z_kb ~ q(z | x_b, theta_k)

(docs/design.md, contract 2) for any model / guide pair that ``pyro.infer.Trace_ELBO`` accepts. The
data plate, the local latent sites (inside it) and the global ones (outside it) are read from the
traces (``pyro_air.infer.structure``), never from fixed names. The guide is run under a particle
plate of size K placed as Pyro places it (``vectorize_particles``: just left of the programs'
``max_plate_nesting``, under a name no user plate has), the model is replayed against it, and each
local site's *unscaled* log density is summed over every dim but the particle and data dims into a
[K, B] tensor. A guide or model that cannot broadcast over a particle dim is run K times in
sequence instead (the first failure is remembered by the caller's ``Structure``), with the same
result distribution.

The data plate's subsample scale N / B is returned separately, so objectives apply it *outside* any
log-sum-exp over particles:

    objective = G + (N / B) * sum_b bound(log w[:, b])

Any extra scale a local site carries on top of the data plate's (``poutine.scale`` for KL warm-up or
annealing, beta * [log p(z) - log q(z|x)]) multiplies that site's log density inside the weight;
masks zero their elements.

**Global latent sites** (outside the data plate) enter through the term G, the sum of their scaled
log p - log q. Two placements of their particles (``globals_per_particle``):

- ``True`` (the ELBO; Pyro's semantics): every particle draws its own theta_k, and G is the [K]
  vector of per-particle terms, so mean_k [G_k + (N/B) sum_b log w_kb] is Trace_ELBO's estimate.
- ``False`` (the importance-weighted family): theta is drawn once per step, outside the particle
  plate, and the K local particles share it. G is then a [1] tensor and

      L = E_{q(theta)} [ log p(theta) - log q(theta) + sum_b log (1/K) sum_k w_kb(theta) ]

  which is a lower bound of log p(x): for fixed theta each inner term bounds log p(x_b | theta)
  (Burda et al. 2016), their sum bounds log p(x | theta), and the outer expectation is an ELBO over
  theta. Under subsampling (N / B) sum_b is unbiased for the sum over all datapoints, so the bound
  is estimated without bias at any batch size.

Guide sites the model does not have are auxiliary variables: the model must score them too,
otherwise this is an error. A guide that declares auxiliary variables provides
``guide.extended_model(model)`` (e.g. the hierarchical guide: the model times its reverse kernels,
AVO paper Eq. 3); the primitive applies that hook itself (``extend_model``).

Fixed-latent log densities (``fixed_latent_densities=True``, used by the STL, DReG and CUBO
gradient estimators): the guide and the model are replayed once more against the *detached*
latent values z' = stop_gradient(z), giving [K, B] tensors

    log_q_fixed = log q(z' | x; phi),      log_p_fixed = log p(x, z'; theta)

equal in value to log q and log p but differentiable only through the parameters, not through
the sampling path z(eps, phi). Hence, for any reparameterized guide (any distribution family,
any number of latent sites, hierarchical or not):

    log q - log_q_fixed + stop_gradient(log_q_fixed)   has only the path gradient of log q
    log p - log_p_fixed + stop_gradient(log_p_fixed)   has only the path gradient of log p

They cover the local sites; a global term keeps its standard (path and score) gradient.
The guide's replay restores the torch RNG state of the first run, so a guide that draws its own
noise (e.g. a denoising encoder) sees the same noise; a guide that still disagrees with itself on
replay is an error.

Score-function terms (``score_function=True``, the ELBO): for guide sites without ``rsample``
(discrete latents) ``score_term`` holds, summed over particles, the surrogate whose gradient is
Pyro's Trace_ELBO estimator (each such site's score times the cost log p - log q of the sites in
its plates, detached), and cancels the gradient of those sites' log q at fixed value, so that
the ELBO's loss and gradients equal Trace_ELBO's on the same draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer.util import MultiFrameTensor, get_plate_stacks
from pyro.poutine.plate_messenger import PlateMessenger

from pyro_air.infer.structure import (
    PARTICLE_PLATE,
    Structure,
    declared_structure,
    model_structure,
    sample_sites,
)

__all__ = ["PARTICLE_PLATE", "Layout", "LogWeights", "extend_model", "log_importance_weights", "sample_sites",
           "site_log_density"]


@dataclass(frozen=True)
class Layout:
    """Where the particles and the datapoints lie in one run's traces."""
    data_plate: str | None       # None: the whole model is one datapoint
    particle_plate: str | None   # None: one run per particle (no particle dim)
    particle_dim: int | None     # negative
    num_particles: int           # K of this run (1 when sequential)
    batch_size: int              # B
    scale: float                 # N / B

    def is_local(self, site) -> bool:
        return self.data_plate is None or any(f.name == self.data_plate for f in site["cond_indep_stack"])

    def data_dim(self, site) -> int | None:
        for f in site["cond_indep_stack"]:
            if f.name == self.data_plate:
                return f.dim
        return None


@dataclass
class LogWeights:
    log_w: torch.Tensor          # [K, B], the local sites
    scale: float                 # N / B, to be applied outside any log-sum-exp
    model_trace: poutine.Trace | None
    guide_trace: poutine.Trace | None
    log_p_fixed: torch.Tensor | None = None   # [K, B] log p(x, z'), z' = detached z (see module doc)
    log_q_fixed: torch.Tensor | None = None   # [K, B] log q(z' | x), z' = detached z
    global_term: torch.Tensor | None = None   # [K] or [1]: global sites' scaled log p - log q (module doc)
    score_term: torch.Tensor | None = None    # scalar, summed over particles (module doc)
    layout: Layout | None = None

    @property
    def num_particles(self) -> int:
        return self.log_w.shape[0]

    @property
    def vectorized(self) -> bool:
        """Whether the traces hold all K particles along one dim (False: one run per particle)."""
        return self.layout is None or self.layout.particle_plate is not None or self.num_particles == 1

    def site_terms(self, site) -> torch.Tensor:
        """One local site's unscaled log density in the [K, B] layout of ``log_w``."""
        return site_log_density(site, self.layout, self.log_w)


class LocalParticlePlate(PlateMessenger):
    """A particle plate that vectorizes only the sites inside the data plate ``within`` (the shared
    global draw of the importance-weighted family; module docstring)."""

    def __init__(self, name, size, dim, within: str | None):
        super().__init__(name, size, dim=dim)
        self.within = within

    def _process_message(self, msg) -> None:
        if self.within is not None and not any(f.name == self.within for f in msg["cond_indep_stack"]):
            return
        super()._process_message(msg)


def _aligned(log_p: torch.Tensor, dims) -> torch.Tensor:
    """``log_p`` with at least as many dims as the most negative of ``dims`` needs."""
    depths = [-d for d in dims if d is not None]
    need = max(depths) if depths else 0  # not max(..., default=): torch.compile breaks its graph there
    if log_p.dim() < need:
        log_p = log_p.reshape((1,) * (need - log_p.dim()) + log_p.shape)
    return log_p


def _scaled_log_prob(site, extra_scale) -> torch.Tensor:
    log_p = site["fn"].log_prob(site["value"])
    mask = site["mask"]
    if mask is not None and mask is not True:
        log_p = log_p.masked_fill(~mask, 0.0) if isinstance(mask, torch.Tensor) else log_p * 0
    if not (isinstance(extra_scale, float) and extra_scale == 1.0):
        log_p = log_p * extra_scale
    return log_p


def _keep_dims(log_p: torch.Tensor, keep) -> torch.Tensor:
    """Sum ``log_p`` over every dim not in ``keep`` (negative dims; kept in their order)."""
    log_p = _aligned(log_p, keep)
    keep = {log_p.dim() + d for d in keep if d is not None}
    drop = [i for i in range(log_p.dim()) if i not in keep]
    return log_p.sum(drop) if drop else log_p


def site_log_density(site, layout: Layout, like: torch.Tensor) -> torch.Tensor:
    """Unscaled log density of one local sample site as a [K, B] tensor (every other dim summed)."""
    extra = site["scale"] / layout.scale
    log_p = _keep_dims(_scaled_log_prob(site, extra), (layout.particle_dim, layout.data_dim(site)))
    k = layout.num_particles if layout.particle_dim is not None else 1
    if log_p.dim() == 0:
        log_p = log_p.reshape(1, 1)
    elif log_p.dim() == 1:   # one of the two kept dims: which one, by the site's frames
        log_p = log_p.unsqueeze(1) if layout.data_dim(site) is None else log_p.unsqueeze(0)
    return log_p.expand(k, layout.batch_size)


def global_log_density(site, layout: Layout) -> torch.Tensor:
    """Scaled log density of one global sample site, per particle: [K], or [1] when shared."""
    log_p = _keep_dims(_scaled_log_prob(site, site["scale"]), (layout.particle_dim,))
    in_particles = layout.particle_plate is not None and any(
        f.name == layout.particle_plate for f in site["cond_indep_stack"])
    return log_p.reshape(-1) if in_particles else log_p.reshape(1)


def extend_model(model, guide):
    """``guide.extended_model(model)`` when the guide has auxiliary variables, else ``model``.

    The hook must be idempotent (extending an already extended model returns it unchanged).
    """
    hook = getattr(guide, "extended_model", None)
    return hook(model) if hook is not None else model


def _batch_size(sites, data_plate: str | None, particle_dim) -> tuple[int, float]:
    """(B, N / B) of the data plate: B is its subsample size (for a plate without a size, the size
    of the tensors inside it), N its full size."""
    if data_plate is None:
        return 1, 1.0
    frame = next(f for s in sites for f in s["cond_indep_stack"] if f.name == data_plate)
    if frame.size is not None and frame.size > 0:
        return frame.size, float(frame.full_size or frame.size) / frame.size
    sizes = [_aligned(s["fn"].log_prob(s["value"]), (frame.dim, particle_dim)).shape[frame.dim]
             for s in sites if any(f.name == data_plate for f in s["cond_indep_stack"])]
    return max(sizes), 1.0


def _run(model, guide, args, kwargs, plate, replay_trace=None):
    """(guide trace, model trace) of one run under ``plate`` (a messenger or None); with
    ``replay_trace`` the guide is replayed against it."""
    guide_run = guide if replay_trace is None else poutine.replay(guide, trace=replay_trace)

    def both():
        guide_trace = poutine.trace(guide_run).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return guide_trace, model_trace

    if plate is None:
        return both()
    with plate:
        return both()


def _check_sites(guide_trace, model_trace, require_reparam: bool):
    for site in sample_sites(guide_trace):
        name = site["name"]
        if site["is_observed"]:   # pyro.factor in the guide: its log factor counts in log q, as in Trace_ELBO
            continue
        if name not in model_trace.nodes:
            raise ValueError(
                f"guide site {name!r} has no counterpart in the model; an auxiliary variable must be "
                "scored by the model side (wrap the model with the guide's extended model)"
            )
        if require_reparam and not site["fn"].has_rsample:
            raise ValueError(f"guide site {name!r} ({type(site['fn']).__name__}) is not reparameterizable; "
                             "this objective needs rsample: train with infer.MonteCarloELBO (score-function "
                             "gradients) or use a reparameterizable relaxation")


def _densities(model_trace, guide_trace, layout: Layout, like):
    """([K, B] log w of the local sites, [K] or [1] global term or None). The model's and the guide's
    sums are formed apart and subtracted once, as log p - log q, the order the fast path also uses."""
    (log_p, glob_p), (log_q, glob_q) = (_sums(trace, layout, like) for trace in (model_trace, guide_trace))
    if glob_p is None and glob_q is None:
        glob = None
    else:
        glob = (glob_p if glob_p is not None else 0.0) - (glob_q if glob_q is not None else 0.0)
    return log_p - log_q, glob


def _sums(trace, layout: Layout, like):
    """(the [K, B] sum of a trace's local sites, the sum of its global sites or None)."""
    local = like.new_zeros(layout.num_particles if layout.particle_dim is not None else 1, layout.batch_size)
    glob = None
    for site in sample_sites(trace):
        if layout.is_local(site):
            local = local + site_log_density(site, layout, like)
        else:
            term = global_log_density(site, layout)
            glob = term if glob is None else glob + term
    return local, glob


def _score_term(model_trace, guide_trace):
    """Summed over everything: for every guide site without rsample, (its score) x (the detached
    cost log p - log q summed to its plates), minus its log q's own gradient (module docstring)."""
    nonreparam = [s for s in sample_sites(guide_trace) if not s["fn"].has_rsample]
    if not nonreparam:
        return None
    stacks = get_plate_stacks(model_trace)
    log_r = MultiFrameTensor()
    for site in sample_sites(model_trace):
        term = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
        if not site["is_observed"] and site["name"] in guide_trace.nodes:
            g = guide_trace.nodes[site["name"]]
            term = term - scale_and_mask(g["fn"].log_prob(g["value"]), g["scale"], g["mask"])
        log_r.add((stacks[site["name"]], term.detach()))
    total = 0.0
    for site in nonreparam:
        log_q, score, _ = site["fn"].score_parts(site["value"])
        log_q = scale_and_mask(log_q, site["scale"], site["mask"])   # the score term is not scaled: the
        # cost already carries every site's scale (Pyro's ScoreParts.scale_and_mask does the same)
        cost = log_r.sum_to(site["cond_indep_stack"])
        total = total + (log_q - log_q.detach()).sum()
        if not is_identically_zero(score):
            total = total + (cost * score).sum() - (cost * score).sum().detach()
    return total


def _like(args) -> torch.Tensor:
    """A tensor whose dtype and device the [K, B] sums take: the first floating-point argument."""
    for a in args:
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            return a
    return torch.zeros(())


def _one_run(model, guide, args, kwargs, structure: Structure | None, num_particles, vectorize, globals_per_particle,
             require_reparam, fixed_latent_densities, score_function, replay_globals=None):
    """The LogWeights of one run: all K particles vectorized, or one particle unvectorized."""
    rng_state = torch.get_rng_state() if fixed_latent_densities else None
    plate = None
    if vectorize:
        data_plate = structure.data_plate
        within = None if globals_per_particle else data_plate
        plate = LocalParticlePlate(structure.particle_plate_name(), num_particles,
                                   -(structure.max_plate_nesting + 1), within)
    guide_trace, model_trace = _run(model, guide, args, kwargs, plate, replay_trace=replay_globals)
    _check_sites(guide_trace, model_trace, require_reparam)
    data_plate = structure.data_plate if structure is not None else None
    model_sites = sample_sites(model_trace)
    particle_dim = plate.dim if plate is not None else None
    batch_size, scale = _batch_size(model_sites, data_plate, particle_dim)
    layout = Layout(data_plate, plate.name if plate is not None else None, particle_dim,
                    num_particles if plate is not None else 1, batch_size, scale)
    like = _like(args)
    log_w, glob = _densities(model_trace, guide_trace, layout, like)
    weights = LogWeights(log_w, scale, model_trace, guide_trace, global_term=glob, layout=layout)
    if score_function:
        weights.score_term = _score_term(model_trace, guide_trace)
    if fixed_latent_densities:
        fixed = _detached_values(guide_trace)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(rng_state)
            if plate is not None:
                plate = LocalParticlePlate(plate.name, num_particles, plate.dim, plate.within)
            guide_fixed, model_fixed = _run(model, guide, args, kwargs, plate, replay_trace=fixed)
        log_q_fixed = _local_sum(guide_fixed, layout, like)
        log_p_fixed = _local_sum(model_fixed, layout, like)
        q_now = _local_sum(guide_trace, layout, like)
        if not torch.allclose(log_q_fixed.detach(), q_now.detach(), rtol=1e-4, atol=1e-3):
            raise ValueError(
                "the guide gives a different log q(z | x) when replayed with the same latent values and RNG "
                "state, so its parameter-only (score) term cannot be formed; make the guide deterministic "
                "given its pyro.sample sites and the torch RNG (draw extra noise with torch, before sampling)"
            )
        weights.log_p_fixed, weights.log_q_fixed = log_p_fixed, log_q_fixed
    return weights


def _local_sum(trace, layout, like):
    return _sums(trace, layout, like)[0]


def _stack(runs: list[LogWeights]) -> LogWeights:
    """K one-particle runs as one LogWeights (traces: the first run's)."""
    def cat(name):
        parts = [getattr(w, name) for w in runs]
        return None if parts[0] is None else torch.cat([p.reshape(1, *p.shape[1:]) if p.dim() else p.reshape(1)
                                                        for p in parts])
    first = runs[0]
    score = None if first.score_term is None else sum(w.score_term for w in runs)
    glob = None if first.global_term is None else torch.cat([w.global_term for w in runs])
    layout = Layout(first.layout.data_plate, None, None, len(runs), first.layout.batch_size, first.layout.scale)
    return LogWeights(cat("log_w"), first.scale, first.model_trace, first.guide_trace, cat("log_p_fixed"),
                      cat("log_q_fixed"), glob, score, layout)


def log_importance_weights(model, guide, *args, num_particles: int = 1, require_reparam: bool = True,
                           fixed_latent_densities: bool = False, data_plate: str | None = None,
                           globals_per_particle: bool = True, score_function: bool = False,
                           structure: Structure | None = None, vectorize: bool | None = None,
                           replay_globals: poutine.Trace | None = None, **kwargs) -> LogWeights:
    """Run ``guide`` K times in parallel, replay ``model``; return log w of shape [K, B] (module doc).

    ``args`` and ``kwargs`` (e.g. the batch x and ``num_data``) go to both. B and the scale N / B come
    from the model's data plate, so a model may pass the full data and subsample it itself with
    ``pyro.plate(name, N, subsample_size=B)``. ``structure``: a ``Structure`` the caller keeps
    between calls (found here when None); ``data_plate`` names the data plate when the observations
    do not say it. ``vectorize``: True / False forces one way; None tries the particle plate and
    falls back to one run per particle when the programs cannot broadcast over it.
    ``replay_globals`` (``global_sites_trace`` of an earlier call): the global sites take its values
    instead of new draws (the evaluators share one draw between their chunks).
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if structure is None:
        structure = model_structure(extend_model(model, guide), guide, args, kwargs, data_plate,
                                    declared_by=(model, guide))
        if vectorize is None and declared_structure(model, guide) is not None:
            vectorize = True   # the project's own programs broadcast: an error is an error
        elif vectorize is None and num_particles == 1:
            vectorize = False  # one particle of a user's program runs without a particle plate, as in Pyro
    model = extend_model(model, guide)
    options = dict(globals_per_particle=globals_per_particle, require_reparam=require_reparam,
                   fixed_latent_densities=fixed_latent_densities, score_function=score_function,
                   replay_globals=replay_globals)
    if vectorize is not False:
        state = torch.get_rng_state()
        try:
            return _one_run(model, guide, args, kwargs, structure, num_particles, True, **options)
        except Exception:
            if vectorize:
                raise
            torch.set_rng_state(state)
    runs = [_one_run(model, guide, args, kwargs, structure, 1, False, **options)]
    if not globals_per_particle and runs[0].global_term is not None:   # later particles share the first draw
        options["replay_globals"] = _merged(replay_globals, global_sites_trace(runs[0]))
    runs += [_one_run(model, guide, args, kwargs, structure, 1, False, **options) for _ in range(num_particles - 1)]
    return runs[0] if num_particles == 1 else _stack(runs)


def _merged(first: poutine.Trace | None, second: poutine.Trace) -> poutine.Trace:
    if first is None:
        return second
    merged = poutine.Trace()
    for trace in (first, second):
        for name, site in trace.nodes.items():
            if name not in merged.nodes:
                merged.add_node(name, **site)
    return merged


def global_sites_trace(weights: LogWeights) -> poutine.Trace:
    """A trace holding only the guide's global sites of ``weights`` (to replay them elsewhere)."""
    kept = poutine.Trace()
    for site in sample_sites(weights.guide_trace):
        if not weights.layout.is_local(site):
            kept.add_node(site["name"], **site)
    return kept


def _detached_values(trace: poutine.Trace) -> poutine.Trace:
    fixed = poutine.Trace()
    for name, site in trace.nodes.items():
        site = dict(site)
        if site["type"] == "sample" and isinstance(site["value"], torch.Tensor):
            site["value"] = site["value"].detach()
        fixed.add_node(name, **site)
    return fixed

