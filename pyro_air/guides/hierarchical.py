"""Hierarchical variational inference (HVI) guide and its extended model (AVO paper, section 3.1).

The guide is a Markov chain of T learned stochastic refinements:

    z_0 ~ q_0(z_0 | x),   z_t ~ q_t(z_t | z_{t-1}, x)  (t = 1..T),   final sample z = z_T

with sites "z_0" ... "z_{T-1}" and "z". Its marginal q_T(z_T | x) is intractable, so the model is
*extended* by reverse kernels r_t(z_{t-1} | z_t, x) (Eq. 3 of the paper):

    log p(x) >= E_q[ log p(x, z_T) + sum_t log r_t(z_{t-1} | z_t)
                     - log q_0(z_0) - sum_t log q_t(z_t | z_{t-1}) ]                      (Eq. 3)

``HierarchicalGuide.extended_model(model)`` returns that extended model: it runs ``model`` and then
scores every auxiliary site under r inside the same data plate. The log-weight primitive calls
this hook for any guide that has it, so ELBO, IWAE (and every other objective) give the HVI bound
for this guide and any model without changes to the model.

q_0 is the amortized Gaussian of ``GaussianEncoder`` (``amortized=True``; the transitions and
reverse kernels then see the encoder's last hidden layer as context), or a fixed N(0, s^2 I)
initial distribution for non-amortized targets such as the 2-D energies (``amortized=False``).
With T = 0 the guide is its base Gaussian and samples only "z".
"""
from __future__ import annotations

import contextlib

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from pyro_air.core.plates import DATA_PLATE, data_plate
from pyro_air.core.sites import LATENT_SITE, auxiliary_site
from pyro_air.core.validation import check_batch, check_positive
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.registry import GUIDES
from pyro_air.guides.transitions import GatedGaussianTransitions


@GUIDES.register("hierarchical", hidden=True)
class HierarchicalGuide(AmortizedGuide):
    def __init__(self, x_dim: int = 784, z_dim: int = 40, num_transitions: int = 5, hidden=(300, 300),
                 activation: str = "tanh", transition_hidden: int = 300, transition_activation: str = "elu",
                 amortized: bool = True, initial_scale: float = 1.0, transition_gate_bias: float = -1.0,
                 transition_std: float = 1.0):
        super().__init__(x_dim, z_dim)
        if isinstance(num_transitions, bool) or not isinstance(num_transitions, int) or num_transitions < 0:
            raise ValueError(f"num_transitions must be an integer >= 0 (T = 0 is the plain Gaussian guide), "
                             f"got {num_transitions!r}")
        self.num_transitions = num_transitions
        self.amortized = bool(amortized)
        self.initial_scale = check_positive(initial_scale, "initial_scale")
        context_dim = 0
        if self.amortized:
            self.base = GaussianEncoder(x_dim, z_dim, hidden=hidden, activation=activation)
            context_dim = self.base.hidden[-1]
        # both chains start the same way: gate bias and std as given (the defaults: the authors' code)
        start = {"gate_bias": transition_gate_bias, "initial_std": transition_std}
        self.transitions = GatedGaussianTransitions(num_transitions, z_dim, transition_hidden, context_dim,
                                                    transition_activation, **start)
        self.reverse_kernels = GatedGaussianTransitions(num_transitions, z_dim, transition_hidden, context_dim,
                                                        transition_activation, **start)
        self._detach_steps = False

    # -- the pieces ------------------------------------------------------------------------------
    def context(self, x: torch.Tensor) -> torch.Tensor | None:
        """Encoder features c(x) that condition q_t and r_t (None when not amortized)."""
        return self.base.features(self.encoder_input(x)) if self.amortized else None

    def initial(self, x: torch.Tensor, context: torch.Tensor | None = None) -> dist.Distribution:
        """q_0(z_0 | x): the amortized Gaussian, or the fixed N(0, s^2 I)."""
        if self.amortized:
            features = self.context(x) if context is None else context
            loc, raw = self.base.head(features).chunk(2, dim=-1)
            return dist.Normal(loc, nn.functional.softplus(raw) + 1e-4, validate_args=False).to_event(1)
        loc = x.new_zeros(x.shape[0], self.z_dim)
        return dist.Normal(loc, self.initial_scale, validate_args=False).to_event(1)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        """q(z | x) in closed form exists only for T = 0 (the base Gaussian)."""
        if self.num_transitions:
            raise ValueError("q_T(z | x) of a hierarchical guide with T > 0 has no closed form; "
                             "use log_marginal(...) for an importance-sampled estimate")
        return self.initial(x)

    def site_names(self) -> list:
        """Names of z_0 .. z_T in sampling order; the last is "z"."""
        return [auxiliary_site(t) for t in range(self.num_transitions)] + [LATENT_SITE]

    @contextlib.contextmanager
    def detached_steps(self):
        """Within this context z_{t-1} is detached before it enters q_t (AVO, footnote 5)."""
        old, self._detach_steps = self._detach_steps, True
        try:
            yield
        finally:
            self._detach_steps = old

    # -- the guide -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        if self.validate_inputs:
            check_batch(x, self.x_dim, type(self).__name__)
        context = self.context(x)
        names = self.site_names()
        q0 = self.initial(x, context)
        if self.num_transitions:
            transitions = self.transitions  # read once: Pyro registers the parameters on each access
            weights = transitions.weights()
            context_term = transitions.precompute_context(weights, context)
        with data_plate(x, num_data):
            z = pyro.sample(names[0], q0)
            for t in range(self.num_transitions):
                z_in = z.detach() if self._detach_steps else z
                z = pyro.sample(names[t + 1], transitions.distribution(weights, t, z_in, context_term))
        return z

    def initial_guide(self) -> "InitialGuide":
        """A guide that samples only z ~ q_0(z | x) at site "z" (module docstring of ``InitialGuide``)."""
        return InitialGuide(self)

    # -- the extended model (Eq. 3) --------------------------------------------------------------
    def extended_model(self, model):
        """The model with every auxiliary z_{t-1} scored under r_t(z_{t-1} | z_t, x)."""
        if getattr(model, "auxiliary_guide", None) is self:  # already extended (idempotent)
            return model
        if self.num_transitions == 0:
            return model
        return ExtendedModel(model, self)

    def score_auxiliaries(self, x: torch.Tensor, z: torch.Tensor, num_data: int | None = None) -> None:
        """Inside the data plate: z_{t-1} ~ r_t(. | z_t, x) for t = T..1 (replayed, they are scored)."""
        with self._pyro_context:  # as in PyroModule.__call__: parameters go through pyro.param (SVI)
            self._score_auxiliaries(x, z, num_data)

    def _score_auxiliaries(self, x, z, num_data):
        context = self.context(x)
        names = self.site_names()
        reverse = self.reverse_kernels
        weights = reverse.weights()
        context_term = reverse.precompute_context(weights, context)
        # The model has already recorded the data plate's subsample site; a second plate of the
        # same name (same size, same subsample) must not record it again.
        with poutine.block(hide_fn=lambda msg: msg["name"] == DATA_PLATE):
            plate = data_plate(x, num_data)
        with plate:
            for t in range(self.num_transitions, 0, -1):
                z = pyro.sample(names[t - 1], reverse.distribution(weights, t - 1, z, context_term))

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor, z: torch.Tensor, num_samples: int = 100) -> torch.Tensor:
        """Importance-sampled log q_T(z | x) (AVO Appendix C), Tensor[B] for z of shape [B, D]:

            log q_T(z) ~ log (1/S) sum_s q(z, z^s_{<T}) / r(z^s_{<T} | z),  z^s_{<T} ~ r(. | z)

        a stochastic lower bound of log q_T(z) that tightens as S grows (so E[log f - this] is an
        upper bound of the negative KL).
        """
        context = self.context(x)
        z_t = z.expand(num_samples, *z.shape)
        log_w = z.new_zeros(num_samples, z.shape[0])
        forward, reverse = self.transitions, self.reverse_kernels
        q_w, r_w = forward.weights(), reverse.weights()
        q_c, r_c = forward.precompute_context(q_w, context), reverse.precompute_context(r_w, context)
        for t in range(self.num_transitions, 0, -1):
            r = reverse.distribution(r_w, t - 1, z_t, r_c)
            z_prev = r.sample()
            log_w = log_w + forward.distribution(q_w, t - 1, z_prev, q_c).log_prob(z_t) - r.log_prob(z_prev)
            z_t = z_prev
        log_w = log_w + self.initial(x, context).log_prob(z_t)
        return torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(num_samples)))


class ExtendedModel(PyroModule):
    """p(x, z_T) prod_t r_t(z_{t-1} | z_t, x): ``model`` plus the guide's reverse kernels (Eq. 3).

    ``x_dim``, ``z_dim`` and ``validate`` are the wrapped model's, so it can stand in for it.
    """

    def __init__(self, model, guide: HierarchicalGuide):
        super().__init__()
        self._parts = (model, guide)  # a tuple: parameters stay owned by model and guide

    @property
    def trace_structure(self):
        """The wrapped model's declared structure (the reverse kernels add sites in its data plate)."""
        return getattr(self.model, "trace_structure", None)

    @property
    def model(self):
        return self._parts[0]

    @property
    def guide(self) -> HierarchicalGuide:
        return self._parts[1]

    @property
    def auxiliary_guide(self) -> HierarchicalGuide:
        """The guide whose auxiliary sites this model scores (marks the model as extended)."""
        return self._parts[1]

    def __getattr__(self, name):
        if name in ("x_dim", "z_dim", "validate"):
            return getattr(self._parts[0], name)
        return super().__getattr__(name)

    def forward(self, x: torch.Tensor, num_data: int | None = None, auxiliaries: bool = True):
        """Run the model; then (unless ``auxiliaries=False``) score z_{T-1}..z_0 under r."""
        model_trace = poutine.trace(self.model).get_trace(x, num_data=num_data)
        z = model_trace.nodes[LATENT_SITE]["value"]
        if auxiliaries:
            self.guide.score_auxiliaries(x, z, num_data)
        return z


class InitialGuide(nn.Module):
    """z ~ q_0(z | x) of a hierarchical guide at site "z", alone: a normalized density in closed form.

    What it is for: AIS (``pyro_air.evaluate.ais``) anneals from a closed-form initial density to the
    model's p(x, z), whose normalizer is the model's p(x) - the marginal over z = z_T, the quantity the
    extended model's importance weights (Eq. 3) also estimate, since the reverse kernels integrate to
    one. q_T(z | x) itself has no density, so the chain starts from the guide's q_0 (amortized:
    the base Gaussian; else the fixed N(0, s^2 I)); the transitions play no part in the estimate.
    A plain ``nn.Module`` holding the guide: ``eval()`` and ``parameters()`` reach the guide's, and
    the guide's Pyro parameter names are left as they are.
    """

    def __init__(self, guide: HierarchicalGuide):
        super().__init__()
        self.guide = guide
        self.x_dim, self.z_dim = guide.x_dim, guide.z_dim

    def forward(self, x: torch.Tensor, num_data: int | None = None) -> torch.Tensor:
        guide = self.guide
        with guide._pyro_context:  # as in PyroModule.__call__
            q0 = guide.initial(x)
        with data_plate(x, num_data):
            return pyro.sample(LATENT_SITE, q0)
