"""pyro-air: a Pyro model zoo for amortized variational inference.

Subpackages: ``data`` -> ``models``, ``guides`` -> ``infer`` (objectives) -> ``train`` ->
``evaluate`` / ``diagnostics``. See docs/design.md and README.md.
"""
__version__ = "0.1.0"
