"""Adding a trained model to a zoo: ``export(run, name, ...)``.

A model enters the zoo from a finished run's ``best.pt`` (the early-stopped parameters), read
through the safe checkpoint loader. What is written, and why:

- ``weights/<name>.pt``: the model's and guide's state dicts in float32 and nothing else (no
  optimizer, no random state: the zoo is for using a model, not for resuming its training), saved
  atomically. The ``check`` value is measured on these float32 weights in eval mode (what ``load``
  returns) before anything is written, and the written file is read back the way ``load`` reads it
  before the manifest lists it.
- the manifest entry: the run spec with any local data directory removed (``build_run`` rebuilds the
  modules from it anywhere), the file's size and SHA-256, the provenance (command, budget, seed, git
  commit, CPU, torch and pyro versions) and the numbers: the caller's ``test_numbers`` (whatever was
  measured on the full test set) and a ``check`` anyone can repeat in seconds: -log p(x) by
  IWAE-``check_samples`` on the first ``check_points`` test images with draws from ``check_seed``.
  The entry replaces one of the same name; the manifest is rewritten atomically.

Atomic as a whole: (1) the new weights go to a file the manifest does not list (``weights/NAME.pt``
and ``weights/NAME+1.pt`` alternate), (2) the manifest is rewritten atomically to list it, (3) the
old file is removed. Killed at any moment, the zoo lists either the old entry with its old file or
the new one with its new file; what the kill left (a temporary file, an unlisted weight file) is
never read by ``load`` and is removed by the next export (tests/test_zoo.py, the kill tests).
"""
from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pyro
import torch

from pyro_air.backend.choices import cpu_model
from pyro_air.backend.report import chosen_kernels
from pyro_air.runs import modules_from_state
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.train import run_dir as run_dirs
from pyro_air.zoo import manifest
from pyro_air.zoo.loading import check_images, check_value, load_entry

CHECK_SPLIT = "test"


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout this package lies in, or "unknown" (no git, not a checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def float32_state(state: dict) -> dict:
    """A state dict with floating-point tensors as contiguous float32 copies on the CPU (other tensors as
    they are): copies, so no tensor drags a larger storage it views into the file."""
    return {k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()).clone()
            .contiguous() for k, v in state.items()}


def run_files(run) -> tuple:
    """(weights checkpoint, training checkpoint or None) of a run directory or a checkpoint file.

    A directory gives its ``best.pt`` (the early-stopped parameters) and ``checkpoint.pt`` (which holds
    the training configuration, hence the seed)."""
    path = Path(run)
    if path.is_dir():
        last = path / "checkpoint.pt"
        return path / "best.pt", last if last.is_file() else None
    return path, None


def training_config(state: dict, last_path) -> dict:
    config = state.get("train_config")
    if config is None and last_path is not None:
        config = ckpt_io.load(last_path).get("train_config")
    return dict(config or {})


UNCHANGED = "The zoo is unchanged (it lists what it listed before); export again once this is fixed."
SECOND_SLOT = "+1"  # '+' is not allowed in a name, so NAME+1.pt is no other model's file


def new_weight_file(name: str, previous: dict | None) -> str:
    """The weight file a (re-)export writes, relative to the zoo: ``weights/NAME.pt``, or ``weights/NAME+1.pt``
    where the current entry lists ``weights/NAME.pt`` - never the file the manifest lists, so a crash at any
    moment leaves the listed file untouched (the two names alternate over re-exports)."""
    first = f"{manifest.WEIGHTS_DIR}/{name}.pt"
    return f"{manifest.WEIGHTS_DIR}/{name}{SECOND_SLOT}.pt" if previous and previous["file"] == first else first


def remove_unlisted_files(name: str, listed: str, root: Path) -> list:
    """Remove ``weights/NAME.pt`` and ``weights/NAME+1.pt`` except ``listed`` (the file the manifest now lists):
    the previous weights, or a new file an export killed before its manifest write left behind."""
    removed = []
    for rel in (f"{manifest.WEIGHTS_DIR}/{name}.pt", f"{manifest.WEIGHTS_DIR}/{name}{SECOND_SLOT}.pt"):
        path = root / rel
        if rel != listed and (path.is_file() or path.is_symlink()):
            with run_dirs.write_guard(path, "remove the previous zoo weight file"):
                path.unlink()
            removed.append(rel)
    return removed


def check_export_inputs(name, description, command, budget, test_numbers, check_points, check_samples, check_seed):
    manifest.check_name(name)
    for label, value in (("description", description), ("command", command)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be a non-empty string (what the model is / the command that trained it)")
    for label, value in (("budget", budget), ("test_numbers", test_numbers)):
        if not isinstance(value, dict):
            raise TypeError(f"{label} must be a dict (JSON values), got {type(value).__name__}")
    for label, value in (("check_points", check_points), ("check_samples", check_samples)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    if not isinstance(check_seed, int) or check_seed < 0:
        raise ValueError(f"check_seed must be an integer >= 0, got {check_seed!r}")


def export(run, name: str, *, description: str, command: str, budget: dict, test_numbers: dict, test_x=None,
           check_points: int = 100, check_samples: int = 1000, check_seed: int = 0, seed: int | None = None,
           root=None) -> dict:
    """Add the model of ``run`` (a run directory - its best.pt - or a checkpoint file) to the zoo as ``name``.

    ``description``: one line on what the model is; ``command``: the exact command that trained it;
    ``budget``: e.g. {"epochs": 300, "train_size": 1000} (the run's training configuration is recorded
    next to it); ``test_numbers``: what was measured on it, e.g. {"test -log p(x) IWAE-5000": 99.4,
    "gap": 4.1}. ``test_x``: the test images (default: the spec's test split as evaluation sees it,
    ``pyro_air.runs.evaluation_split``); the check uses its first ``check_points`` rows - pass that
    split (or nothing), since ``reproduce_check`` and the tests reload it from the spec. ``seed``: the
    training seed (default: the run's, from its checkpoint.pt). ``root``: the zoo directory (default
    ``$PYRO_AIR_ZOO``, else the zoo shipped with pyro-air: in a source checkout, this package).
    Returns the manifest entry written.
    """
    check_export_inputs(name, description, command, budget, test_numbers, check_points, check_samples, check_seed)
    root = manifest.zoo_root(root)
    best_path, last_path = run_files(run)
    state = ckpt_io.load(best_path)
    spec = copy.deepcopy(state.get("spec") or {})
    if not spec:
        raise manifest.ZooError(f"{best_path} holds no run spec, so the zoo could not rebuild its modules; train with "
                                "`pyro-air train`, or pass spec= to fit(...)")
    spec.get("data", {}).pop("data_dir", None)  # a local directory; the loaders fall back on $PYRO_AIR_DATA
    config = training_config(state, last_path)
    seed = config.get("seed") if seed is None else seed
    if seed is None:
        raise ValueError(f"the training seed of {run} is not recorded (no checkpoint.pt beside it); pass seed=")
    # everything is read (the manifest, the check's images) before anything is written
    models_all = manifest.read_manifest(root)["models"] if (root / manifest.MANIFEST_NAME).exists() else []
    models = [e for e in models_all if e["name"] != name]
    x = check_images(state["spec"], check_points) if test_x is None else test_x[:check_points]  # its data_dir
    weights = {"format_version": ckpt_io.FORMAT_VERSION, "model_state": float32_state(state["model_state"]),
               "guide_state": float32_state(state["guide_state"])}
    # the check is measured on the float32 weights as shipped, as users get them (eval mode), before any write
    model, guide = modules_from_state(spec, weights["model_state"], weights["guide_state"])
    model.eval()
    guide.eval()
    check = {"split": CHECK_SPLIT, "points": len(x), "num_samples": check_samples, "seed": check_seed,
             "neg_log_px": check_value(model, guide, x, check_samples, check_seed), "threads": torch.get_num_threads(),
             "kernels": chosen_kernels()}
    previous = next((e for e in models_all if e["name"] == name), None)
    rel = new_weight_file(name, previous)
    path = root / rel
    for folder in (root, root / manifest.WEIGHTS_DIR):  # what a killed export left (never read by load)
        if folder.is_dir():
            run_dirs.remove_stale_temporaries(folder)
    # 1. the new weights under a file name the manifest does not list (the old file stays as it is)
    with run_dirs.write_guard(path, "write the zoo weight file", after=UNCHANGED):
        ckpt_io.atomic_save(weights, path)
        manifest.make_readable(path)
    entry = {
        "name": name, "description": description, "spec": spec, "file": rel,
        "size_bytes": path.stat().st_size, "sha256": manifest.sha256(path),
        "command": command, "budget": {**budget, "train_config": config, "best_epoch": state.get("epoch")},
        "seed": seed, "git_commit": git_commit(), "cpu": cpu_model() or "unknown",
        "torch_version": torch.__version__, "pyro_version": pyro.__version__,
        "test_numbers": test_numbers, "check": check,
    }
    load_entry(entry, root)  # the file as written loads the way users load it (verified, strict) - else no entry
    # 2. the manifest, atomically: from here on it lists the new file
    manifest.write_manifest({"models": models + [entry]}, root)
    # 3. the old file (and any file of this name a killed export left) is no longer listed: removed
    remove_unlisted_files(name, rel, root)
    return entry
