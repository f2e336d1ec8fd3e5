"""The ``pyro-air`` command line: ``main`` (parsing and dispatch), ``commands`` (what each
subcommand does), ``options`` (train options, run specs from them, resume), ``names`` (the names the
parser lists, read from the library's declarations), ``ais_options``, ``zoo_commands``,
``tutorial`` (``python -m pyro_air.cli.tutorial strip``) and ``compare`` (an old import path). It
parses and calls: runs are built, loaded and evaluated by ``pyro_air.runs``, trained by
``pyro_air.train.fit``, compared by ``pyro_air.compare``."""
from pyro_air.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
