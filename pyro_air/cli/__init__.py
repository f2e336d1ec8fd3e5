"""The ``pyro-air`` command line: ``main`` (parsing and dispatch), ``commands`` (what each
subcommand does), ``options`` (train options, run specs from them, resume), ``compare`` (the AIR
comparison behind ``pyro-air compare``) and ``tutorial`` (helpers the notebooks use). It holds no
library code: runs are built, loaded and evaluated by ``pyro_air.runs``."""
from pyro_air.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
