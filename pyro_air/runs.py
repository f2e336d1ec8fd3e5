"""A run spec names everything a run is made of, so the CLI, configs and notebooks agree:

    {"model": {"name": "bernoulli-vae", "cfg": {"z_dim": 50}},
     "guide": {"name": "gaussian", "cfg": {"z_dim": 50}},
     "objective": {"name": "elbo", "cfg": {"num_particles": 1}},
     "data": {"name": "mnist", "train_size": null, "binarize": "static"}}
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from pyro_air import data, guides, infer, models
from pyro_air.support import parallel as dist_utils
from pyro_air.support.progress import JobProgress
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.core.validation import check_compatible
from pyro_air.evaluate import summarize
from pyro_air.evaluate.summary import planned_work
from pyro_air.evaluate.latent_metrics import latent_metrics
from pyro_air.train import TrainConfig
from pyro_air.train import checkpoints as ckpt_io


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


def _models_of(net: str) -> dict:
    """likelihood -> the model registered with it for ``net`` (their declarations, ``MODELS.declares``)."""
    found = {}
    for name in models.MODELS.names():
        declared = models.MODELS.declared(name)
        if declared["net"] == net and declared["likelihood"] is not None:
            found[declared["likelihood"]] = name
    return dict(sorted(found.items()))


# the decoder's likelihood -> the model that has it (the same MLP sizes), as each model declares
LIKELIHOOD_MODELS = _models_of("mlp")
CONV_LIKELIHOOD_MODELS = _models_of("conv")
NETS = ("mlp", "conv")


def vae_spec(guide="gaussian", objective="elbo", z_dim=50, hidden=(500, 500), num_particles=1,
             dataset="mnist", train_size=None, guide_cfg=None, objective_cfg=None, likelihood="bernoulli",
             x_dim=784, data_path=None, net="mlp", image_shape=None) -> dict:
    """The AIR MNIST set-up: 784-500-500-z decoder, the same sizes for the encoder.

    ``likelihood``: "bernoulli" (binary data), "continuous-bernoulli" (grey levels in [0, 1], kept as
    they are) or "gaussian" (real values; a decoder with a learned mean and scale per dimension).
    ``dataset="file"`` with ``data_path`` (and that file's ``x_dim``): your own .npz / .npy file.
    ``net="conv"``: convolutional decoder and (for guide "gaussian") encoder over images of
    ``image_shape``, (H, W) or (C, H, W) for C channels (default: the most square one-channel H x W);
    ``hidden[0]`` is their fully connected width."""
    if likelihood not in LIKELIHOOD_MODELS:
        raise ValueError(f"unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOOD_MODELS)}")
    if net not in NETS:
        raise ValueError(f"unknown net {net!r}; use one of {', '.join(NETS)}")
    if net == "conv":
        return _conv_spec(guide, objective, z_dim, hidden, num_particles, dataset, train_size, guide_cfg,
                          objective_cfg, likelihood, x_dim, data_path, image_shape)
    guide_cfg = dict(guide_cfg or {})
    guide_cfg.setdefault("x_dim", x_dim)
    guide_cfg.setdefault("z_dim", z_dim)
    if _guide_takes_hidden(guide, guide_cfg):
        guide_cfg.setdefault("hidden", list(hidden))
    obj_cfg = _objective_cfg(objective, objective_cfg, num_particles)
    data_spec = {"name": dataset, "train_size": train_size,
                 "binarize": "static" if likelihood == "bernoulli" else "none"}
    if data_path is not None:
        data_spec["path"] = str(data_path)
    return copy.deepcopy({
        "model": {"name": LIKELIHOOD_MODELS[likelihood], "cfg": {"x_dim": x_dim, "z_dim": z_dim, "hidden": list(hidden)}},
        "guide": {"name": guide, "cfg": guide_cfg},
        "objective": {"name": objective, "cfg": obj_cfg},
        "data": data_spec,
    })


def _conv_spec(guide, objective, z_dim, hidden, num_particles, dataset, train_size, guide_cfg, objective_cfg,
               likelihood, x_dim, data_path, image_shape) -> dict:
    width = int(next(iter(hidden)))
    shape = None if image_shape is None else list(image_shape)
    spec = vae_spec(guide, objective, z_dim, (width,), num_particles, dataset, train_size, None, objective_cfg,
                    likelihood, x_dim, data_path)
    spec["model"] = {"name": CONV_LIKELIHOOD_MODELS[likelihood],
                     "cfg": {"x_dim": x_dim, "z_dim": z_dim, "hidden": width, "image_shape": shape}}
    declared = _declared(guide)
    if declared is not None and declared["conv"]:  # e.g. the plain encoder becomes its convolutional twin
        guide, declared = declared["conv"], _declared(declared["conv"])
    cfg = dict(guide_cfg or {})
    cfg.setdefault("x_dim", x_dim)
    cfg.setdefault("z_dim", z_dim)
    inner = _declared(_inner(declared, cfg)) if declared is not None and declared["wraps"] else None
    if declared is not None and declared["image"]:
        cfg.setdefault("hidden", width)
        cfg.setdefault("image_shape", shape)
    elif inner is not None and (inner["conv"] or inner["image"]):  # a wrapper of an encoder that convolves
        cfg["encoder"] = inner["conv"] or _inner(declared, cfg)
        cfg.setdefault("hidden", width)
        cfg.setdefault("image_shape", shape)
    elif _guide_takes_hidden(guide, cfg):
        cfg.setdefault("hidden", [width])
    spec["guide"] = {"name": guide, "cfg": cfg}
    return copy.deepcopy(spec)


def _objective_cfg(objective: str, objective_cfg, num_particles: int) -> dict:
    """The objective's config with ``num_particles`` added where the objective takes it, as it declares
    (MIWAE and PIWAE count their samples as num_groups x group_size instead)."""
    cfg = dict(objective_cfg or {})
    if objective not in infer.OBJECTIVES or infer.OBJECTIVES.declared(objective)["num_particles"]:
        cfg.setdefault("num_particles", num_particles)  # (an unknown name is reported by build_run)
    elif num_particles != 1:
        raise ValueError(f"objective {objective!r} takes no num_particles (got {num_particles}); its samples per "
                         "datapoint are num_groups x group_size: give them in its config, e.g. --objective-cfg "
                         "'{\"num_groups\": 2, \"group_size\": 4}'")
    return cfg


def _declared(guide) -> dict | None:
    """What a registered guide declared (``GUIDES.declares``); None for a name that is not registered
    (``build_run`` reports it) or an encoder given as a ``{"name", "cfg"}`` dict or an instance, which
    carries its own sizes."""
    return guides.GUIDES.declared(guide) if isinstance(guide, str) and guide in guides.GUIDES else None


def _inner(declared: dict, guide_cfg: dict):
    """The encoder a wrapper wraps: its ``encoder`` option, else the one it declares by default."""
    return guide_cfg.get("encoder", declared["wraps"])


def _guide_takes_hidden(guide: str, guide_cfg: dict) -> bool:
    """Whether the encoder's hidden sizes should default to the decoder's: true for every guide that
    declares ``hidden`` (for a wrapper, whether the encoder it wraps does)."""
    declared = _declared(guide)
    if declared is not None and declared["wraps"]:
        declared = _declared(_inner(declared, guide_cfg))
    return declared is not None and declared["hidden"]


QUICKSTART_EPOCHS = 3


def quickstart_setup(epochs: int = QUICKSTART_EPOCHS, train_size: int | None = None, seed: int = 0,
                     progress: bool = True) -> tuple[dict, TrainConfig]:
    """(spec, config) of ``pyro-air quickstart`` and tutorial 01 - one definition, so both train the
    same run: the AIR MNIST VAE (784-500-500-50 Bernoulli decoder, Gaussian encoder of the same
    sizes, ELBO) on the statically binarized embedded MNIST (``train_size``: the nested subset,
    None = all 50000), Adam lr 1e-3 on batches of 100 decayed to a tenth over ``epochs``, validated
    on the first 1000 validation images with IWAE-50 (the best epoch's parameters are kept)."""
    spec = vae_spec(train_size=train_size)
    config = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=seed, valid_size=1000, valid_num_samples=50,
                         progress=progress)
    config.validate()
    return spec, config


# -- saved runs: their data, their modules, their evaluation -------------------------------------
def load_split(spec: dict, split: str) -> torch.Tensor:
    d = spec["data"]
    return data.load(d["name"], split, binarize=d.get("binarize", "static"),
                     train_size=d.get("train_size") if split == "train" else None, data_dir=d.get("data_dir"),
                     path=d.get("path"))


def modules_from_state(spec: dict, model_state: dict, guide_state: dict, device="cpu"):
    """(model, guide) of ``spec`` holding the given state dicts, on ``device``: how a saved run (``load_run``)
    and a zoo model (``pyro_air.zoo.load``) are rebuilt. Loading is strict, so weights that do not fit the
    spec's modules are refused."""
    model, guide, _ = build_run(spec, seed=0)  # every parameter is then loaded; seeded all the same
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    model.to(device)
    guide.to(device)
    return model, guide


def load_run(path, device="cpu"):
    """(model, guide, spec) of a run directory (its best.pt) or a checkpoint file, on ``device``."""
    path = Path(path)
    if path.is_dir() and not (path / "best.pt").exists():
        inner = sorted((p.name for p in path.iterdir() if (p / "best.pt").is_file()), key=lambda n: (n != "vae", n))
        if inner:  # e.g. `pyro-air compare`'s RUN_DIR/vae, dvae, wni
            raise ckpt_io.CheckpointError(f"{path} holds no run of its own but the runs {', '.join(inner)}: pass one, "
                                          f"e.g. {path / inner[0]}")
    state = ckpt_io.load(path / "best.pt" if path.is_dir() else path)
    spec = state["spec"]
    model, guide = modules_from_state(spec, state["model_state"], state["guide_state"], device)
    return model, guide, spec


def evaluation_split(spec: dict, split: str, max_points=None) -> torch.Tensor:
    """A split as evaluation sees it: binary (dynamic runs binarized with seed 0), first max_points rows."""
    x = load_split(spec, split)
    if spec["data"].get("binarize") == "dynamic":
        x = data.binarize_dynamic(x, torch.Generator().manual_seed(0))
    return x if max_points is None else x[:max_points]


def evaluate_checkpoint(path, splits=("test",), num_samples=5000, max_points=None, device="cpu",
                        progress=True, with_latent_metrics=False, seed=None, distributed=False, loader=None,
                        resume_dir=None, **extra_columns) -> dict:
    """Rows of ``summarize`` per split; ``extra_columns`` (e.g. iw_svi_steps) go to ``summarize``;
    ``seed``/``distributed`` as in ``pyro_air.evaluate.log_likelihood``. With ``with_latent_metrics``
    each row also holds ``"latent"``: InfoVAE's latent-space metrics. ``resume_dir``: each split's
    estimates keep their finished batches in ``resume_dir/<split>/`` (``summarize``), removed when
    its row is done.

    ``loader(path, device) -> (model, guide, spec)`` turns ``path`` into modules (default ``load_run``:
    a run directory or a checkpoint file); the CLI passes ``pyro_air.zoo.load_source``, which also
    reads ``zoo:NAME`` - a layer above this one, so it is passed in rather than imported."""
    if distributed:
        unsupported = [k for k in ("iw_svi_steps", "amortization_gap_steps") if extra_columns.get(k)]
        if unsupported:
            raise ValueError(f"--distributed evaluation does not shard {', '.join(unsupported)} (per-datapoint "
                             "optimization); run those columns without --distributed")
        device = dist_utils.setup(device)
    model, guide, spec = (loader or load_run)(path, device)
    data = {split: evaluation_split(spec, split, max_points) for split in splits}
    # one bar over every split and column, counted in model evaluations per datapoint (its ETA is the job's)
    work = sum(len(x) for x in data.values()) * planned_work(num_samples, **extra_columns)
    rows = {}
    with JobProgress(work, desc="evaluate", disable=not progress or distributed) as job:
        for split, x in data.items():
            job.stage(f"{split} (n={len(x)})")
            folder = None if resume_dir is None else Path(resume_dir) / split
            rows[f"{split} (n={len(x)})"] = summarize(model, guide, x, num_samples=num_samples, progress=progress,
                                                      seed=seed, distributed=distributed, resume_dir=folder,
                                                      **extra_columns)
            if folder is not None and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            if with_latent_metrics:
                rows[f"{split} (n={len(x)})"]["latent"] = latent_metrics(model, guide, x.to(device))
    return rows
