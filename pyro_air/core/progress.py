"""Progress bars: ``tqdm.auto`` (widgets) in a notebook that can draw them, plain text bars elsewhere.

Why not ``tqdm.auto`` alone: in a Jupyter kernel without ``ipywidgets`` it falls back to text bars
*and* warns ``TqdmWarning: IProgress not found`` on every bar; here the text bars come without the
warning. Install ``ipywidgets`` to get widget bars in notebooks.
"""
from __future__ import annotations

import importlib.util


def _widgets_available() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


if _widgets_available():
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
