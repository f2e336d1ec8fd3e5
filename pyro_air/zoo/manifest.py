"""The zoo's manifest: where the zoo lies, what it lists, and whether a weight file is the one it lists.

A zoo is a directory holding ``manifest.json`` and ``weights/<name>.pt``. The manifest is
``{"format_version": 1, "models": [entry, ...]}``; each entry records how the model was made (its run
spec, command, budget, seed, git commit, CPU), the numbers measured on it, and the size and SHA-256
of its weight file (docs/design.md, "Zoo"). The zoo shipped with pyro-air is this package's
directory; ``root=`` or ``$PYRO_AIR_ZOO`` names another one (a zoo of your own, or a test's).

Why a hash: a weight file is only loaded if its bytes are the ones the manifest lists, so a file
damaged on disk or in transfer, or replaced, is refused with a message rather than silently
giving other numbers.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

FORMAT_VERSION = 1
ZOO_ENV = "PYRO_AIR_ZOO"
MANIFEST_NAME = "manifest.json"
WEIGHTS_DIR = "weights"
SHIPPED = Path(__file__).resolve().parent  # the zoo installed with pyro-air: this package's directory
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")  # a model's name is also its file name
REINSTALL = ("reinstall pyro-air (pip install --force-reinstall --no-deps pyro-air; in a source checkout: "
             "git checkout -- pyro_air/zoo)")


class ZooError(RuntimeError):
    """A zoo's manifest or weight file cannot be used: missing, unreadable, corrupted or tampered with."""


def zoo_root(root=None) -> Path:
    """The zoo directory: ``root`` if given, else ``$PYRO_AIR_ZOO`` if set, else the zoo shipped with pyro-air."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ZOO_ENV)
    return Path(env) if env else SHIPPED


def is_shipped(root: Path) -> bool:
    return Path(root).resolve() == SHIPPED


def remedy(root: Path) -> str:
    """What to do about a damaged zoo file: reinstall the shipped zoo, or export again into one's own."""
    if is_shipped(root):
        return REINSTALL
    return (f"export the model again into {root} with pyro_air.zoo.export, or unset ${ZOO_ENV} to use the "
            f"models shipped with pyro-air")


def read_manifest(root=None) -> dict:
    """The manifest of the zoo at ``root`` (see ``zoo_root``), every entry validated (``check_entries``);
    a one-line ZooError if it is absent, unreadable, or an entry is malformed."""
    root = zoo_root(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ZooError(f"no zoo manifest at {path}; point ${ZOO_ENV} (or root=) at a directory written by "
                       f"pyro_air.zoo.export, or unset it to use the models shipped with pyro-air")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise ZooError(f"{path} is not a readable zoo manifest ({type(err).__name__}: {' '.join(str(err).split())[:300]}); "
                       f"{remedy(root)}") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list):
        raise ZooError(f"{path} is not a readable zoo manifest (it must be a JSON object whose \"models\" is a list "
                       f"of entries); {remedy(root)}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ZooError(f"{path} is not a readable zoo manifest (\"format_version\" must be an integer >= 1, got "
                       f"{version!r}); {remedy(root)}")
    if version > FORMAT_VERSION:
        raise ZooError(f"{path} has zoo format {version}, newer than this pyro-air reads ({FORMAT_VERSION}); "
                       "upgrade pyro-air")
    check_entries(manifest["models"], path, root)
    return manifest


def write_manifest(manifest: dict, root=None) -> Path:
    """Write the manifest atomically (the old one or the new one, never half), entries sorted by name."""
    root = zoo_root(root)
    manifest = {**manifest, "format_version": FORMAT_VERSION,
                "models": sorted(manifest["models"], key=lambda e: e["name"])}
    path = root / MANIFEST_NAME
    from pyro_air.train import run_dir as run_dirs  # here: reading the manifest (zoo list) needs no torch
    with run_dirs.write_guard(path, "write the zoo manifest", after="The previous manifest is unchanged."):
        root.mkdir(parents=True, exist_ok=True)
        run_dirs.atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
        make_readable(path)
    return path


# what every entry must hold (docs/design.md, "Zoo"): key -> (JSON types, what it is)
REQUIRED = {"name": (str, "the model's name"), "file": (str, "its weight file, relative to the zoo"),
            "size_bytes": (int, "the weight file's size"), "sha256": (str, "the weight file's SHA-256"),
            "spec": (dict, "the run spec"), "check": (dict, "the check record")}
OPTIONAL = {"description": str, "command": str, "budget": dict, "test_numbers": dict, "seed": int}
CHECK_KEYS = {"points": int, "num_samples": int, "seed": int, "neg_log_px": (int, float)}
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def has_type(value, types) -> bool:
    """``isinstance`` for JSON values, where a bool is not an int."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                                                      else (types,)))


def entry_problem(e, root: Path) -> str | None:
    """What is wrong with one manifest entry, or None: a missing or wrong-typed key, a name that is not a
    plain file name, a file outside the zoo directory (after resolving symbolic links), a bad check record."""
    if not isinstance(e, dict):
        return f"is a {type(e).__name__}, not an object"
    for key, (types, what) in REQUIRED.items():
        if key not in e:
            return f"has no \"{key}\" ({what})"
        if not has_type(e[key], types):
            return f"has a \"{key}\" of type {type(e[key]).__name__}, not {types.__name__} ({what})"
    for key, types in OPTIONAL.items():
        if key in e and not has_type(e[key], types):
            return f"has a \"{key}\" of type {type(e[key]).__name__}, not {types.__name__}"
    if not NAME_PATTERN.fullmatch(e["name"]):
        return ("has a name that is not a plain file name (lower-case letters, digits, '.', '_' and '-', starting "
                "with a letter or digit)")
    if e["size_bytes"] < 0 or not SHA256_PATTERN.fullmatch(e["sha256"]):
        return "has a size below 0 or a SHA-256 that is not 64 lower-case hex digits"
    for key, types in CHECK_KEYS.items():
        if not has_type(e["check"].get(key), types):
            return f"has a check without a numeric \"{key}\""
    for key in ("model", "guide", "objective"):
        part = e["spec"].get(key)
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            return f"has a spec without a \"{key}\" name"
    rel = Path(e["file"])
    inside = root.resolve()
    if rel.is_absolute() or ".." in rel.parts or not e["file"].strip() or \
            not (root / rel).resolve().is_relative_to(inside) or (root / rel).resolve() == inside:
        return f"lists the file {e['file']!r}, outside the zoo directory (symbolic links resolved)"
    return None


def check_entries(models: list, path: Path, root: Path) -> None:
    """Refuse, in one line, the first malformed entry or a name listed twice."""
    seen = set()
    for i, e in enumerate(models):
        problem = entry_problem(e, root)
        label = repr(e["name"]) if isinstance(e, dict) and isinstance(e.get("name"), str) else f"number {i + 1}"
        if problem is None and e["name"] in seen:
            problem = "is listed twice (names must be unique)"
        if problem is not None:
            raise ZooError(f"{path}: the entry {label} {problem}; {remedy(root)}")
        seen.add(e["name"])


def make_readable(path: Path) -> None:
    """rw-r--r--: atomic writes create private files (mkstemp), but a zoo file is package data that every
    user of an installation reads."""
    path.chmod(0o644)


def names(root=None) -> list:
    """The names of the models in the zoo, in manifest order (sorted)."""
    return [e["name"] for e in read_manifest(root)["models"]]


def entry(name: str, root=None) -> dict:
    """The manifest entry of ``name``; a KeyError listing the zoo's names if there is none."""
    models = read_manifest(root)["models"]
    for e in models:
        if e["name"] == name:
            return e
    known = ", ".join(e["name"] for e in models) or "none yet"
    raise KeyError(f"unknown zoo model {name!r}; the zoo at {zoo_root(root)} holds: {known}. "
                   "List them with `pyro-air zoo list`.")


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"a zoo model's name is also its file name: lower-case letters, digits, '.', '_' and '-', "
                         f"starting with a letter or digit; got {name!r}")
    return name


def sha256(path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_path(e: dict, root=None) -> Path:
    """The weight file of entry ``e``: a plain relative path inside the zoo directory (no '..', not absolute,
    not a symbolic link leading out of it)."""
    root = zoo_root(root)
    problem = entry_problem(e, root)
    if problem is not None:
        raise ZooError(f"the zoo manifest at {root}: the entry {e.get('name')!r} {problem}; {remedy(root)}")
    return root / e["file"]


def verified_weight_path(e: dict, root=None) -> Path:
    """The weight file of entry ``e`` after checking that its size and SHA-256 are the manifest's
    (``verified_weight_bytes``)."""
    return verified_weight_bytes(e, root)[0]


def verified_weight_bytes(e: dict, root=None) -> tuple:
    """(path, bytes) of the weight file of entry ``e``, read once: the bytes that were hashed are the bytes
    the loader gets, so the file cannot be swapped between the check and the load.

    Raises ZooError if the file is missing, or if its bytes differ from those listed (corrupted or
    tampered with): such a file is never handed to the loader."""
    root = zoo_root(root)
    path = weight_path(e, root)
    if not path.is_file():
        raise ZooError(f"the zoo lists {e['name']!r} but its weight file {path} is missing; {remedy(root)}")
    data = path.read_bytes()
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    if size != e.get("size_bytes") or digest != e.get("sha256"):
        raise ZooError(f"{path} is not the file the zoo manifest lists for {e['name']!r} (SHA-256 {digest}, "
                       f"{size} bytes; the manifest records {e.get('sha256')}, {e.get('size_bytes')} bytes): it is "
                       f"corrupted or was tampered with, so it is not loaded. To fix it, {remedy(root)}")
    return path, data
