"""Schedules over training progress p in [0, 1] (fraction of the optimizer steps done).

``LinearSchedule(start, end, fraction)``: v(p) = start + (end - start) * min(p / fraction, 1), i.e. a
linear ramp over the first ``fraction`` of training, then constant (the beta-annealing of the AVO
paper, Eq. 2 and section 5.3, goes from beta_0 to 1 over a chosen fraction of training).
``ConstantSchedule(value)``: v(p) = value.
Objectives with a schedule expose ``set_progress(p)``; ``pyro_air.train.fit`` calls it every step.
"""
from __future__ import annotations

from pyro_air.core.validation import check_unit_interval


def _check_number(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


class Schedule:
    def __call__(self, progress: float) -> float:
        raise NotImplementedError


class ConstantSchedule(Schedule):
    def __init__(self, value: float = 1.0):
        self.value = _check_number(value, "value")

    def __call__(self, progress: float) -> float:
        return self.value

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


class LinearSchedule(Schedule):
    def __init__(self, start: float = 0.0, end: float = 1.0, fraction: float = 1.0):
        self.start = _check_number(start, "start")
        self.end = _check_number(end, "end")
        self.fraction = check_unit_interval(_check_number(fraction, "fraction"), "fraction")

    def __call__(self, progress: float) -> float:
        progress = check_unit_interval(progress, "progress")
        if self.fraction == 0.0 or progress >= self.fraction:
            return self.end
        return self.start + (self.end - self.start) * progress / self.fraction

    def __repr__(self) -> str:
        return f"LinearSchedule(start={self.start}, end={self.end}, fraction={self.fraction})"
