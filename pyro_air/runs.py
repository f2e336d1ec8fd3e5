"""A run spec names everything a run is made of, so the CLI, configs and notebooks agree:

    {"model": {"name": "bernoulli-vae", "cfg": {"z_dim": 50}},
     "guide": {"name": "gaussian", "cfg": {"z_dim": 50}},
     "objective": {"name": "elbo", "cfg": {"num_particles": 1}},
     "data": {"name": "mnist", "train_size": null, "binarize": "static"}}
"""
from __future__ import annotations

import copy
import inspect

from pyro_air import guides, infer, models
from pyro_air.core.seeds import seed_all, stream_seed


def build_run(spec: dict, seed: int | None = None):
    """(model, guide, objective) from a spec; the guide's latent size must fit the model's.

    With ``seed``, each component is built right after seeding torch, NumPy and Python with its own
    stream (``model_init``, ``guide_init``, ``objective_init`` of ``pyro_air.core.seeds``): the initial
    parameters are a function of (spec, seed) alone - not of what the process drew before - and
    adding a component or changing the guide does not change the model's initial weights (so a VAE
    and a DVAE of one seed start from the same decoder). ``seed=None`` draws from the caller's
    global streams as they are (seed them first, e.g. ``pyro_air.core.seeds.seed_all``).
    """
    def seed_for(name):
        if seed is not None:
            seed_all(stream_seed(seed, name))

    seed_for("model_init")
    model = models.build(spec["model"]["name"], **spec["model"].get("cfg", {}))
    seed_for("guide_init")
    guide = guides.build(spec["guide"]["name"], **spec["guide"].get("cfg", {}))
    check_compatible(model, guide)
    seed_for("objective_init")
    objective = infer.build(spec["objective"]["name"], **spec["objective"].get("cfg", {}))
    return model, guide, objective


def check_compatible(model, guide) -> None:
    if getattr(guide, "z_dim", None) != model.z_dim or getattr(guide, "x_dim", None) != model.x_dim:
        raise ValueError(
            f"guide {type(guide).__name__} (x_dim={getattr(guide, 'x_dim', '?')}, z_dim="
            f"{getattr(guide, 'z_dim', '?')}) does not fit model {type(model).__name__} (x_dim={model.x_dim}, "
            f"z_dim={model.z_dim}); build the guide with the model's x_dim and z_dim"
        )


def vae_spec(guide="gaussian", objective="elbo", z_dim=50, hidden=(500, 500), num_particles=1,
             dataset="mnist", train_size=None, guide_cfg=None, objective_cfg=None) -> dict:
    """The AIR MNIST set-up: 784-500-500-z decoder, the same sizes for the encoder."""
    guide_cfg = dict(guide_cfg or {})
    guide_cfg.setdefault("x_dim", 784)
    guide_cfg.setdefault("z_dim", z_dim)
    if _guide_takes_hidden(guide, guide_cfg):
        guide_cfg.setdefault("hidden", list(hidden))
    obj_cfg = dict(objective_cfg or {})
    obj_cfg.setdefault("num_particles", num_particles)
    return copy.deepcopy({
        "model": {"name": "bernoulli-vae", "cfg": {"x_dim": 784, "z_dim": z_dim, "hidden": list(hidden)}},
        "guide": {"name": guide, "cfg": guide_cfg},
        "objective": {"name": objective, "cfg": obj_cfg},
        "data": {"name": dataset, "train_size": train_size, "binarize": "static"},
    })


def _accepts(builder, name: str) -> bool:
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _guide_takes_hidden(guide: str, guide_cfg: dict) -> bool:
    """Whether the encoder's hidden sizes should default to the decoder's: true for every guide whose
    builder takes ``hidden`` (for a wrapper such as "denoising", whether its inner encoder does)."""
    if guide not in guides.GUIDES:
        return False  # build_run reports the unknown name
    if guide == "denoising":
        inner = guide_cfg.get("encoder", "gaussian")
        if not isinstance(inner, str) or inner not in guides.GUIDES:
            return False  # a nested {"name", "cfg"} or a built encoder carries its own sizes
        return _accepts(guides.GUIDES.get(inner), "hidden")
    builder = guides.GUIDES.get(guide)
    params = inspect.signature(builder).parameters if callable(builder) else {}
    return "hidden" in params
