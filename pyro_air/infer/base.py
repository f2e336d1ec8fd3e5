"""Base class of every objective: a ``pyro.infer.ELBO`` built on the log-weight primitive.

A subclass defines ``per_datapoint_bound(log_w) -> Tensor[B]`` (to be maximized); the loss is

    loss = -(G + (N / B) * sum_b bound_b)

with G the global latent sites' term (``pyro_air.infer.log_weights``: zero for a model whose latents
all lie in the data plate), so ``pyro.infer.SVI`` and ``pyro_air.train`` both minimize an unbiased
estimate of the full-data negative bound (docs/design.md, contract 2). Any model and guide that
``pyro.infer.Trace_ELBO`` accepts are accepted: the data plate, the local and the global sites
are read from the traces once per (model, guide) pair and remembered (``Structure``), as Pyro
remembers ``max_plate_nesting``; ``data_plate=`` names the data plate where the observations do not.

The importance-weighted family draws the global sites once per step and shares them between the K
local particles (``globals_per_particle = False``: a valid lower bound, see log_weights.py); the
ELBO draws them per particle, as Trace_ELBO does.
"""
from __future__ import annotations

import weakref

import pyro.infer
import torch

from pyro_air.core.validation import check_positive_int
from pyro_air.infer.direct import can_compute_directly, direct_log_weights
from pyro_air.infer.log_weights import (
    LogWeights,
    extend_model,
    log_importance_weights,
    sample_sites,
)
from pyro_air.infer.structure import Structure, declared_structure, model_structure


class LogWeightObjective(pyro.infer.ELBO):
    #: False: global latents drawn once per step and shared by the K particles (a bound of the
    #: importance-weighted family, log_weights.py); True: per particle (the ELBO, as Trace_ELBO)
    globals_per_particle = False
    #: whether a guide site without rsample is trained by score-function gradients (else refused)
    score_function_gradients = False
    #: why global latent sites are refused (a sentence), or False where they are accepted
    refuses_global_latents: str | bool = False
    #: the declared capability that chooses the fast path: True where the loss needs nothing but the
    #: [K, B] log weights (no traces, no fixed-latent densities), so that ``pyro_air.infer.direct``
    #: may compute them for a pair that scores itself. Each objective declares it at its class (a
    #: property where it depends on the configuration, e.g. IWAE's estimator). False here: the traced
    #: path is always correct. A subclass that redefines how weights are made or differentiated
    #: (``log_weights``, ``importance_weights``, ``surrogate_per_datapoint``) without declaring it
    #: again gets False (``__init_subclass__``), so that no inherited True outlives the methods it
    #: described.
    needs_only_log_weights: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        redefines = any(name in vars(cls) for name in ("log_weights", "importance_weights", "surrogate_per_datapoint"))
        if redefines and "needs_only_log_weights" not in vars(cls):
            cls.needs_only_log_weights = False

    def __init__(self, num_particles: int = 1, data_plate: str | None = None, max_plate_nesting: int | None = None):
        check_positive_int(num_particles, "num_particles")
        if data_plate is not None and not isinstance(data_plate, str):
            raise ValueError(f"data_plate must be a plate's name (a str) or None, got {data_plate!r}")
        if max_plate_nesting is not None:
            check_positive_int(max_plate_nesting, "max_plate_nesting", minimum=0)
        super().__init__(num_particles=num_particles, max_plate_nesting=float("inf"), vectorize_particles=True)
        self.data_plate = data_plate
        #: the programs' plate nesting when the user states it (as to Pyro's ELBOs); None: found from a run
        self.declared_plate_nesting = max_plate_nesting
        self._structures: dict = {}

    # -- what a subclass defines -------------------------------------------------------------
    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        """What is differentiated; equals the bound in value. Gradient estimators override it."""
        return self.per_datapoint_bound(weights.log_w)

    # -- the pyro.infer.ELBO interface ----------------------------------------------------------
    def structure(self, model, guide, args, kwargs) -> list:
        """[the pair's ``Structure``, whether to vectorize particles (None: try, fall back), weak
        references to the pair], found on the first call for this (model, guide) and remembered, as
        Pyro remembers max_plate_nesting."""
        programs = (_program(model), _program(guide))
        key = tuple(map(id, programs))
        found = self._structures.get(key)
        if found is not None and any(ref() is not obj for ref, obj in zip(found[2], programs)):
            found = None   # an id reused by another object after the first was freed
        if found is None:
            declared = None if self.data_plate is not None else declared_structure(model, guide)
            if declared is not None:
                found = [declared, True]
            else:
                # one particle of a user's program runs without a particle plate, as Pyro runs it
                found = [model_structure(extend_model(model, guide), guide, args, kwargs, self.data_plate,
                                         max_plate_nesting=self.declared_plate_nesting,
                                         num_particles=self.num_particles), False if self.num_particles == 1 else None]
            found.append(tuple(_weak(obj) for obj in programs))
            if len(self._structures) > 64:   # forget pairs that no longer exist
                self._structures = {k: v for k, v in self._structures.items() if all(r() is not None for r in v[2])}
            self._structures[key] = found
        return found

    def importance_weights(self, model, guide, args, kwargs, fixed_latent_densities: bool = False) -> LogWeights:
        """The primitive with this objective's choices (particles, data plate, globals, gradients)."""
        found = self.structure(model, guide, args, kwargs)
        structure, vectorize = found[0], found[1]
        weights = log_importance_weights(
            model, guide, *args, num_particles=self.num_particles, require_reparam=not self.score_function_gradients,
            fixed_latent_densities=fixed_latent_densities, globals_per_particle=self.globals_per_particle,
            score_function=self.score_function_gradients, structure=structure, vectorize=vectorize, **kwargs)
        if vectorize is None:   # remember how the pair ran, so a guide that cannot broadcast fails once
            found[1] = weights.layout.particle_plate is not None
        if self.refuses_global_latents and weights.global_term is not None:
            names = [s["name"] for s in _global_latents(weights)]
            raise ValueError(f"{type(self).__name__} needs every latent site inside the data plate "
                             f"{structure.data_plate!r}, but {', '.join(map(repr, names))} {'lies' if len(names) == 1 else 'lie'} outside it "
                             f"({self.refuses_global_latents}); use iwae, renyi (alpha >= 0) or elbo with global latents")
        return weights

    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return self.importance_weights(model, guide, args, kwargs)

    def global_surrogate(self, weights: LogWeights) -> torch.Tensor | float:
        """What the global sites add to the maximized objective: the mean of the global term over
        its particles (zero without global latents); the ELBO adds its score-function terms."""
        return 0.0 if weights.global_term is None else weights.global_term.mean()

    def _get_trace(self, model, guide, args, kwargs):
        """The particle-vectorized (model_trace, guide_trace) pair, for Pyro's ELBO machinery."""
        weights = self.log_weights(model, guide, *args, **kwargs)
        return weights.model_trace, weights.guide_trace

    def needs_traces(self) -> bool:
        """Whether the loss needs more than ``log_w`` (traces, fixed-latent densities): the negation
        of the declared ``needs_only_log_weights``."""
        return not self.needs_only_log_weights

    def _weights_for_loss(self, model, guide, *args, **kwargs) -> LogWeights:
        """The fast path (``pyro_air.infer.direct``, identical numbers, no traces) where it applies
        and this objective needs nothing but log w; otherwise the traced primitive."""
        if (not self.needs_traces() and len(args) == 1 and set(kwargs) <= {"num_data"}
                and can_compute_directly(model, guide)):
            return direct_log_weights(model, guide, args[0], self.num_particles, kwargs.get("num_data"))
        return self.log_weights(model, guide, *args, **kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        weights = self._weights_for_loss(model, guide, *args, **kwargs)
        loss = -weights.scale * self.surrogate_per_datapoint(weights).sum()
        extra = self.global_surrogate(weights)
        return loss if isinstance(extra, float) and extra == 0.0 else loss - extra

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            weights = self._weights_for_loss(model, guide, *args, **kwargs)
            loss = -weights.scale * self.per_datapoint_bound(weights.log_w).sum().item()
            if weights.global_term is not None:
                loss -= weights.global_term.mean().item()
            return loss

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if getattr(loss, "requires_grad", False):   # a model and guide without parameters: nothing to train
            loss.backward()
        return loss.item() if isinstance(loss, torch.Tensor) else float(loss)


def _global_latents(weights: LogWeights):
    return [s for s in sample_sites(weights.guide_trace) if not weights.layout.is_local(s)]


def _program(obj):
    """What a structure is remembered by: a wrapper that keeps its program's plates and sites (KL
    warm-up's scaled model, a ``functools.wraps`` decorator) names it ``__wrapped__``."""
    return getattr(obj, "__wrapped__", obj)


def _weak(obj):
    """A weak reference, or for an object that cannot have one, a reference that never matches."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: None
