"""The annealing target of AIS for any Pyro model: HMC on all continuous local latents, in
unconstrained space, with the log joint taken from the model's trace.

For a model this project did not write (no ``prior`` / ``likelihood`` methods), the local latent
sites (inside the data plate; ``pyro_air.infer.structure``) of one datapoint are stacked into one
unconstrained vector u = (T_s^-1(z_s))_s, T_s = biject_to(support of site s), and the chains run on

    log q0_u(u) = log q0(T(u)) + log |det dT/du|,      l(u) = log p(x, T(u)) - log q0(T(u)),

where q0 is the guide's joint density of the local sites (any guide whose sites are all scored by
the model, sequential ones included: the guide is replayed at T(u)) or the model's own prior over
them (``"prior"``: the model with its observed sites hidden). Both are read from the traces of the
shared primitive (``pyro_air.infer.log_weights``) with the C chains as its particles, so plates,
masks, ``poutine.scale`` and ``pyro.markov`` count as in every objective. The Jacobian cancels in l,
so the AIS weight of ``pyro_air.evaluate.ais`` is unchanged; it enters the HMC potential through
log q0_u. Refused in one line: global latent sites (AIS anneals each datapoint's own latents) and
discrete local sites (HMC needs continuous ones).
"""
from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to

from pyro_air.infer.log_weights import extend_model, log_importance_weights, sample_sites
from pyro_air.infer.structure import model_structure


def prior_guide(model):
    """The model with its observed sites hidden: a guide that draws every latent from the prior."""
    return poutine.block(model, hide_fn=lambda msg: msg["type"] == "sample" and msg["is_observed"])


class TracedAnnealingTarget:
    """``sample(C)`` -> u [C, B, D] and ``parts(u)`` -> (log q0_u [C, B], l [C, B]) for one batch of
    data (module docstring), the interface of ``ais``'s own target."""

    def __init__(self, model, initial, args: tuple, kwargs: dict | None = None, data_plate: str | None = None):
        self.model, self.args, self.kwargs = model, tuple(args), dict(kwargs or {})
        self.from_prior = isinstance(initial, str)
        self.q0 = prior_guide(model) if self.from_prior else initial
        with torch.random.fork_rng(devices=[]):
            self.structure = model_structure(extend_model(model, self.q0), self.q0, self.args, self.kwargs, data_plate)
        self.sites = None   # [(name, value shape, unconstrained shape, transform, particle index, data index)]

    def _weights(self, num_chains: int, values=None):
        return log_importance_weights(self.model, self.q0, *self.args, num_particles=num_chains, require_reparam=False,
                                      structure=self.structure, vectorize=True, replay_globals=values, **self.kwargs)

    def _record(self, weights) -> None:
        names = [s["name"] for s in sample_sites(weights.guide_trace)
                 if not s["is_observed"] and not weights.layout.is_local(s)]
        if names:
            raise ValueError(f"AIS anneals each datapoint's own latents, but {', '.join(map(repr, names))} "
                             f"{'lies' if len(names) == 1 else 'lie'} outside "
                             f"the data plate {self.structure.data_plate!r}; condition on them (poutine.condition) "
                             "or use log_likelihood")
        layout, sites = weights.layout, []
        for site in sample_sites(weights.guide_trace):
            if site["is_observed"]:   # a conditioned or factor site of the guide: a constant here
                continue
            if site["fn"].support.is_discrete:
                raise ValueError(f"site {site['name']!r} is discrete ({type(site['fn']).__name__}); AIS moves continuous "
                                 "latents by HMC: use log_likelihood for this model")
            value = site["value"]
            transform = biject_to(site["fn"].support)
            u = transform.inv(value)
            event = len(site["fn"].event_shape)
            nb = value.dim() - event
            d = layout.data_dim(site)
            sites.append((site["name"], tuple(u.shape), transform, nb + layout.particle_dim,
                          None if d is None else nb + d))
        self.sites = sites

    def _flatten(self, trace) -> torch.Tensor:
        parts = []
        for name, shape, transform, p, d in self.sites:
            u = transform.inv(trace.nodes[name]["value"]).expand(shape)
            parts.append(_to_front(u, p, d).reshape(shape[p], shape[d] if d is not None else 1, -1))
        return torch.cat(parts, dim=-1)

    def sample(self, num_chains: int) -> torch.Tensor:
        with torch.no_grad():
            try:
                weights = self._weights(num_chains)
            except ValueError:
                raise
            except Exception as err:   # a program that cannot broadcast over the chains' dim
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ValueError(f"AIS runs its chains along one particle dim, but the model or guide cannot broadcast "
                                 f"over it ({type(err).__name__}: {first}); start from 'prior' or use iw_svi") from None
        self._record(weights)
        return self._flatten(weights.guide_trace).detach()

    def flatten_values(self, values: dict, num_chains: int) -> torch.Tensor:
        """u [C, B, D] of given local site values ({name: value of one plain run, first dim the
        datapoint}), the same start for every chain (reverse AIS from exact posterior draws)."""
        if self.sites is None:
            with torch.random.fork_rng(devices=[]):
                self.sample(1)
        missing = sorted({name for name, *_ in self.sites} - set(values))
        if missing:
            raise ValueError(f"posterior_z lacks the local site(s) {', '.join(map(repr, missing))}; pass "
                             "{site name: its values} for every local latent site")
        trace = poutine.Trace()
        for name, *_ in self.sites:
            trace.add_node(name, name=name, type="sample", is_observed=False, value=values[name], infer={})
        sites, self.sites = self.sites, [(n, (num_chains,) + tuple(shape[1:]), t, p, d) for n, shape, t, p, d in self.sites]
        try:
            return self._flatten(trace).detach()
        finally:
            self.sites = sites

    def _values(self, u: torch.Tensor):
        """(a trace holding every local site at T(u), log |det dT/du| as [C, B])."""
        trace, log_det, start = poutine.Trace(), 0.0, 0
        for name, shape, transform, p, d in self.sites:
            # the chains are u's own: the shapes were recorded by the last sample(), which may have
            # drawn another number of chains (the step-size pilot before a reverse run)
            shape = (*shape[:p], u.shape[0], *shape[p + 1:])
            front = _front_shape(shape, p, d)
            size = int(torch.Size(front[2:]).numel())
            piece = u[..., start:start + size].reshape(front)
            start += size
            unconstrained = _from_front(piece, p, d)
            value = transform(unconstrained)
            jac = transform.log_abs_det_jacobian(unconstrained, value)
            jac = _to_front(jac.expand(shape[:jac.dim()]) if jac.dim() else jac.expand(shape[:1]), p, d)
            log_det = log_det + jac.reshape(jac.shape[0], jac.shape[1] if jac.dim() > 1 else 1, -1).sum(-1)
            trace.add_node(name, name=name, type="sample", is_observed=False, value=value, infer={})
        return trace, log_det

    def parts(self, u: torch.Tensor):
        trace, log_det = self._values(u)
        weights = self._weights(u.shape[0], trace)
        log_q0 = sum(weights.site_terms(s) for s in sample_sites(weights.guide_trace) if weights.layout.is_local(s))
        return log_q0 + log_det, weights.log_w


def simulate_data(model, args: tuple, kwargs: dict | None = None):
    """(new args, {local latent site: value}): the model run forward with its observed sites sampled
    (``poutine.uncondition``); each positional argument that a site observes as it is (``obs=x``)
    is replaced by the simulated value. A model that observes views of its arguments (``x[:, t]``)
    cannot be rebuilt this way: refused in one line."""
    kwargs = dict(kwargs or {})
    conditioned = poutine.trace(model).get_trace(*args, **kwargs)
    simulated = poutine.trace(poutine.uncondition(model)).get_trace(*args, **kwargs)
    new_args = list(args)
    for site in sample_sites(conditioned):
        if not site["is_observed"]:
            continue
        index = next((i for i, a in enumerate(args) if a is site["value"]), None)
        if index is None:
            raise ValueError(f"site {site['name']!r} observes a tensor that is not one of the model's arguments as "
                             "given (a slice or a copy), so simulated data cannot be passed back to the model; pass "
                             "simulated=(x, {site: z}) from your own simulation")
        new_args[index] = simulated.nodes[site["name"]]["value"].detach()
    latents = {s["name"]: s["value"].detach() for s in sample_sites(conditioned) if not s["is_observed"]}
    return tuple(new_args), {name: simulated.nodes[name]["value"].detach() for name in latents}


def _to_front(t: torch.Tensor, p: int, d: int | None) -> torch.Tensor:
    """Move dim p (the chains) first and dim d (the datapoints) second."""
    order = [p] + ([d] if d is not None else []) + [i for i in range(t.dim()) if i not in (p, d)]
    t = t.permute(order)
    return t if d is not None else t.unsqueeze(1)


def _front_shape(shape: tuple, p: int, d: int | None) -> tuple:
    rest = [n for i, n in enumerate(shape) if i not in (p, d)]
    return (shape[p], shape[d] if d is not None else 1, *rest)


def _from_front(t: torch.Tensor, p: int, d: int | None) -> torch.Tensor:
    """The inverse of ``_to_front`` for a tensor of the site's full shape."""
    if d is None:
        t = t.squeeze(1)
    order = [p] + ([d] if d is not None else [])
    order += [i for i in range(t.dim()) if i not in order]
    inverse = [order.index(i) for i in range(t.dim())]
    return t.permute(inverse)
