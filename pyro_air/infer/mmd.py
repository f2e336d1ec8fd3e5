"""Maximum mean discrepancy (MMD) between two sample sets, the divergence of MMD-InfoVAE.

InfoVAE (Zhao, Song & Ermon), section "Divergence families": with a positive-definite kernel k,

    MMD(q || p) = E_{z,z'~q} k(z, z') + E_{z,z'~p} k(z, z') - 2 E_{z~q, z'~p} k(z, z')

(Gretton et al. 2012, Lemma 6). From samples x_1..x_n ~ q and y_1..y_m ~ p:

- biased V-statistic (the authors' code):   mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)
- unbiased U-statistic (Gretton et al. Eq. 3): the same with the diagonals i = j left out of the
  first two means, which then divide by n(n-1) and m(m-1); needs n, m >= 2.

Kernels (both have k(z, z) = 1), ``bandwidth`` being a squared length scale h:

- ``"rbf"``: k(z, z') = exp(-||z - z'||^2 / h), default h = d^2 with d the latent dimension: the
  authors' code computes exp(-mean_j (z_j - z'_j)^2 / d), which is the same number.
- ``"imq"``: k(z, z') = h / (h + ||z - z'||^2), default h = 2 d (inverse multiquadratics, as in
  Tolstikhin et al.'s Wasserstein auto-encoders for a unit-variance prior).

Every function works on batched sample sets [..., n, d] and [..., m, d] and returns [...], so the
K particles of an objective give K independent MMD estimates at once. Kernel sums are taken over
row chunks, so the full-dataset MMD of ``pyro_air.evaluate`` needs no n x m matrix in memory.
"""
from __future__ import annotations

import torch

from pyro_air.core.validation import check_positive, check_positive_int

KERNELS = ("rbf", "imq")


def check_kernel(kernel: str, bandwidth=None) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    if bandwidth is not None:
        check_positive(bandwidth, "bandwidth")


def default_bandwidth(kernel: str, dim: int) -> float:
    """The squared length scale h used when none is given: d^2 for rbf, 2 d for imq."""
    check_kernel(kernel)
    return float(dim * dim) if kernel == "rbf" else 2.0 * dim


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 as [..., n, m], by explicit differences (exact, zero on the diagonal)."""
    return (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)


def kernel_matrix(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth=None) -> torch.Tensor:
    """k(x_i, y_j) as [..., n, m]; see the module docstring for the kernels."""
    check_kernel(kernel, bandwidth)
    h = default_bandwidth(kernel, x.shape[-1]) if bandwidth is None else float(bandwidth)
    d2 = squared_distances(x, y)
    if kernel == "rbf":
        return torch.exp(-d2 / h)
    return h / (h + d2)


def kernel_sum(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth=None,
               chunk_size: int | None = None) -> torch.Tensor:
    """sum_ij k(x_i, y_j) over [..., n, d] x [..., m, d] -> [...], over chunks of ``chunk_size`` rows."""
    if chunk_size is None or chunk_size >= x.shape[-2]:
        return kernel_matrix(x, y, kernel, bandwidth).sum((-2, -1))
    check_positive_int(chunk_size, "chunk_size")
    total = None
    for start in range(0, x.shape[-2], chunk_size):
        part = kernel_matrix(x[..., start:start + chunk_size, :], y, kernel, bandwidth).sum((-2, -1))
        total = part if total is None else total + part
    return total


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", bandwidth=None, unbiased: bool = False,
        chunk_size: int | None = None) -> torch.Tensor:
    """The MMD^2 estimate between samples x [..., n, d] of q and y [..., m, d] of p; returns [...].

    Biased (V) or unbiased (U) as in the module docstring. k(z, z) = 1 for both kernels, so the
    U-statistic removes n (resp. m) from the within-set kernel sums.
    """
    check_kernel(kernel, bandwidth)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"the two sample sets must have the same dimension, got {x.shape[-1]} and {y.shape[-1]}")
    n, m = x.shape[-2], y.shape[-2]
    if unbiased and min(n, m) < 2:
        raise ValueError(
            f"the unbiased MMD (U-statistic) needs at least 2 samples on each side, got {n} and {m}; "
            "use a batch of 2 or more datapoints, or unbiased=False"
        )
    if n == 0 or m == 0:
        raise ValueError("MMD needs at least one sample on each side")
    kxx = kernel_sum(x, x, kernel, bandwidth, chunk_size)
    kyy = kernel_sum(y, y, kernel, bandwidth, chunk_size)
    kxy = kernel_sum(x, y, kernel, bandwidth, chunk_size)
    if unbiased:
        return (kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2 * kxy / (n * m)
    return kxx / (n * n) + kyy / (m * m) - 2 * kxy / (n * m)
