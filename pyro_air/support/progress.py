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



class JobProgress:
    """One bar over a whole command's work (``pyro-air train``, ``quickstart``, ``compare``: training
    steps over every model; ``evaluate``: model evaluations per datapoint over every split and column;
    ``diagnose``: guide draws), the time left for all of it (tqdm's estimate from the recent rate), and
    the last loss and validation value. Inside ``with JobProgress(...)`` the training loop and the
    evaluators advance it (``current_job``) and show it instead of their own bars.

        with JobProgress(total=3 * epochs * batches, desc="compare"):
            fit(...); fit(...); fit(...)
    """

    def __init__(self, total: int, desc: str = "", disable: bool = False, initial: int = 0):
        self.total, self.desc, self.disable, self.initial = int(total), desc, disable, int(initial)
        self.bar = None
        self.done = self.initial  # steps done (counted also when the bar is disabled)
        self.values: dict = {}

    def __enter__(self) -> "JobProgress":
        global _CURRENT
        self.bar = tqdm(total=self.total, initial=self.initial, desc=self.desc, disable=self.disable,
                        smoothing=0.05, unit="step", dynamic_ncols=True)
        self._outer, _CURRENT = _CURRENT, self
        return self

    def __exit__(self, *exc) -> None:
        global _CURRENT
        _CURRENT = self._outer
        self.bar.close()

    def write(self, text: str) -> None:
        """A line of output above the bar (the bar is redrawn below it)."""
        if self.disable:
            print(text)
        else:
            self.bar.write(text)

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self.bar.update(steps)

    def reach(self, steps: int) -> None:
        """At least ``steps`` done: a model that stopped early gives its remaining steps up."""
        if steps > self.done:
            self.advance(steps - self.done)

    def stage(self, text: str) -> None:
        """What runs now, before the bar: e.g. "DVAE epoch 12/300"."""
        self.bar.set_description_str(f"{self.desc}: {text}" if self.desc else text, refresh=False)

    def show(self, **values) -> None:
        """The latest values after the bar, e.g. loss=97.31, valid=-101.2 (floats to 2 decimals)."""
        self.values.update({k: v for k, v in values.items() if v is not None})
        self.bar.set_postfix_str(", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in self.values.items()), refresh=True)


_CURRENT: JobProgress | None = None


def current_job() -> JobProgress | None:
    """The ``JobProgress`` this process is inside, or None."""
    return _CURRENT


def say(line: str) -> None:
    """A line of output (stdout), above the bar of the job this runs in, or printed where there is none."""
    job = current_job()
    if job is not None:
        job.write(line)
    else:
        print(line)


__all__ = ["JobProgress", "current_job", "say", "tqdm"]
