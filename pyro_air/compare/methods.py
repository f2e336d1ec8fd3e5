"""Methods: what a comparison trains - a named encoder (or training scheme) with the grid its
hyper-parameter is chosen from (``Method``, ``method``), the encoder family of
``experiments/encoders`` (``ENCODER_FAMILY``), and the AIR paper's methods as run specs
(``air_spec``: VAE, DVAE, WNI-VAE, a larger encoder; ``pyro-air compare`` and ``experiments/air``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pyro_air import guides, infer
from pyro_air.guides.base import AmortizedGuide
from pyro_air.runs import vae_spec
from pyro_air.train.lagging import LaggingConfig, LaggingSchedule
from pyro_air.train.schedule import StepSchedule

@dataclass
class Setup:
    """What a method's builder gets: the run's decoder (built already), the sizes, seed and budget."""
    model: Any
    x_dim: int
    z_dim: int
    hidden: list
    seed: int
    budget: dict

    @property
    def encoder(self) -> dict:
        """The common encoder sizes, ``{"x_dim", "z_dim", "hidden"}`` (x-d-d-z, as the decoder's)."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden)}


@dataclass
class Components:
    """What a builder returns (a bare guide means ``Components(guide)``).

    ``objective``: a ``pyro.infer.ELBO`` (default: the ELBO, ``infer.build("elbo")``);
    ``schedule``: a ``pyro_air.train.schedule.StepSchedule`` hook of the training step (default: the
    joint step); ``extra_record``: called after training, returns entries for ``result.json``
    (e.g. the spectral norms the cap left).
    """
    guide: AmortizedGuide
    objective: Any = None
    schedule: StepSchedule | None = None
    extra_record: Callable[[], dict] | None = None


ParamValue = Any  # None, a number, or a string


def param_tag(param: ParamValue) -> str:
    """The directory name of a grid value: "default" for None, ``f"{p:g}"`` for numbers."""
    if param is None:
        return "default"
    if isinstance(param, bool):
        return str(param)
    if isinstance(param, (int, float)):
        return f"{param:g}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", param)


def name_tag(name: str) -> str:
    """The directory name of a method ("DVAE+WNI" -> "DVAE_WNI")."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@dataclass(frozen=True)
class Method:
    """A named encoder (or training scheme) with the grid its hyper-parameter is chosen from.

    ``build(param, setup) -> guide | Components``; ``grid``: the values tried on the selection seed
    (``[None]``: nothing to choose); ``param_name``: how tables name the hyper-parameter.
    """
    name: str
    build: Callable[[ParamValue, Setup], Any]
    grid: tuple = (None,)
    param_name: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a method needs a non-empty name, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"method {self.name!r}: build must be a function (param, setup) -> guide, "
                            f"got {type(self.build).__name__}")
        try:
            if isinstance(self.grid, (str, bytes)):
                raise TypeError
            grid = tuple(self.grid)
        except TypeError:
            raise ValueError(f"method {self.name!r}: grid must be a list of values, e.g. [0.1, 0.3], "
                             f"got {self.grid!r}") from None
        if not grid:
            raise ValueError(f"method {self.name!r} has an empty grid; give at least one value "
                             "(grid=[None] for a method with nothing to choose)")
        for p in grid:
            if not (p is None or isinstance(p, (int, float, str))) or (isinstance(p, float) and not math.isfinite(p)):
                raise ValueError(f"method {self.name!r}: grid values must be None, finite numbers or strings "
                                 f"(they name run directories and go to JSON), got {p!r}")
        tags = [param_tag(p) for p in grid]
        if len(set(tags)) != len(tags):
            raise ValueError(f"method {self.name!r}: the grid {list(grid)} repeats a value "
                             f"(as run directories: {tags})")
        object.__setattr__(self, "grid", grid)

    def label(self, param: ParamValue) -> str:
        """How tables name a chosen value: e.g. ``σ=0.25``; ``—`` for None."""
        if param is None:
            return "—"
        value = f"{param:g}" if isinstance(param, (int, float)) and not isinstance(param, bool) else str(param)
        return f"{self.param_name or 'param'}={value}"


def method(name: str, grid: Iterable = (None,), param_name: str | None = None) -> Callable[[Callable], Method]:
    """Decorator: the builder ``build(param, setup)`` as a ``Method`` (register it with
    ``Benchmark.add``, or use ``Benchmark.method``, which does both)."""
    def decorator(build: Callable) -> Method:
        return Method(name, build, grid, param_name)

    return decorator


# The encoder family of experiments/encoders (issue 20): one decoder, every encoder x-d-d-z tanh.

@method("VAE")
def _vae(param, s: Setup):
    """Plain Gaussian encoder (Kingma & Welling 2014)."""
    return guides.build("gaussian", **s.encoder)


@method("DVAE", grid=[0.25, 0.5], param_name="σ")
def _dvae(sigma, s: Setup):
    """Denoising encoder, alpha = 1 (AIR, Shu et al. 2018, Eq. 13)."""
    return guides.build("denoising", sigma=sigma, alpha=1.0, encoder="gaussian", **s.encoder)


@method("WNI", grid=[1.0, 3.0], param_name="H")
def _wni(H, s: Setup):
    """Weight-normalized encoder with row norms <= H (AIR Eq. 17-18)."""
    return guides.build("weightnorm", H=H, **s.encoder)


@method("DVAE+WNI", grid=[1.0, 3.0], param_name="H (σ=0.25)")
def _dvae_wni(H, s: Setup):
    """Both AIR regularizers, sigma = 0.25 (not run in the AIR paper)."""
    return guides.build("denoising-weightnorm", sigma=0.25, H=H, **s.encoder)


@method("CR", grid=[0.1, 1.0], param_name="λ")
def _cr(weight, s: Setup):
    """Consistency penalty lambda KL(q(z|t(x)) || q(z|x)), shifts <= 2 px (Sinha & Dieng 2021)."""
    guide = guides.build("consistency", encoder="gaussian", transform="shift", max_shift=2, **s.encoder)
    return Components(guide, objective=infer.build("consistency", objective="elbo", weight=weight))


@method("SN", grid=[1.0, 3.0], param_name="bound")
def _sn(bound, s: Setup):
    """Spectral-norm cap ||W||_2 <= bound on every layer (Miyato et al. 2018)."""
    guide = guides.build("spectral-norm", bound=bound, mode="cap", **s.encoder)
    return Components(guide, extra_record=lambda: {"largest_singular_values": guide.largest_singular_values()})


def _semi_amortized(backprop: str):
    def build(lr, s: Setup):
        """T SVI steps from the encoder's output (Kim et al. 2018); grid: the step size."""
        guide = guides.build("semi-amortized", encoder="gaussian", lr=lr, backprop=backprop, **s.budget["sa"],
                             **s.encoder)
        guide.bind(s.model)
        return guide

    return build


_sa_full = Method("SA-full", _semi_amortized("full"), (0.05, 0.2), "η")
_sa_stop = Method("SA-stop", _semi_amortized("stop"), (0.05, 0.2), "η")


@method("Lagging", grid=[10, 50], param_name="max inner")
def _lagging(max_inner_steps, s: Setup):
    """Aggressive encoder steps until I(x; z) stops rising (He et al. 2019); grid: max inner steps."""
    schedule = LaggingSchedule(LaggingConfig(aggressive=True, max_inner_steps=max_inner_steps,
                                             mi_size=s.budget["valid_size"]), s.seed)
    return Components(guides.build("gaussian", **s.encoder), schedule=schedule)


ENCODER_FAMILY: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    _vae, _dvae, _wni, _dvae_wni, _cr, _sn, _sa_full, _sa_stop, _lagging)})


# -- the AIR paper's methods (Table 1-3) as run specs ---------------------------------------------

def air_spec(method: str, k: int = 1, sigma: float | None = None, H: float | None = None,
             alpha: float = 1.0, **spec_kwargs) -> dict:
    """The run spec of one AIR method: "vae" (plain encoder), "dvae" (Denoising(GaussianEncoder,
    sigma, alpha)), "wni" (WeightNormEncoder with cap H) or "large" (one more encoder layer), trained
    with the ELBO (k = 1) or the IWAE-k bound."""
    objective = "elbo" if k == 1 else "iwae"
    if method == "vae":
        guide, cfg = "gaussian", {}
    elif method == "dvae":
        if sigma is None:
            raise ValueError("method 'dvae' needs sigma (the denoising noise scale)")
        guide, cfg = "denoising", {"sigma": sigma, "alpha": alpha, "encoder": "gaussian"}
    elif method == "wni":
        if H is None:
            raise ValueError("method 'wni' needs H (the weight-norm cap)")
        guide, cfg = "weightnorm", {"H": H}
    elif method == "large":
        guide, cfg = "gaussian-large", {}
    else:
        raise ValueError(f"unknown AIR method {method!r}; use one of vae, dvae, wni, large")
    return vae_spec(guide=guide, objective=objective, num_particles=k, guide_cfg=cfg, **spec_kwargs)
