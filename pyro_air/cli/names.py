"""The names the ``pyro-air`` parser lists in its help and choices, read from the library's own
declarations without importing it, so that parsing (``--help``, an argument error, ``zoo list``)
needs neither torch nor Pyro and no list is kept by hand:

- ``GUIDES``, ``OBJECTIVES``: the registry decorators at the definitions
  (``@GUIDES.register("gaussian", ...)`` in ``pyro_air/guides/``, ``@OBJECTIVES.register(...)`` in
  ``pyro_air/infer/``);
- ``LIKELIHOODS``: the likelihoods the models declare there (``@MODELS.register(..., likelihood=...)``);
- ``DATASETS``: the dataset records (``register(DatasetRecord("mnist", ...))`` in ``pyro_air/data/``),
  less "file", which ``--data PATH`` names;
- ``NETS``, ``QUICKSTART_EPOCHS`` (``pyro_air/runs.py``) and ``SPLITS``
  (``pyro_air/data/records.py``): the constants, as written there.

``tests/test_names.py`` checks the reading against the imported registries. A name registered at
run time (your own guide) is still built by the registry; only the help text does not list it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

# a registry decorator whose arguments are literals: @GUIDES.register("name", key=value, ...)
DECORATOR = re.compile(r"^@(?P<registry>[A-Z]+)\.register\((?P<args>[^()]*)\)", re.MULTILINE)
RECORD = re.compile(r"^register\(DatasetRecord\(\s*\"(?P<name>[^\"]+)\"", re.MULTILINE)


def _sources(package: str):
    return [path.read_text() for path in sorted((PACKAGE / package).glob("*.py"))]


def declarations(package: str, registry: str) -> dict:
    """{name: declared} of every ``@REGISTRY.register(name, **declared)`` in ``pyro_air/<package>/``."""
    found = {}
    for text in _sources(package):
        for match in DECORATOR.finditer(text):
            if match["registry"] == registry:
                call = ast.parse(f"f({match['args']})", mode="eval").body
                found[ast.literal_eval(call.args[0])] = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    return dict(sorted(found.items()))


def constant(module: str, name: str):
    """The literal value of ``NAME = ...`` at the top level of ``pyro_air/<module>``."""
    match = re.search(rf"^{name} = (.+)$", (PACKAGE / module).read_text(), re.MULTILINE)
    return ast.literal_eval(match.group(1).split("  #")[0])


GUIDES = tuple(declarations("guides", "GUIDES"))
OBJECTIVES = tuple(declarations("infer", "OBJECTIVES"))
LIKELIHOODS = tuple(sorted({d["likelihood"] for d in declarations("models", "MODELS").values()
                            if d.get("net") == "mlp" and d.get("likelihood")}))
DATASETS = tuple(sorted(m["name"] for text in _sources("data") for m in RECORD.finditer(text) if m["name"] != "file"))
NETS = constant("runs.py", "NETS")
SPLITS = constant("data/records.py", "SPLITS")
QUICKSTART_EPOCHS = constant("runs.py", "QUICKSTART_EPOCHS")
