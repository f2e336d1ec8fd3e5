"""Input checks shared by models, guides, objectives and loaders (docs/design.md, contract 5).

Every message says what was wrong and what to do about it.
"""
from __future__ import annotations

import math
import os

import pyro.infer.util
import torch


def input_checks_enabled() -> bool:
    """Per-call input checks follow Pyro's validation switch: ``pyro.validation_enabled(False)``
    (the training loop's hot loop, chunked evaluation) skips them; the data are then checked once,
    up front, by whoever turned validation off."""
    return pyro.infer.util.is_validation_enabled()


def check_batch(x: torch.Tensor, x_dim: int, who: str) -> None:
    """``x`` must be a floating tensor of shape [B, x_dim] with finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects x as a torch.Tensor of shape [B, {x_dim}], got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{who} expects a floating-point x (float32), got dtype {x.dtype}; convert with x.float()"
        )
    if x.dim() != 2 or x.shape[-1] != x_dim:
        raise ValueError(
            f"{who} expects x of shape [B, {x_dim}], got {list(x.shape)}; "
            f"flatten images to [B, {x_dim}] (e.g. x.reshape(len(x), -1))"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch (B = 0); pass at least one datapoint")
    if not all_finite(x):
        raise ValueError(f"{who} got NaN or inf in x; clean the data (e.g. torch.nan_to_num) first")


# Why these checks are written this way: ``fit`` checks the whole training set once, up front, and
# the obvious forms allocate a bool tensor per comparison (39 MB each on 50000 MNIST images; over
# glibc's mmap threshold, so they page-fault too): ``isfinite(x).all()`` plus ``((x == 0) | (x ==
# 1)).all()`` cost a noticeable share of an ELBO epoch. ``aminmax`` is one pass with no temporary,
# and the binary test runs on 4 MiB pieces that stay in cache (docs/performance.md, "Measurements
# behind the code", "Data checks").
CHECK_CHUNK_ELEMENTS = 1 << 20


def all_finite(x: torch.Tensor) -> bool:
    """No NaN or inf in a non-empty ``x``: NaN propagates into ``aminmax`` and an inf is its min or max."""
    return bool(torch.isfinite(torch.stack(torch.aminmax(x))).all())  # one device sync on a GPU


def all_binary(x: torch.Tensor) -> bool:
    """Every entry of a non-empty ``x`` is 0 or 1 (NaN is not)."""
    lo, hi = torch.stack(torch.aminmax(x)).tolist()
    if not (lo >= 0 and hi <= 1):
        return False
    # On [0, 1] an entry is 0 or 1 exactly when its fractional part is 0 (frac(1) = 0, frac(x) = x
    # below 1): one elementwise pass and a test for any nonzero, faster than comparing with 0 and
    # with 1 (docs/performance.md, "Measurements behind the code", "Data checks").
    return not any(bool(piece.frac().any()) for piece in x.reshape(-1).split(CHECK_CHUNK_ELEMENTS))


def check_binary(x: torch.Tensor, who: str) -> None:
    """A Bernoulli likelihood needs x in {0, 1}."""
    if x.numel() and not all_binary(x):
        raise ValueError(
            f"{who} has a Bernoulli likelihood and needs binary x in {{0, 1}}, but x has values "
            f"in [{x.min().item():.3g}, {x.max().item():.3g}]; binarize first "
            f"(pyro_air.data.binarize, or torch.bernoulli(x) for dynamic binarization)"
        )


def check_grey_levels(x: torch.Tensor, who: str) -> None:
    """A continuous-Bernoulli likelihood needs x in [0, 1]."""
    if x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"{who} has a continuous-Bernoulli likelihood and needs grey levels x in [0, 1], but x has values "
            f"in [{x.min().item():.3g}, {x.max().item():.3g}]; rescale it (e.g. x / 255 for 8-bit images), or use "
            "the Gaussian likelihood (--likelihood gaussian) for unbounded data"
        )


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not ok or math.isnan(v):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def check_unit_interval(value, name: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def check_hidden(hidden, name: str = "hidden") -> tuple:
    hidden = tuple(hidden)
    for h in hidden:
        check_positive_int(h, f"every entry of {name}")
    return hidden


def check_compatible(model, guide) -> None:
    """The guide's x_dim and z_dim must be the model's (both sides of the site contract agree)."""
    if getattr(guide, "z_dim", None) != model.z_dim or getattr(guide, "x_dim", None) != model.x_dim:
        raise ValueError(
            f"guide {type(guide).__name__} (x_dim={getattr(guide, 'x_dim', '?')}, z_dim="
            f"{getattr(guide, 'z_dim', '?')}) does not fit model {type(model).__name__} (x_dim={model.x_dim}, "
            f"z_dim={model.z_dim}); build the guide with the model's x_dim and z_dim"
        )


def one_line(err, limit: int = 300) -> str:
    """An exception's (or any) text on one line - runs of whitespace, newlines included, become one space -
    at most ``limit`` characters: what a one-line refusal quotes of a library's multi-line message."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say (what sizes are checked against
    before any work: an AIS schedule, a data file's declared array, diagnostics' draws)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
