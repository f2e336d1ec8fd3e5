"""The semi-amortized guide (SA-VAE; Kim, Wiseman, Miller, Sontag & Rush, ICML 2018).

The encoder's output initializes local variational parameters lambda_b = (mu_b, log sigma_b) of a
diagonal Gaussian per datapoint, which then take T steps of gradient ascent on the local ELBO
with the model held at its current parameters (SA-VAE, Algorithm 1, without momentum):

    lambda_0 = enc_phi(x_b)
    lambda_{t+1} = lambda_t + eta * grad_lambda ELBO(lambda_t; theta, x_b),     t = 0..T-1
    ELBO(lambda; theta, x) ~ (1/M) sum_m log p_theta(x, mu + sigma * eps_m) + sum_j log sigma_j + const

(M reparameterized draws eps_m per step; the Gaussian entropy is exact) and q(z | x_b) = N(lambda_T).
Per-datapoint gradients of the summed ELBO are the local gradients, since datapoints do not interact.

Gradients through the refinement (``backprop``):
- ``"full"`` (SA-VAE): the steps are differentiated (``create_graph``), so the training objective's
  gradient reaches phi through d lambda_T / d lambda_0 and theta through both its direct term and
  the steps (Hessian-vector products by double backward; the paper uses finite differences).
- ``"stop"``: a stop-gradient variant: the steps run on detached tensors and their Jacobian is taken
  as the identity, q = N(lambda_0 + stop_grad(lambda_T - lambda_0)): the encoder receives the
  objective's gradient at the refined point, theta only its direct term. One order cheaper, no
  second derivatives. (Kim et al.'s "VAE + SVI" baseline instead trains phi on the ELBO at
  lambda_0; here the encoder keeps learning from the objective it is wrapped in.)

Per-datapoint gradient clipping (``max_grad_norm``, as the paper clips) keeps large steps from
diverging. ``num_steps=0`` is exactly the wrapped encoder.

The model. The steps need log p_theta(x, z); a guide does not import models, so the model is bound
to the guide: the log-weight primitive hands it over through the guide's ``extended_model(model)``
hook on every call (every objective and the traced evaluators), and ``bind(model)`` does it by hand
(needed before calling ``posterior`` directly, e.g. for latent metrics). The model is held outside
the module tree (its parameters are not the guide's). So that the model in use is always the one
the primitive passes, this guide takes the traced path (``supports_direct_scoring()`` is False).

Evaluation. ``refine_in_eval=True`` (default): in eval mode (``pyro_air.evaluate``) q(z | x) is the
refined N(lambda_T) too, computed with gradients enabled locally and returned detached, so
-log p(x) (IWAE-S), the gaps and the latent metrics are those of the semi-amortized posterior.
``refine_in_eval=False`` evaluates the encoder alone, N(lambda_0). ``evaluation_posterior`` names
which one is used.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from pyro_air.core.validation import check_batch, check_positive, check_positive_int
from pyro_air.guides.base import AmortizedGuide
from pyro_air.guides.consistency import check_wrappable, diagonal_normal
from pyro_air.guides.registry import GUIDES, build_encoder

BACKPROP = ("full", "stop")


class SemiAmortized(AmortizedGuide):
    """``encoder``'s q(z | x) refined by ``num_steps`` SVI steps of size ``lr`` (module docstring)."""

    def __init__(self, encoder: AmortizedGuide, num_steps: int = 5, lr: float = 0.1, backprop: str = "full",
                 num_particles: int = 1, max_grad_norm: float | None = 5.0, refine_in_eval: bool = True,
                 model=None):
        check_wrappable(encoder, "SemiAmortized", "SemiAmortized(GaussianEncoder(784, 50), num_steps=5)")
        super().__init__(encoder.x_dim, encoder.z_dim)
        self.encoder = encoder
        self.num_steps = check_positive_int(num_steps, "num_steps (SVI refinement steps; 0 = the encoder alone)",
                                            minimum=0)
        try:
            self.lr = check_positive(lr, "lr (the refinement step size)")
        except ValueError as err:
            raise ValueError(f"{err}; SA-VAE uses step sizes around 0.1-1 on (mu, log sigma)") from None
        if backprop not in BACKPROP:
            raise ValueError(f"backprop must be 'full' (differentiate through the SVI steps) or 'stop' "
                             f"(stop-gradient variant), got {backprop!r}")
        self.backprop = backprop
        self.num_particles = check_positive_int(num_particles, "num_particles (draws per refinement step)")
        self.max_grad_norm = None if max_grad_norm is None else check_positive(max_grad_norm, "max_grad_norm")
        self.refine_in_eval = bool(refine_in_eval)
        self.__dict__["bound_model"] = None  # outside the module tree: not a submodule, not in state_dict
        if model is not None:
            self.bind(model)

    # -- the model ------------------------------------------------------------------------------
    def bind(self, model) -> None:
        """Use ``model.log_joint(x, z) -> [K, B]`` for the refinement steps."""
        supports = getattr(model, "supports_direct_scoring", None)
        if not callable(getattr(model, "log_joint", None)) or supports is None or not supports():
            raise TypeError(f"SemiAmortized refines with the model's log_joint(x, z), which must reproduce its "
                            f"forward (docs/design.md, contract 6); {type(model).__name__} does not offer one "
                            "(a model that overrides forward must also override log_joint)")
        if getattr(model, "z_dim", self.z_dim) != self.z_dim or getattr(model, "x_dim", self.x_dim) != self.x_dim:
            raise ValueError(f"model (x_dim={model.x_dim}, z_dim={model.z_dim}) does not fit this guide "
                             f"(x_dim={self.x_dim}, z_dim={self.z_dim})")
        self.__dict__["bound_model"] = model

    def extended_model(self, model):
        """The log-weight primitive's hook: bind ``model`` and return it unchanged (idempotent)."""
        self.bind(model)
        return model

    @property
    def refines(self) -> bool:
        return self.num_steps > 0 and (self.training or self.refine_in_eval)

    @property
    def evaluation_posterior(self) -> str:
        if self.num_steps == 0 or not self.refine_in_eval:
            return "encoder (lambda_0)"
        return f"refined (lambda_T, T={self.num_steps})"

    # -- q(z | x) -------------------------------------------------------------------------------
    def local_elbo(self, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, num_particles: int):
        """ELBO(lambda; theta, x_b) per datapoint, [B], from ``num_particles`` reparameterized draws."""
        model = self.bound_model
        eps = torch.randn((num_particles, *loc.shape), dtype=loc.dtype, device=loc.device)
        z = loc + eps * log_scale.exp()
        return model.log_joint(x, z).mean(0) + log_scale.sum(-1)

    def refine(self, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor):
        """(loc, log_scale) after ``num_steps`` steps (module docstring)."""
        if self.bound_model is None:
            raise RuntimeError("SemiAmortized has no model to refine with: train it through a pyro_air objective "
                               "(which binds the model) or call guide.bind(model) first")
        differentiable = (self.backprop == "full" and torch.is_grad_enabled() and self.training
                          and (loc.requires_grad or log_scale.requires_grad))
        with torch.enable_grad():
            if differentiable:
                lam = [loc, log_scale]
            else:
                lam = [loc.detach().requires_grad_(), log_scale.detach().requires_grad_()]
            for _ in range(self.num_steps):
                elbo = self.local_elbo(x, *lam, self.num_particles).sum()
                grads = torch.autograd.grad(elbo, lam, create_graph=differentiable)
                if self.max_grad_norm is not None:
                    norm = torch.cat(grads, -1).norm(dim=-1, keepdim=True)
                    factor = torch.clamp(self.max_grad_norm / norm.clamp_min(1e-12), max=1.0)
                    grads = [g * factor for g in grads]
                lam = [p + self.lr * g for p, g in zip(lam, grads)]
                if not differentiable:
                    lam = [p.detach().requires_grad_() for p in lam]
        if differentiable:
            return lam[0], lam[1]
        new_loc, new_log_scale = lam[0].detach(), lam[1].detach()
        if not torch.is_grad_enabled():
            return new_loc, new_log_scale
        return loc + (new_loc - loc.detach()), log_scale + (new_log_scale - log_scale.detach())

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        q0 = self.encoder.posterior(self.encoder.encoder_input(x))
        if not self.refines:
            return q0
        loc, scale = diagonal_normal(q0)
        loc, log_scale = self.refine(x, loc, scale.log())
        return dist.Normal(loc, log_scale.exp(), validate_args=False).to_event(1)

    def forward(self, x: torch.Tensor, num_data: int | None = None):
        if self.validate_inputs:
            check_batch(x, self.x_dim, type(self).__name__)
        if not self.refines:
            return self.encoder(x, num_data=num_data)
        return super().forward(x, num_data=num_data)

    def supports_direct_scoring(self) -> bool:
        return False  # traced, so the primitive's extended_model hook hands over the model in use

    def extra_repr(self) -> str:
        return (f"num_steps={self.num_steps}, lr={self.lr}, backprop={self.backprop}, "
                f"num_particles={self.num_particles}, max_grad_norm={self.max_grad_norm}")


@GUIDES.register("semi-amortized")
def semi_amortized(encoder="gaussian", num_steps: int = 5, lr: float = 0.1, backprop: str = "full",
                   num_particles: int = 1, max_grad_norm: float | None = 5.0, refine_in_eval: bool = True,
                   **encoder_cfg) -> SemiAmortized:
    """Registry builder: ``encoder`` is a guide name (``encoder_cfg`` its options), a dict or an instance."""
    return SemiAmortized(build_encoder(encoder, encoder_cfg), num_steps, lr, backprop, num_particles, max_grad_norm,
                         refine_in_eval)
