"""Small network builders shared by models and guides."""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


def mlp(sizes, act: str = "tanh", final_activation: bool = False, linear=nn.Linear) -> nn.Sequential:
    """Linear layers through ``sizes`` with an activation between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(linear(n_in, n_out))
        if i < len(sizes) - 2 or final_activation:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def softplus_scale(raw: torch.Tensor, min_scale: float = 1e-4) -> torch.Tensor:
    """A positive standard deviation from an unconstrained output."""
    return nn.functional.softplus(raw) + min_scale
