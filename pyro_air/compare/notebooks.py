"""Support for the notebooks in ``tutorials/``: one policy for the runs they write and output stripping.

What a notebook writes follows one policy (``fresh_run_dir``): every execution starts from an empty
run directory, so a notebook reruns cleanly, after a finished or an interrupted execution, and
nothing piles up. ``python -m pyro_air.cli.tutorial strip tutorials/*.ipynb`` clears outputs and
execution counts before a notebook is committed (``tests/test_tutorials.py`` checks). Their budgets:
``pyro_air.compare.budgets.budget_from_env``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

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
