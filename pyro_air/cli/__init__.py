"""The ``pyro-air`` command line: ``main`` (parsing and dispatch), ``commands`` (what each
subcommand does), ``options`` (train options, run specs from them, resume), ``compare`` (the AIR
comparison behind ``pyro-air compare``) and ``tutorial`` (helpers the notebooks use). It holds no
library code: runs are built, loaded and evaluated by ``pyro_air.runs``.

OpenMP wait policy (issue 17): unless ``OMP_WAIT_POLICY`` is set, the command sets it to PASSIVE
before torch is imported, so threads waiting at the end of a parallel operation sleep instead of
spinning. On a machine where other processes are busy, spinning threads take the cores the working
threads need: an epoch at 2 threads took 10-30x longer than with PASSIVE (``benchmarks/busy.py``,
benchmarks/RESULTS.md). The policy changes no number (the same threads do the same sums)."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any import of torch (see above)

from pyro_air.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
