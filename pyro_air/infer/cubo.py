"""The chi upper bound CUBO_n (Dieng et al. 2017, CHIVI; review of Ganguly et al., section 6.1):

    CUBO_n(x) = (1/n) log E_q[ w^n ] >= log p(x)   for n >= 1,    w = p(x, z) / q(z | x)

(review Eq. 27 and the line below it). Minimizing CUBO_n over the guide minimizes the
chi^n divergence D_chi^n(p(z|x) || q(z|x)) (review Eq. 26-27), since log p(x) does not depend on
the guide.

Evaluation (``loss``): the estimate from K reparameterized particles, in log space,

    CUBO^_n(x) = (1/n) [ logsumexp_k(n log w_k) - log K ]                                   (1)

(the VR estimate of ``renyi.py`` at alpha = 1 - n). Bias: (1) is the log of an unbiased estimate
of E_q[w^n], so by Jensen E[CUBO^_n] <= CUBO_n: it is biased *down*, towards and possibly below
log p(x). The bias vanishes as K grows only if E_q[w^(2n)] is finite (q must cover the posterior's
tails); with heavy-tailed weights CUBO^_n can sit below log p(x) for any practical K.

Training (``loss_and_grads`` / ``differentiable_loss``): the gradient of (1) is NOT used. It is
sum_k softmax(n log w)_k d log w_k, a self-normalized ratio whose denominator shares the samples
of the numerator; its expectation is not a multiple of d CUBO_n and, with few particles, it
points towards *narrower* guides (a narrow q rarely draws the large-weight tail that would
penalize it), which collapses the guide (issue 15: on the linear-Gaussian model c -> 1e-4 within
600 steps at K = 4 and 8; its mean gradient has cosine -0.88 with the true one at K = 8).

Instead, following CHIVI, we estimate the gradient of E_q[w^n] = exp(n CUBO_n), whose
reparameterized Monte Carlo gradient E[n w^n d log w] is unbiased, with a per-particle
leave-one-out normalizer, per datapoint b:

    g_b = (1/K) sum_k a_kb d log w_kb,    a_kb = w_kb^n / m_(-k)b,
    m_(-k)b = (1/(K-1)) sum_{j != k} w_jb^n      (a detached, computed in log space)         (2)

Because m_(-k) is built from the other particles only, it is independent of particle k, so

    E[g_b] = E[1 / m_(-k)b] * E[w_b^n d log w_b] = lambda_b * d CUBO_n(x_b),
    lambda_b = E_q[w_b^n] * E[1 / m_(-k)b] >= 1   (Jensen: E[1/m] >= 1/E[m]).

So per datapoint the expected step has exactly the direction of the true CUBO_n gradient (a
positive multiple of it) at every K >= 2. Across a batch datapoint b is weighted by lambda_b:
about 1 where the weights are light-tailed (lambda -> 1 as K grows), larger where m_(-k) often
underestimates E[w^n], i.e. where the guide fits worst; an amortized guide therefore follows
sum_b lambda_b d CUBO_n(x_b), not the unweighted sum. lambda_b grows fast as K falls and can be
infinite (|mean gradient| / |true gradient| at the issue's start point: 1.2 at K = 64, 12 at K = 8,
~950 at K = 4, ~5e7 at K = 2 without the cap below). Compared with CHIVI's single shared
constant (a max or a scalar), the normalizer keeps every datapoint at scale ~1 (a max-rescaling
weights datapoints by exp(n (CUBO_n(x_b) - max_k log w_kb)), orders of magnitude apart) and puts
a_kb ~ 1 when q is exact, so the step has the size of d CUBO_n, not of d E[w^n].

Two unbiased forms of d log w are available (``estimator=``):

- ``"dreg"`` (default): the doubly reparameterized form. For one particle, the score identity
  E_q[f(z) d_phi log q(z)] = E[(d f / d z)(d z / d phi)], for f = w^n held fixed as a function of
  z (the identity behind DReG, Tucker et al. 2018), gives

      d E_q[w^n] = n (1 - n) E[ w^n (d log w / d z)(d z / d phi) ]                            (3)

  (the path term only, no d_phi log q at fixed z), so g_b = (1 - n)(1/K) sum_k a_kb d^path log w_kb.
  Same expectation as the standard form (the identity is exact; the normalizer is still
  independent of particle k), but every term vanishes when q is the exact posterior (log w is
  constant in z), so its variance goes to zero at the optimum, as for DReG (``iwae.py``).
- ``"standard"``: g_b = (1/K) sum_k a_kb d log w_kb with the path and the score term. Unbiased
  in direction too, and it converges on the linear-Gaussian model at K >= 8, but on a frozen
  MNIST decoder at K = 8 it collapsed the encoder in 3 of 3 seeds (mean scale 0.73 -> 1e-4), as the
  old estimator did, while "dreg" kept it near 1 (experiments/objectives/RESULTS.md). Kept for
  comparison; prefer "dreg".

Variance: g_b is a mean of K terms; its variance is finite when E_q[w^(2n)] is (and
E[1/m_(-k)^2] is), and it falls like 1/K only once K is large enough that m_(-k) is a good
estimate of E[w^n]. For small K (or a guide much narrower than the posterior) a rare particle
with a large weight gets a_k >> 1 (unbounded) against the rest ~ 0: the estimator is unbiased in
direction but its steps are dominated by such draws (the bound on a step's scale below).
K >= 2 is required. Numerically, a_kb is formed as exp(n log w_kb - log m_(-k)b), which never
sees the scale of log w itself (MNIST log-weights of -100s are fine).

One safeguard changes the estimator: the step's scale is bounded relative to K (issue 34). If any
a_kb of the batch exceeds K e^3 (``RATIO_MARGIN`` = 3 nats above log K), all of the batch's a are
divided by one common factor so that the largest is K e^3. Why: Adam divides every later step by
the root of a running mean of squared gradients (beta_2 = 0.999, a memory of ~1000 steps), so one
step G times larger than the typical one shrinks the next hundreds of steps by ~sqrt(0.001) G.
Such steps come from rare draws at small K: on the linear-Gaussian case of issue 15 a single
particle's ratio reached e^13 in the first 15 steps, Adam's second moment went from ~1e2 to
1e7-1e8, and the guide stalled (K = 4: "dreg" 1 of 3 seeds 0.19 nats above the optimum after 600
steps, "standard" 3 of 3 at 1.4-3.8 nats). With the bound, one particle carries at most e^3 ~ 20
times the weight of the whole datapoint's K particles at balance, and the optimizer's memory
stays at the scale of typical steps. Why this choice (and not a running quantile or a warm-up of
the cap): it is stateless - a step depends on its own draws only, so a resumed run repeats an
uninterrupted one bit for bit - and it never binds near the optimum (there every a_kb ~ 1;
exactly 1 at the exact posterior), so the fixed point is unchanged.
Its bias: a step in which it binds keeps its direction but is shortened relative to the other
steps, i.e. rare large-weight draws count less than their unbiased share (towards the typical
draws, which favour narrower guides). Measured (experiments/objectives/cubo_small_k.py, 600 steps,
seeds 0-2): "dreg" reaches the optimum (gap < 0.01 nats) in 3 of 3 seeds at K = 4, 8 and 16;
"standard" in 3 of 3 at K = 8 and 16, but at K = 4 it collapses (c -> 0) in 2 of 3 seeds, where
before it stalled - its variance at K = 4 is too large for either treatment; use "dreg". On the
frozen MNIST decoder (dreg, K = 8, seeds 0-2) the encoder no longer collapses either, but ends about
10% narrower than with the e^20 cap (mean scale 0.92-0.95 against 0.98-1.09).

A limit no estimator removes: CUBO_n is finite only if E_q[w^n] is. With a saturating decoder
(tanh / sigmoid MLP) p(x | z) tends to a positive constant far from the data, so p(z | x) keeps
the prior's N(0, I) tails, and for a Gaussian guide E_q[w^2] = +inf as soon as one of its scales
is <= 1/sqrt(2). A finite-K estimate then reports a finite number that is not an upper bound,
and training can only follow what its particles see (experiments/objectives/RESULTS.md).

The model is NOT trained by CUBO: minimizing an upper bound over the model parameters would push
log p(x) down. The surrogate uses log p(x, z) - log p(x, z') + sg(log p(x, z')) with z' = sg(z)
(the primitive's fixed-latent densities), so the model's parameters receive exactly zero gradient
while the path through z still reaches the guide. Train the model with a lower bound (ELBO, IWAE)
and the guide with CUBO, or use CUBO for evaluation (``pyro_air.evaluate.upper_bound``).
"""
from __future__ import annotations

import math

import torch

from pyro_air.infer.base import LogWeightObjective
from pyro_air.infer.iwae import path_only_log_weights
from pyro_air.infer.log_weights import LogWeights
from pyro_air.infer.registry import OBJECTIVES
from pyro_air.infer.renyi import renyi_bound

ESTIMATORS = ("dreg", "standard")

# the largest a_kb a step may carry is K e^RATIO_MARGIN (module docstring: the bound on a step's scale)
RATIO_MARGIN = 3.0


def cubo_bound(log_w: torch.Tensor, n: float = 2.0) -> torch.Tensor:
    """CUBO^_n = (1/n) log (1/K) sum_k w_k^n for every column of a [K, B] tensor (Eq. 1, log space)."""
    return renyi_bound(log_w, 1.0 - n)


def leave_one_out_logmeanexp(a: torch.Tensor) -> torch.Tensor:
    """[K, B] -> [K, B]: log (1/(K-1)) sum_{j != k} exp(a_jb), stable and O(K B).

    For k other than the column's argmax, exp(a_k - logsumexp(a)) <= 1/2, so
    logsumexp(a) + log1p(-exp(a_k - logsumexp(a))) has no cancellation; for the argmax the sum
    is taken directly over the other rows.
    """
    num = a.shape[0]
    if num < 2:
        raise ValueError(f"a leave-one-out mean needs at least 2 rows, got {num}")
    lse = torch.logsumexp(a, dim=0, keepdim=True)
    top = a.argmax(dim=0, keepdim=True)
    is_top = torch.zeros_like(a, dtype=torch.bool).scatter_(0, top, True)
    without_top = torch.logsumexp(a.masked_fill(is_top, -math.inf), dim=0, keepdim=True)
    others = lse + torch.log1p(-torch.exp(torch.clamp(a - lse, max=math.log(0.5))))
    return torch.where(is_top, without_top, others) - math.log(num - 1)


def cubo_gradient_weights(log_w: torch.Tensor, n: float = 2.0) -> torch.Tensor:
    """The detached weights a_kb = w_kb^n / m_(-k)b of estimator (2), shape [K, B], divided by one common
    factor where needed so that none exceeds K e^RATIO_MARGIN (the bound on a step's scale)."""
    a = n * log_w.detach()
    log_ratio = a - leave_one_out_logmeanexp(a)
    excess = log_ratio.max() - (math.log(a.shape[0]) + RATIO_MARGIN)
    if excess > 0:  # one common factor for the whole batch: the step's direction is unchanged
        log_ratio = log_ratio - excess
    return torch.exp(log_ratio)


@OBJECTIVES.register("cubo")
class CUBO(LogWeightObjective):
    """CUBO_n: ``loss`` = (N/B) sum_b CUBO^_n(x_b) (Eq. 1); gradients from estimator (2), guide only,
    with d log w in the ``estimator`` form "dreg" (Eq. 3, default) or "standard".

    ``per_datapoint_bound`` returns -CUBO^_n (the quantity the base class maximizes), so
    ``loss = -(N/B) sum_b per_datapoint_bound = (N/B) sum_b CUBO^_n``. ``differentiable_loss``
    has the same value, and its gradient is (N/B) sum_b g_b with g_b of Eq. (2).
    """

    def __init__(self, n: float = 2.0, num_particles: int = 8, estimator: str = "dreg", data_plate: str | None = None):
        super().__init__(num_particles=num_particles, data_plate=data_plate)
        try:
            n = float(n)
        except (TypeError, ValueError):
            raise ValueError(f"n must be a number > 1, got {n!r}") from None
        if not n > 1.0 or n == float("inf"):
            raise ValueError(
                f"CUBO_n is an upper bound of log p(x) only for n >= 1 and n = 1 is the degenerate "
                f"KL(p || q) limit; pass a finite n > 1 (n = 2 is CHIVI's choice), got n={n!r}"
            )
        if num_particles < 2:
            raise ValueError(
                f"CUBO's gradient estimator normalizes each particle by the other particles' weights, so it "
                f"needs num_particles >= 2 (8 or more is advisable: its variance grows fast as K falls), "
                f"got num_particles={num_particles}"
            )
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown CUBO gradient estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        self.n = n
        self.estimator = estimator
        self.refuses_global_latents = "an upper bound has no per-datapoint form over global latents"

    def log_weights(self, model, guide, *args, **kwargs) -> LogWeights:
        return self.importance_weights(model, guide, args, kwargs, fixed_latent_densities=True)

    def upper_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return cubo_bound(log_w, self.n)

    def per_datapoint_bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return -cubo_bound(log_w, self.n)

    def surrogate_per_datapoint(self, weights: LogWeights) -> torch.Tensor:
        """-CUBO^_n in value; gradient -g_b of Eq. (2), through the guide only."""
        model_free = weights.log_p_fixed - weights.log_p_fixed.detach()  # theta-gradient of log p, 0 in value
        a = cubo_gradient_weights(weights.log_w, self.n)
        if self.estimator == "dreg":
            carried = (1.0 - self.n) * (path_only_log_weights(weights) - model_free)
        else:
            carried = weights.log_w - model_free
        carrier = (a * (carried - carried.detach())).mean(0)  # 0 in value
        return -(cubo_bound(weights.log_w.detach(), self.n) + carrier)
