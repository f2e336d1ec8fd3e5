"""Support for the notebooks in ``tutorials/``: a budget switch and output stripping.

Every tutorial's first code cell picks its sizes with ``budget_from_env``:

    B = budget_from_env(tiny=dict(epochs=1, train_size=500), small=dict(epochs=5, train_size=10000),
                        full=dict(epochs=100, train_size=None))

The budget name comes from ``$PYRO_AIR_TUTORIAL_BUDGET`` (default ``"small"``, minutes on a
laptop CPU); the test suite sets ``tiny`` (seconds; checks the notebook runs, not its numbers);
``full`` is the papers' scale. What a notebook writes follows one policy (``fresh_run_dir``): every
execution starts from an empty run directory, so a notebook reruns cleanly, after a finished or an
interrupted execution, and nothing piles up. ``python -m pyro_air.cli.tutorial strip tutorials/*.ipynb`` clears
outputs and execution counts before a notebook is committed (``tests/test_tutorials.py`` checks).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

BUDGET_ENV = "PYRO_AIR_TUTORIAL_BUDGET"
BUDGET_NAMES = ("tiny", "small", "full")
DEFAULT_BUDGET = "small"


def budget_from_env(name: str | None = None, **presets: dict) -> SimpleNamespace:
    """The preset named by ``name`` or ``$PYRO_AIR_TUTORIAL_BUDGET`` (default "small") as attributes."""
    if set(presets) != set(BUDGET_NAMES):
        raise ValueError(f"give one preset for each budget {BUDGET_NAMES}, got {sorted(presets)}")
    keys = {k: set(v) for k, v in presets.items()}
    if len({frozenset(v) for v in keys.values()}) != 1:
        raise ValueError(f"every budget preset must set the same keys, got {({k: sorted(v) for k, v in keys.items()})}")
    name = name or os.environ.get(BUDGET_ENV, DEFAULT_BUDGET)
    if name not in BUDGET_NAMES:
        raise ValueError(f"unknown tutorial budget {name!r} (from ${BUDGET_ENV}); use one of {', '.join(BUDGET_NAMES)}")
    return SimpleNamespace(name=name, **presets[name])


def fresh_run_dir(path) -> Path:
    """``path``, emptied: the tutorials' one policy for the runs they write. An earlier execution's
    directory (finished or interrupted) is removed, never moved aside, so every execution trains afresh
    and nothing piles up. Only a relative path under ``runs/`` (the notebooks' own directories)."""
    path = Path(path)
    if path.is_absolute() or not path.parts or path.parts[0] != "runs" or ".." in path.parts or len(path.parts) < 2:
        raise ValueError(f"fresh_run_dir empties a notebook's own run directory, a relative path under runs/; "
                         f"got {str(path)!r}: pass e.g. runs/my-tutorial-run")
    shutil.rmtree(path, ignore_errors=True)
    return path


def strip_outputs(path) -> bool:
    """Clear outputs, execution counts and widget state of a notebook in place; True if it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after != before:
        nbformat.write(nb, path)
    return after != before


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
