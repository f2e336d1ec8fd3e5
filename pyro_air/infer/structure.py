"""The model/guide contract read from the traces, not from fixed names (docs/design.md, contract 1).

A model and its guide are any Pyro programs that ``pyro.infer.Trace_ELBO`` accepts. What the
objectives and evaluators need is found in one trace of the pair:

- **The data plate** is the plate that holds every observation: among the vectorized plates common
  to all observed sample sites inside some plate (an observation outside every plate, such as a
  conditioned global, does not vote), the one that subsamples (``full_size > size``) if exactly one
  does, else the outermost. Its name is free; ``data_plate="..."`` names it explicitly. A plate without a
  size (``pyro.plate("data")``) is resolved the way Pyro resolves it: its size is the size of the
  tensors inside it. A model with no such plate (no observations, or observations outside every
  plate) is one datapoint (B = 1).
- **Local latent sites** are the unobserved sample sites inside the data plate (any names, any
  number, any support); **global latent sites** are the unobserved sites outside it.
- **max_plate_nesting** is found as Pyro finds it (``ELBO._guess_max_plate_nesting``): the deepest
  vectorized plate dim of either program. Particles are vectorized in a plate just left of it, under a
  name that no plate of the model or guide uses.

``model_structure`` runs the guide once and the model against it, blocked from any outer handler
and with the torch random state restored afterwards, so finding the structure changes no draw
(a module that changes its own state when run, such as a batch norm's running statistics, sees one
extra call, as under Pyro's own guess of ``max_plate_nesting``). A model and a guide that declare
their structure (a ``trace_structure`` attribute, as the project's base classes do: one plate,
``"data"``, at dim -1) are not run for it (``declared_structure``).
"""
from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites
from pyro.infer.util import is_validation_enabled
from pyro.util import check_model_guide_match, check_site_shape

from pyro_air.core.sites import PARTICLE_PLATE, Structure

__all__ = ["PARTICLE_PLATE", "Structure", "declared_structure", "find_data_plate", "model_structure", "sample_sites"]


def declared_structure(model, guide) -> Structure | None:
    """The structure a model and a guide both declare (``trace_structure``), combined; else None."""
    declared = [getattr(obj, "trace_structure", None) for obj in (model, guide)]
    if any(not isinstance(d, Structure) for d in declared):
        return None
    model_side, guide_side = declared
    return Structure(max(model_side.max_plate_nesting, guide_side.max_plate_nesting),
                     model_side.plate_names | guide_side.plate_names, model_side.data_plate)


def sample_sites(trace: poutine.Trace):
    """The sample sites of a trace, without plates' subsample sites."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not poutine.util.site_is_subsample(s)]


def vectorized_frames(site):
    return [f for f in site["cond_indep_stack"] if f.vectorized]


def find_data_plate(model_trace: poutine.Trace, name: str | None = None, ignore: tuple = ()) -> str | None:
    """The name of the data plate of a model trace (module docstring); ``ignore``: plate names that
    are not the model's own (the particle plate)."""
    sites = sample_sites(model_trace)
    if name is not None:
        names = {f.name for s in sites for f in vectorized_frames(s)} - set(ignore)
        if name not in names:
            raise ValueError(f"the model has no plate named {name!r} (its plates: "
                             f"{', '.join(sorted(names)) or 'none'}); pass data_plate= one of them or None")
        return name
    # observations outside every plate (a conditioned global, a pyro.factor) do not say where the data are
    observed = [s for s in sites if s["is_observed"] and any(f.name not in ignore for f in vectorized_frames(s))]
    if not observed:
        return None
    common = None
    for site in observed:
        frames = [f for f in vectorized_frames(site) if f.name not in ignore]
        names = [f.name for f in frames]
        common = names if common is None else [n for n in common if n in names]
    if not common:
        return None
    frames = {f.name: f for s in observed for f in vectorized_frames(s)}
    subsampled = [n for n in common if frames[n].full_size is not None and frames[n].size != -1
                  and frames[n].full_size > frames[n].size]
    return subsampled[0] if len(subsampled) == 1 else common[0]  # cond_indep_stack lists outermost first


def check_pair(model_trace: poutine.Trace, guide_trace: poutine.Trace) -> None:
    """Pyro's own validation of a (model, guide) pair, as ``Trace_ELBO`` runs it under
    ``pyro.enable_validation``: the guide's sites against the model's, and every site's log density
    against its plates (before any particle dim exists: ``max_plate_nesting`` unbounded)."""
    check_model_guide_match(model_trace, guide_trace)
    for trace in (model_trace, guide_trace):
        pruned = prune_subsample_sites(trace)
        pruned.compute_log_prob()
        for site in pruned.nodes.values():
            if site["type"] == "sample":
                check_site_shape(site, max_plate_nesting=math.inf)


def model_structure(model, guide, args, kwargs, data_plate: str | None = None, declared_by=None,
                    max_plate_nesting: int | None = None, num_particles: int = 1) -> Structure:
    """Run ``guide`` once and ``model`` against it (blocked, random state restored); see module doc.
    ``declared_by``: the (model, guide) pair whose declared structure is used instead, if both declare
    one and ``data_plate`` is not given. ``max_plate_nesting`` given (as to Pyro's ELBOs): the run is
    already vectorized over ``num_particles`` particles left of it, as Pyro runs a model whose
    nesting it is told (a model may rely on the particle dim being there)."""
    if declared_by is not None and data_plate is None:
        declared = declared_structure(*declared_by)
        if declared is not None:
            return declared
    if max_plate_nesting is not None and num_particles > 1:
        return _vectorized_structure(model, guide, args, kwargs, data_plate, int(max_plate_nesting), num_particles)
    with torch.random.fork_rng(devices=[]), poutine.block():
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        if is_validation_enabled():
            check_pair(model_trace, guide_trace)
    return _structure_of(model_trace, guide_trace, data_plate)


def _structure_of(model_trace, guide_trace, data_plate, particle_plate=None, nesting=None) -> Structure:
    ignore = () if particle_plate is None else (particle_plate,)
    frames = [f for trace in (model_trace, guide_trace) for s in sample_sites(trace) for f in vectorized_frames(s)
              if f.name not in ignore]
    if nesting is None:
        nesting = -min(f.dim for f in frames) if frames else 0  # not min(..., default=): a torch.compile graph break
    names = frozenset(f.name for trace in (model_trace, guide_trace) for s in trace.nodes.values()
                      for f in s.get("cond_indep_stack", ()) if f.name not in ignore)
    return Structure(nesting, names, find_data_plate(model_trace, data_plate, ignore=ignore))


def _vectorized_structure(model, guide, args, kwargs, data_plate, nesting, num_particles) -> Structure:
    """The structure from one run under a particle plate at dim -(nesting + 1), named ``"particles"``,
    or ``"particles_1"``, ... when a plate of the model or guide already has that name."""
    taken = set()
    while True:
        name = Structure(nesting, frozenset(taken), None).particle_plate_name()
        try:
            with torch.random.fork_rng(devices=[]), poutine.block():
                with pyro.plate(name, num_particles, dim=-(nesting + 1)):
                    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
                    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        except ValueError as err:
            if f"'{name}'" in str(err) and name not in taken:   # a plate of the same name: take the next one
                taken.add(name)
                continue
            raise
        return _structure_of(model_trace, guide_trace, data_plate, particle_plate=name, nesting=nesting)
