"""Objectives: the objectives' hyper-parameters and what an objective needs of its guide.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""

from tests.errors.builders import binary, pair
from tests.errors.table import Case, raised

TITLE = "Objectives"


def _num_particles(tmp, mp):
    from pyro_air import infer
    return raised(infer.build, "iwae", num_particles=0)


def _objective(name, **cfg):
    from pyro_air import infer
    return lambda tmp, mp: raised(infer.build, name, **cfg)


def _cubo_one_particle(tmp, monkeypatch):
    from pyro_air import infer

    return raised(infer.build, "cubo", num_particles=1)


def _consistency_negative_weight(tmp, monkeypatch):
    from pyro_air import infer

    return raised(infer.build, "consistency", weight=-1.0)


def _consistency_guide_without_penalty(tmp, monkeypatch):
    from pyro_air import infer
    from pyro_air.infer.consistency import ConsistencyRegularized

    model, guide = pair()
    return raised(ConsistencyRegularized(infer.build("elbo"), weight=1.0).loss, model, guide, binary(4))


CASES = [
    Case("num-particles", "`num_particles < 1`", "ValueError", "num_particles must be an integer >= 1, got 0",
         _num_particles),
    Case("infovae-lambda", "InfoVAE λ ≤ 0", "ValueError",
         "lam (the InfoVAE scaling coefficient lambda) must be > 0, got 0.0", _objective("infovae", lam=0.0)),
    Case("mmd-kernel", "unknown MMD kernel", "ValueError", "unknown kernel 'laplace'; use one of rbf, imq",
         _objective("infovae", kernel="laplace")),
    Case("renyi-alpha-one", "Rényi α = 1", "ValueError",
         "alpha = 1 makes the Rényi bound 1/(1 - alpha) log E[w^(1 - alpha)] divide by zero; its limit is the ELBO: "
         "use pyro_air.infer.MonteCarloELBO (infer.build('elbo')) instead", _objective("renyi", alpha=1.0)),
    Case("cubo-n", "CUBO with n ≤ 1", "ValueError",
         "CUBO_n is an upper bound of log p(x) only for n >= 1 and n = 1 is the degenerate KL(p || q) limit; pass a "
         "finite n > 1 (n = 2 is CHIVI's choice), got n=1.0", _objective("cubo", n=1.0)),
    Case("iwae-estimator", "unknown IWAE gradient estimator", "ValueError",
         "unknown IWAE gradient estimator 'reinforce'; choose one of standard, dreg, stl",
         _objective("iwae", estimator="reinforce")),
    Case("avo-probability", "AVO probability a outside [0, 1]", "ValueError",
         "a (the probability of an AVO step) must lie in [0, 1], got 1.5",
         _objective("avo", num_transitions=2, a=1.5)),
    Case("cubo-one-particle", "CUBO with `num_particles < 2`", "ValueError",
         "CUBO's gradient estimator normalizes each particle by the other particles' weights, so it needs "
         "num_particles >= 2 (8 or more is advisable: its variance grows fast as K falls), got num_particles=1",
         _cubo_one_particle),
    Case("consistency-negative-weight", "consistency weight λ < 0 (`ConsistencyRegularized`)", "ValueError",
         "weight (lambda, the consistency penalty's weight) must be >= 0, got -1.0; CR-VAE uses lambda around 0.1-1 "
         "(0 = no penalty)", _consistency_negative_weight),
    Case("consistency-guide-without-penalty", "`ConsistencyRegularized` with a guide that has no `penalty(x)`",
         "TypeError", "ConsistencyRegularized needs a guide with penalty(x) (e.g. pyro_air.guides.ConsistencyEncoder); "
         "GaussianEncoder has none", _consistency_guide_without_penalty),
]
