"""pyro-air: a Pyro model zoo for amortized variational inference.

Subpackages: ``data`` -> ``models``, ``guides`` -> ``infer`` (objectives) -> ``train`` ->
``evaluate`` / ``diagnostics``. See docs/design.md and README.md.
"""
__version__ = "0.1.0"

import warnings as _warnings

from tqdm import TqdmWarning as _TqdmWarning

# Pyro imports tqdm.auto (pyro.infer.mcmc.logger), which in a Jupyter kernel without ipywidgets warns
# "IProgress not found" at import; pyro-air's own bars are plain text there (pyro_air.core.progress).
_warnings.filterwarnings("ignore", message="IProgress not found", category=_TqdmWarning)
