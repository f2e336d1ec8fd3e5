"""``python -m pyro_air.cli.tutorial strip NOTEBOOK.ipynb ...``: clear a notebook's outputs before it is
committed (``pyro_air.compare.notebooks.strip_outputs``). The notebooks' helpers (``budget_from_env``,
``fresh_run_dir``) live in ``pyro_air.compare``; the names below are their old import path, kept so
that a notebook written against it still runs.
"""
from __future__ import annotations

import sys

from pyro_air.compare.budgets import BUDGET_ENV, BUDGET_NAMES, DEFAULT_BUDGET, budget_from_env  # noqa: F401
from pyro_air.compare.notebooks import fresh_run_dir, strip_outputs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "strip" or len(argv) < 2:
        print("usage: python -m pyro_air.cli.tutorial strip NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for path in argv[1:]:
        print(f"{path}: {'stripped' if strip_outputs(path) else 'already clean'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
