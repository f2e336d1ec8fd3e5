"""Model names and likelihoods: unknown names in the registries, model settings, data outside a likelihood's support.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.builders import pair
from tests.errors.table import Case, raised

TITLE = "Model names and likelihoods"


def _non_binary(tmp, mp):
    from pyro_air import infer
    return raised(infer.MonteCarloELBO().loss, *pair(), torch.full((4, 784), 0.5))


def _unknown_name(tmp, mp):
    from pyro_air import guides
    return raised(guides.build, "nope")


def _noise_scale(tmp, mp):
    from pyro_air import models
    return raised(models.build, "linear-gaussian", noise_scale=-0.5)


def _grey_out_of_unit_interval(tmp, mp):
    from pyro_air import models
    model = models.build("continuous-bernoulli-vae", x_dim=4, z_dim=2, hidden=(8,))
    return raised(model.validate, torch.full((2, 4), 255.0))


CASES = [
    Case("non-binary", "non-binary x for a Bernoulli likelihood", "ValueError",
         "BernoulliVAE has a Bernoulli likelihood and needs binary x in {0, 1}, but x has values in [0.5, 0.5]; "
         "binarize first (pyro_air.data.binarize, or torch.bernoulli(x) for dynamic binarization)", _non_binary),
    Case("unknown-name", "unknown model / guide / objective name", "KeyError",
         "unknown guide 'nope'; known guides are: …. Pick one of these names.", _unknown_name),
    Case("noise-scale", "noise scale σ ≤ 0 (linear-Gaussian model)", "ValueError", "noise_scale must be > 0, got -0.5",
         _noise_scale),
    Case("grey-out-of-unit-interval", "data outside [0, 1] for the continuous-Bernoulli likelihood", "ValueError",
         "ContinuousBernoulliVAE has a continuous-Bernoulli likelihood and needs grey levels x in [0, 1], but x has "
         "values in [255, 255]; rescale it (e.g. x / 255 for 8-bit images), or use the Gaussian likelihood "
         "(--likelihood gaussian) for unbounded data", _grey_out_of_unit_interval),
]
