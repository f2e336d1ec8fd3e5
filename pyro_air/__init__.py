"""pyro-air: a Pyro model zoo for amortized variational inference.

Subpackages: ``data`` -> ``models``, ``guides`` -> ``infer`` (objectives) -> ``train`` ->
``evaluate`` / ``diagnostics``. See docs/design.md and README.md.
"""
__version__ = "0.1.0"

import warnings as _warnings

from tqdm import TqdmWarning as _TqdmWarning

# Pyro imports tqdm.auto (pyro.infer.mcmc.logger), which in a Jupyter kernel without ipywidgets warns
# "IProgress not found" at import; pyro-air's own bars are plain text there (pyro_air.support.progress).
_warnings.filterwarnings("ignore", message="IProgress not found", category=_TqdmWarning)


def console_main() -> int:
    """The ``pyro-air`` command (setup.cfg's console script; ``python -m pyro_air``): ``pyro_air.cli.main``,
    imported here so that a Ctrl-C while torch and pyro are still being imported ends with one line and
    status 130 rather than Python's traceback of the import (issue 34)."""
    import sys

    try:
        from pyro_air.cli.main import main
    except KeyboardInterrupt:
        print("pyro-air: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    return main()
