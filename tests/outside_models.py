"""A corpus of Pyro programs written the way users outside this project write them (issue 31).

Each case is a plain model / guide pair of functions with its own site and plate names, built on
``pyro.param`` / ``pyro.module`` as Pyro's tutorials do, and a ``data(n)`` that returns the model's
positional arguments for n datapoints (the first dim of every tensor is the datapoint). Written
here for the tests; none is taken from elsewhere.

- ``renamed_vae``: a VAE whose sites are "latent" / "pixels" in a plate "batch".
- ``sequential``: a deep-Markov-style model: z_1..z_T under ``pyro.markov``, masks on the steps,
  ``poutine.scale`` annealing of the latents, the data plate named "z_minibatch".
- ``semi_supervised``: a size-less ``pyro.plate("data")``, observed labels y and a local z.
- ``nested``: the data plate at dim -2 with a feature plate at dim -1 inside it.
- ``user_particles``: a user plate named "particles".
- ``factor``: a global mean mu outside the data plate, a local z inside (closed form: ``exact_log_px``).
- ``constrained``: Gamma, Beta and Dirichlet local latents.
- ``mixture``: a discrete local latent (closed form: ``exact_log_px``).
- ``no_broadcast``: a guide that concatenates a draw with x, so it cannot broadcast over particles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.distributions import constraints


@dataclass
class Case:
    name: str
    model: object
    guide: object
    data: object                      # n -> tuple of the model's positional arguments
    has_globals: bool = False
    discrete: bool = False
    broadcasts: bool = True
    data_plate: str = "batch"
    local_sites: tuple = ()
    extra: dict = field(default_factory=dict)


def _seeded(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def renamed_vae(plate_name="batch"):
    torch.manual_seed(0)
    dec, enc = nn.Linear(2, 5), nn.Linear(5, 4)

    def model(x):
        pyro.module("decoder", dec)
        with pyro.plate(plate_name, x.shape[0]):
            latent = pyro.sample("latent", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("pixels", dist.Bernoulli(logits=dec(latent)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", enc)
        with pyro.plate(plate_name, x.shape[0]):
            h = enc(x)
            pyro.sample("latent", dist.Normal(h[..., :2], nn.functional.softplus(h[..., 2:]) + 0.1).to_event(1))

    def data(n):
        return (torch.bernoulli(torch.full((n, 5), 0.4), generator=_seeded(1)),)

    return Case("renamed_vae" if plate_name == "batch" else "user_particles", model, guide, data,
                data_plate=plate_name, local_sites=("latent",))


def sequential(steps=3):
    torch.manual_seed(0)
    trans, emit, comb_z, comb_x = nn.Linear(2, 2), nn.Linear(2, 3), nn.Linear(2, 2), nn.Linear(3, 2)

    def model(seqs, mask, annealing=0.5):
        pyro.module("trans", trans)
        pyro.module("emit", emit)
        with pyro.plate("z_minibatch", seqs.shape[0]):
            z_prev = seqs.new_zeros(seqs.shape[0], 2)
            for t in pyro.markov(range(1, steps + 1)):
                with poutine.scale(scale=annealing):
                    z_t = pyro.sample(f"z_{t}", dist.Normal(trans(z_prev), 1.0).to_event(1).mask(mask[:, t - 1]))
                pyro.sample(f"x_{t}", dist.Normal(emit(z_t), 0.5).to_event(1).mask(mask[:, t - 1]),
                            obs=seqs[:, t - 1])
                z_prev = z_t

    def guide(seqs, mask, annealing=0.5):
        pyro.module("comb_z", comb_z)
        pyro.module("comb_x", comb_x)
        with pyro.plate("z_minibatch", seqs.shape[0]):
            z_prev = seqs.new_zeros(seqs.shape[0], 2)
            for t in pyro.markov(range(1, steps + 1)):
                loc = comb_z(z_prev) + comb_x(seqs[:, t - 1])
                with poutine.scale(scale=annealing):
                    z_prev = pyro.sample(f"z_{t}", dist.Normal(loc, 0.7).to_event(1).mask(mask[:, t - 1]))

    def data(n):
        g = _seeded(2)
        seqs = torch.randn(n, steps, 3, generator=g)
        mask = torch.ones(n, steps, dtype=torch.bool)
        mask[::2, -1] = False   # every other sequence is one step shorter
        return seqs, mask

    return Case("sequential", model, guide, data, data_plate="z_minibatch",
                local_sites=tuple(f"z_{t}" for t in range(1, steps + 1)))


def semi_supervised():
    torch.manual_seed(0)
    dec_z, dec_y, enc_x, enc_y = nn.Linear(2, 4), nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(3, 4)

    def model(xs, ys):
        pyro.module("dec_z", dec_z)
        pyro.module("dec_y", dec_y)
        b = xs.shape[0]
        with pyro.plate("data"):
            y = pyro.sample("y", dist.OneHotCategorical(logits=xs.new_zeros(b, 3)), obs=ys)
            z = pyro.sample("z", dist.Normal(xs.new_zeros(b, 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=dec_z(z) + dec_y(y)).to_event(1), obs=xs)

    def guide(xs, ys):
        pyro.module("enc_x", enc_x)
        pyro.module("enc_y", enc_y)
        with pyro.plate("data"):
            h = enc_x(xs) + enc_y(ys)
            pyro.sample("z", dist.Normal(h[..., :2], nn.functional.softplus(h[..., 2:]) + 0.1).to_event(1))

    def data(n):
        g = _seeded(3)
        xs = torch.bernoulli(torch.full((n, 4), 0.5), generator=g)
        ys = nn.functional.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
        return xs, ys

    return Case("semi_supervised", model, guide, data, data_plate="data", local_sites=("z",))


def nested():
    torch.manual_seed(0)
    w = nn.Parameter(torch.tensor([0.5, -0.3]))

    def model(x):
        loadings = pyro.param("loadings", w.detach().clone())
        bias = pyro.param("bias", torch.zeros(x.shape[1]))
        with pyro.plate("rows", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            loc = (z * loadings).sum(-1)
            with pyro.plate("cols", x.shape[1], dim=-1):
                pyro.sample("x", dist.Normal(loc + bias, 1.0), obs=x)

    def guide(x):
        a = pyro.param("a", torch.zeros(x.shape[1], 2))
        s = pyro.param("s", torch.ones(2), constraint=constraints.positive)
        with pyro.plate("rows", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal((x @ a).unsqueeze(-2), s).to_event(1))

    def data(n):
        return (torch.randn(n, 3, generator=_seeded(4)),)

    return Case("nested", model, guide, data, data_plate="rows", local_sites=("z",))


FACTOR = dict(d=2, prior_scale=1.5, noise=0.8, loading=torch.tensor([[1.0], [0.5]]))


def factor(exact_globals=False, broadcasts=True):
    """x_b = mu + W z_b + noise, mu ~ N(0, s0^2 I) global, z_b ~ N(0, 1) local; the guide of z is the
    exact p(z_b | x_b, mu); q(mu) is learnable (or the exact posterior with ``exact_globals``).
    ``broadcasts=False``: the guide refuses a particle dim (it checks that z is [B, 1])."""
    d, s0, sigma, W = FACTOR["d"], FACTOR["prior_scale"], FACTOR["noise"], FACTOR["loading"]
    local_cov = torch.linalg.inv(torch.eye(1) + W.T @ W / sigma ** 2)

    def model(x):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(d), s0).to_event(1))
        with pyro.plate("batch", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(mu + z @ W.T, sigma).to_event(1), obs=x)

    def guide(x):
        if exact_globals:
            loc, cov = exact_mu_posterior(x)
            mu = pyro.sample("mu", dist.MultivariateNormal(loc, cov))
        else:
            loc = pyro.param("mu_loc", torch.zeros(d))
            scale = pyro.param("mu_scale", torch.ones(d), constraint=constraints.positive)
            mu = pyro.sample("mu", dist.Normal(loc, scale).to_event(1))
        with pyro.plate("batch", x.shape[0]):
            mean = ((x - mu) @ W / sigma ** 2) @ local_cov
            z = pyro.sample("z", dist.MultivariateNormal(mean, local_cov))
            if not broadcasts and z.dim() != 2:
                raise RuntimeError(f"this guide handles z of shape [B, 1] only, got {list(z.shape)}")

    def data(n):
        g = _seeded(5)
        mu = torch.randn(d, generator=g) * s0
        return (mu + torch.randn(n, 1, generator=g) @ W.T + sigma * torch.randn(n, d, generator=g),)

    return Case("factor", model, guide, data, has_globals=True, data_plate="batch", local_sites=("z",))


def marginal_cov():
    W, sigma = FACTOR["loading"], FACTOR["noise"]
    return W @ W.T + sigma ** 2 * torch.eye(FACTOR["d"])


def exact_mu_posterior(x):
    """p(mu | x_1..N) of the factor model: precision I / s0^2 + N C^-1, mean S C^-1 sum_b x_b."""
    d, s0 = FACTOR["d"], FACTOR["prior_scale"]
    c_inv = torch.linalg.inv(marginal_cov())
    cov = torch.linalg.inv(torch.eye(d) / s0 ** 2 + len(x) * c_inv)
    return cov @ c_inv @ x.sum(0), cov


def factor_exact_log_px(x):
    """log p(x_1..N) of the factor model: vec(x) ~ N(0, I_N (x) C + 1 1^T (x) s0^2 I)."""
    n, d = x.shape
    cov = torch.kron(torch.eye(n), marginal_cov()) + torch.kron(torch.ones(n, n), FACTOR["prior_scale"] ** 2 * torch.eye(d))
    return dist.MultivariateNormal(torch.zeros(n * d), cov).log_prob(x.reshape(-1))


def constrained():
    def model(x):
        with pyro.plate("batch", x.shape[0]):
            rate = pyro.sample("rate", dist.Gamma(2.0, 2.0))
            p = pyro.sample("p", dist.Beta(2.0, 3.0))
            w = pyro.sample("w", dist.Dirichlet(torch.ones(3)))
            pyro.sample("x", dist.Normal(rate + p + w[..., 0], 0.5), obs=x)

    def guide(x):
        a = pyro.param("a", torch.tensor(2.0), constraint=constraints.positive)
        b = pyro.param("b", torch.tensor(1.5), constraint=constraints.positive)
        c = pyro.param("c", torch.ones(3), constraint=constraints.positive)
        with pyro.plate("batch", x.shape[0]):
            pyro.sample("rate", dist.Gamma(a * (1 + 0.1 * x.abs()), 2.0))
            pyro.sample("p", dist.Beta(b, 2.0))
            pyro.sample("w", dist.Dirichlet(c))

    def data(n):
        return (1.0 + torch.rand(n, generator=_seeded(6)),)

    return Case("constrained", model, guide, data, local_sites=("rate", "p", "w"))


MIXTURE = dict(weight=0.3, means=(-1.0, 2.0), scale=1.0)


def mixture(exact_guide=False):
    """c_b ~ Bernoulli(0.3), x_b ~ N(means[c_b], 1): a discrete local latent; the guide is learnable
    logistic in x (or the exact posterior with ``exact_guide``)."""
    pi, (m0, m1), s = MIXTURE["weight"], MIXTURE["means"], MIXTURE["scale"]

    def model(x):
        shift = pyro.param("shift", torch.tensor(0.0))
        with pyro.plate("batch", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(torch.tensor(pi)))
            pyro.sample("x", dist.Normal(torch.where(c.bool(), m1 + shift, m0 + shift), s), obs=x)

    def guide(x):
        if exact_guide:
            logits = (dist.Normal(m1, s).log_prob(x) + math.log(pi)) - (dist.Normal(m0, s).log_prob(x) + math.log(1 - pi))
        else:
            logits = pyro.param("slope", torch.tensor(0.5)) * x + pyro.param("offset", torch.tensor(-0.2))
        with pyro.plate("batch", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(logits=logits))

    def data(n):
        g = _seeded(7)
        c = torch.rand(n, generator=g) < pi
        return (torch.where(c, m1, m0) + s * torch.randn(n, generator=g),)

    return Case("mixture", model, guide, data, discrete=True, local_sites=("c",))


def mixture_exact_log_px(x):
    pi, (m0, m1), s = MIXTURE["weight"], MIXTURE["means"], MIXTURE["scale"]
    return torch.logaddexp(dist.Normal(m1, s).log_prob(x) + math.log(pi),
                           dist.Normal(m0, s).log_prob(x) + math.log(1 - pi))


def no_broadcast():
    torch.manual_seed(0)
    enc, step, dec = nn.Linear(3, 2), nn.Linear(5, 2), nn.Linear(4, 3)

    def model(x):
        pyro.module("dec", dec)
        with pyro.plate("batch", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            z2 = pyro.sample("z2", dist.Normal(z1, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(dec(torch.cat([z1, z2], -1)), 1.0).to_event(1), obs=x)

    def guide(x):
        pyro.module("enc", enc)
        pyro.module("step", step)
        with pyro.plate("batch", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(enc(x), 0.8).to_event(1))
            pyro.sample("z2", dist.Normal(step(torch.cat([z1, x], dim=1)), 0.8).to_event(1))  # dim=1: 2-D only

    def data(n):
        return (torch.randn(n, 3, generator=_seeded(8)),)

    return Case("no_broadcast", model, guide, data, broadcasts=False, local_sites=("z1", "z2"))



def scale_global_model(x):
    """A Normal-Normal model whose observation scale s is a global latent (outside the data plate)."""
    s = pyro.sample("s", dist.LogNormal(0.0, 0.5))
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, s), obs=x)


def scale_global_guide(x):
    s = pyro.sample("s", dist.LogNormal(0.1, 0.3))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(x / (1 + s ** 2), 0.7))


def corpus() -> list[Case]:
    return [renamed_vae(), sequential(), semi_supervised(), nested(), renamed_vae("particles"), factor(),
            constrained(), mixture(), no_broadcast()]


CASE_NAMES = ["renamed_vae", "sequential", "semi_supervised", "nested", "user_particles", "factor",
              "constrained", "mixture", "no_broadcast"]


def build(name: str) -> Case:
    return {c.name: c for c in corpus()}[name]
