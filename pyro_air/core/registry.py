"""Name -> constructor registries with declared capabilities (docs/design.md, contract 4).

The CLI, the experiment configs and the notebooks spell a run the same way:
``models.build("bernoulli-vae", z_dim=50)``, ``guides.build("gaussian", ...)``,
``infer.build("iwae", num_particles=8)``.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any


class Registry:
    """A named collection of constructors with a clear error for unknown names.

    ``declares`` names what a registered thing may say about itself, each with its default: what the
    code that composes things (``pyro_air.runs``' run specs, the command line's help) reads instead of
    special-casing names or probing signatures. A thing declares it where it registers, at the class
    or the builder: ``@OBJECTIVES.register("miwae", num_particles=False)``; ``declared(name)`` reads it
    back (the defaults for what it did not declare)."""

    def __init__(self, kind: str, declares: dict | None = None):
        self.kind = kind
        self.declares = dict(declares or {})
        self._builders: dict[str, Callable[..., Any]] = {}
        self._declared: dict[str, dict] = {}

    def register(self, name: str, **declared) -> Callable:
        unknown = sorted(set(declared) - set(self.declares))
        if unknown:
            raise ValueError(f"{self.kind} {name!r} declares {', '.join(unknown)}, which a {self.kind} cannot declare; "
                             f"it may declare: {', '.join(sorted(self.declares)) or 'nothing'}")

        def decorator(builder: Callable) -> Callable:
            if name in self._builders:
                raise ValueError(f"{self.kind} name {name!r} is registered twice")
            self._builders[name] = builder
            self._declared[name] = dict(declared)
            return builder

        return decorator

    def declared(self, name: str) -> dict:
        """What ``name`` declared when it registered, with the registry's defaults for the rest."""
        self.get(name)
        return {**self.declares, **self._declared.get(name, {})}

    def names(self) -> list:
        return sorted(self._builders)

    def get(self, name: str) -> Callable:
        if name not in self._builders:
            raise KeyError(
                f"unknown {self.kind} {name!r}; known {self.kind}s are: "
                f"{', '.join(self.names())}. Pick one of these names."
            )
        return self._builders[name]

    def build(self, name: str, **cfg: Any) -> Any:
        builder = self.get(name)
        try:
            return builder(**cfg)
        except TypeError as err:
            raise TypeError(f"cannot build {self.kind} {name!r} with {cfg}: {err}{misspelled(cfg, str(err))}") from err

    def __contains__(self, name: str) -> bool:
        return name in self._builders


def misspelled(cfg: dict, message: str) -> str:
    """"; 'sigm' is not an option: did you mean 'sigma'?" for each given key close to an argument the
    builder's TypeError says is missing (a misspelt option lands in a ``**cfg`` and the real one is then
    missing); "" if none."""
    match = re.search(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.*)", message)
    if not match:
        return ""
    missing = re.findall(r"'(\w+)'", match.group(1))
    hints = [f"{key!r} is not an option: did you mean {close[0]!r}?" for key in cfg
             for close in [difflib.get_close_matches(key, missing, n=1)] if close and key not in missing]
    return "".join(f"; {h}" for h in hints)

