"""Trained models that ship with pyro-air: list them, load them, add one.

    import pyro_air.zoo
    pyro_air.zoo.names()                        # what the zoo holds
    pyro_air.zoo.entry(NAME)                    # how it was trained, its numbers, its file's SHA-256
    model, guide = pyro_air.zoo.load(NAME)      # verified against the manifest, in eval mode

Command line: ``pyro-air zoo list``, ``pyro-air zoo show NAME``, ``pyro-air evaluate zoo:NAME``,
``pyro-air diagnose zoo:NAME``. A model is added with ``pyro_air.zoo.export(RUN_DIR, NAME, ...)``.
The format, the verification and how to add a model: docs/design.md, "Zoo". This package sits
above ``pyro_air.runs`` (it rebuilds modules from run specs) and below ``pyro_air.cli``.
"""
import importlib

from pyro_air.zoo.manifest import ZOO_ENV, ZooError, entry, names, zoo_root

# Reading the manifest needs no torch (``pyro-air zoo list`` answers at once); the names that load or
# export weights come from their modules on first use (PEP 562).
_LAZY = {"export": "exporting", "PREFIX": "loading", "load": "loading", "load_source": "loading",
         "output_dir": "loading", "reproduce_check": "loading", "zoo_name": "loading"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"pyro_air.zoo.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pyro_air.zoo' has no attribute {name!r}")

__all__ = ["PREFIX", "ZOO_ENV", "ZooError", "entry", "export", "load", "load_source", "names", "output_dir",
           "reproduce_check", "zoo_name", "zoo_root"]
