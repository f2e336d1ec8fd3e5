"""Loading a zoo model, and reproducing the number its manifest entry records.

``load(name)`` verifies the weight file against the manifest first (``manifest.verified_weight_bytes``:
read once, so the bytes hashed are the bytes loaded), then reads it through the checkpoint loader (``pyro_air.train.checkpoints.load``:
``torch.load(..., weights_only=True)``, so a file can hold tensors and plain values only, never code),
and rebuilds the modules from the entry's run spec exactly as a saved run is rebuilt
(``pyro_air.runs.modules_from_state``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from pyro_air.backend.report import pinned_kernels
from pyro_air.core.validation import one_line
from pyro_air.evaluate import log_likelihood
from pyro_air import storage as ckpt_io
from pyro_air.runs import evaluation_split, load_run, modules_from_state
from pyro_air.zoo import manifest

PREFIX = "zoo:"  # `pyro-air evaluate zoo:NAME`: a shipped model in place of a run directory


def read_weights(path, data: bytes | None = None) -> dict:
    """{"model_state", "guide_state"} of a zoo weight file (or of its verified bytes ``data``), through the
    safe checkpoint loader."""
    state = ckpt_io.load(path, data=data)
    missing = [k for k in ("model_state", "guide_state") if k not in state]
    if missing:
        raise manifest.ZooError(f"{path} holds no {' or '.join(missing)}; it is not a zoo weight file")
    return state


def load_entry(e: dict, root=None, device="cpu"):
    """(model, guide) of manifest entry ``e``: its weight file verified, read safely, in eval mode on ``device``."""
    path, data = manifest.verified_weight_bytes(e, root)
    state = read_weights(path, data)  # the very bytes that were verified
    try:
        model, guide = modules_from_state(e["spec"], state["model_state"], state["guide_state"], device)
    except (RuntimeError, ValueError, TypeError, KeyError) as err:  # e.g. an edited hidden size in the spec
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise manifest.ZooError(
            f"the weights of {e['name']!r} ({path}) do not fit the modules its manifest spec builds "
            f"({type(err).__name__}: {one_line(text, 200)}): the entry's spec was edited; "
            f"{manifest.remedy(manifest.zoo_root(root))}") from err
    model.eval()
    guide.eval()
    return model, guide


def load_with_spec(name: str, root=None, device="cpu"):
    """(model, guide, spec) of zoo model ``name``, in eval mode, on ``device``."""
    e = manifest.entry(name, root)
    model, guide = load_entry(e, root, device)
    return model, guide, e["spec"]


def load(name: str, root=None, device="cpu"):
    """(model, guide) of zoo model ``name``: verified against the manifest, loaded safely, in eval mode.

    ``root``: another zoo directory (default ``$PYRO_AIR_ZOO``, else the zoo shipped with pyro-air)."""
    model, guide, _ = load_with_spec(name, root, device)
    return model, guide


def zoo_name(source) -> str | None:
    """NAME of a ``zoo:NAME`` source, None for anything else (a run directory or checkpoint path).

    The prefix is lower case; ``ZOO:NAME`` (any other case) that is not an existing path is refused
    rather than read as a path that does not exist."""
    text = str(source)
    if text.startswith(PREFIX):
        return text[len(PREFIX):]
    if text[:len(PREFIX)].lower() == PREFIX and not Path(text).exists():
        raise ValueError(f"{text!r}: a zoo model is named with a lower-case prefix, {PREFIX}NAME "
                         f"(e.g. {PREFIX}{text[len(PREFIX):]}); see `pyro-air zoo list`")
    return None


def load_source(source, device="cpu"):
    """(model, guide, spec) of ``zoo:NAME`` (from the zoo) or of a run directory / checkpoint file
    (``pyro_air.runs.load_run``): what ``pyro-air evaluate`` and ``diagnose`` accept."""
    name = zoo_name(source)
    if name is None:
        return load_run(source, device)
    return load_with_spec(name, device=device)


def output_dir(source) -> Path:
    """Where a command writes files for ``source``: ``runs/zoo-NAME`` for a zoo model (it has no run
    directory), else the run directory (a checkpoint file's directory)."""
    name = zoo_name(source)
    if name is not None:
        manifest.check_name(name)  # a plain file name: runs/zoo-NAME stays inside runs/
        return contained(Path("runs") / f"zoo-{name}", Path("runs"))
    path = Path(source)
    return path if path.is_dir() else path.parent


def contained(path: Path, folder: Path) -> Path:
    """``path``, refused (one line) if, symbolic links resolved, it lies outside ``folder``: a command never
    writes outside the output folder it was given or chose."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"{path} resolves to {path.resolve()}, outside {folder}; pyro-air writes a command's "
                         f"outputs only inside their folder: remove the symbolic link or pass --out DIR")
    return path


def check_images(spec: dict, points: int) -> torch.Tensor:
    """The check's images: the first ``points`` test images as evaluation sees them."""
    return evaluation_split(spec, "test", points)


def check_value(model, guide, x: torch.Tensor, num_samples: int, seed: int) -> float:
    """Mean over ``x`` of -log p(x), IWAE-``num_samples``, draws from ``seed`` (contract 3's per-datapoint
    estimate, the one `pyro-air evaluate` and `compare` report)."""
    with torch.no_grad():
        return float(-log_likelihood(model, guide, x, num_samples=num_samples, seed=seed).mean())


# What an entry's check ran with before a choice was recorded: entries exported before the
# dense-layer choice existed were evaluated through torch's product, and before the scored chunk
# was chosen, every evaluation scored chunks of 2**20 elements.
KERNELS_BEFORE_RECORDING = {"linear": "torch", "chunk_elements": 2 ** 20}


def reproduce_check(name: str, root=None) -> float:
    """The entry's ``check`` measured again: same images, samples and seed, and the kernel choices
    the export recorded (``pyro_air.backend.report.chosen_kernels``; a choice not recorded: as it was then).
    It equals the recorded value bit for bit on the machine and thread count that exported it, and
    to float rounding elsewhere."""
    e = manifest.entry(name, root)
    check = e["check"]
    model, guide, spec = load_with_spec(name, root)
    with pinned_kernels({**KERNELS_BEFORE_RECORDING, **check.get("kernels", {})}):
        return check_value(model, guide, check_images(spec, check["points"]), check["num_samples"], check["seed"])
