"""The over-expressive encoder of AIR Appendix A: the Gaussian MLP encoder with one more hidden layer.

AIR Table 4 / Appendix E: encoder x-d-d-d-z against the usual x-d-d-z, with the same decoder, to
show that a more expressive amortization family can hurt test log-likelihood.
"""
from __future__ import annotations

from pyro_air.core.validation import check_hidden
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.registry import GUIDES


@GUIDES.register("gaussian-large", hidden=True)
class LargeGaussianEncoder(GaussianEncoder):
    """``hidden`` names the standard encoder's layers; one more layer of width hidden[-1] is added
    (hidden=(500, 500) gives 784-500-500-500-z)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), activation: str = "tanh"):
        hidden = check_hidden(hidden)
        if not hidden:
            raise ValueError("hidden must name at least one hidden layer, e.g. hidden=(500, 500)")
        super().__init__(x_dim, z_dim, (*hidden, hidden[-1]), activation)
