"""An amortized Gaussian followed by inverse autoregressive flows (IAF; Kingma et al. 2016):

    z_0 ~ N(mu(x), diag sigma(x)^2),   z = f_L o ... o f_1(z_0),
    f_l(u) = mu_l(u) + sigma_l(u) * u   (affine autoregressive; Jacobian triangular)
    log q(z | x) = log N(z_0; mu(x), sigma(x)) - sum_l log |det df_l / du|

A comparison guide for the AVO paper's flow baselines. The flows are Pyro's
``pyro.distributions.transforms.affine_autoregressive`` (shared across x; the base Gaussian is
amortized); site "z" is a ``TransformedDistribution`` with rsample, so every objective and
evaluator works with it unchanged.
"""
from __future__ import annotations

import pyro.distributions as dist
from pyro.distributions.transforms import affine_autoregressive
from torch import nn

from pyro_air.core.validation import check_hidden, check_positive_int
from pyro_air.guides.gaussian import GaussianEncoder
from pyro_air.guides.registry import GUIDES


@GUIDES.register("iaf", hidden=True)
class IAFGuide(GaussianEncoder):
    def __init__(self, x_dim: int = 784, z_dim: int = 50, hidden=(500, 500), activation: str = "tanh",
                 num_flows: int = 2, flow_hidden=(100,)):
        super().__init__(x_dim, z_dim, hidden=hidden, activation=activation)
        self.num_flows = check_positive_int(num_flows, "num_flows")
        self.flow_hidden = check_hidden(flow_hidden, "flow_hidden")
        if z_dim < 2:
            raise ValueError(f"an autoregressive flow needs z_dim >= 2, got {z_dim}")
        self.flows = nn.ModuleList([affine_autoregressive(z_dim, hidden_dims=list(self.flow_hidden))
                                    for _ in range(num_flows)])
        # left a plain nn.Module: the guide's PyroModule registers it via pyro.module on access

    def posterior(self, x) -> dist.Distribution:
        base = super().posterior(x)
        return dist.TransformedDistribution(base, list(self.flows))
