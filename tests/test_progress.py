"""Progress bars: text bars without the "IProgress not found" TqdmWarning where ipywidgets is missing."""
import importlib
import sys
import warnings

import tqdm.std

from pyro_air.core import progress


def test_without_ipywidgets_the_bars_are_plain_text_and_warn_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as in a fresh kernel without ipywidgets
    try:
        reloaded = importlib.reload(progress)
        assert reloaded.tqdm is tqdm.std.tqdm
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a TqdmWarning would raise here
            with reloaded.tqdm(total=3, disable=False, file=sys.stderr) as bar:
                bar.update(3)
            assert bar.n == 3
    finally:
        monkeypatch.undo()
        importlib.reload(progress)
