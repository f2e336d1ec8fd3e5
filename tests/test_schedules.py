"""Schedules of a hyper-parameter over training progress (pyro_air/infer/schedules.py)."""
import pytest

from pyro_air.infer import ConstantSchedule, LinearSchedule


def test_linear_schedule_start_midway_end_and_after():
    s = LinearSchedule(0.2, 1.0, fraction=0.5)
    assert s(0.0) == pytest.approx(0.2)
    assert s(0.25) == pytest.approx(0.6)   # half of the ramp
    assert s(0.5) == pytest.approx(1.0)
    assert s(0.9) == pytest.approx(1.0)    # constant after the ramp
    assert LinearSchedule(0.0, 1.0, 1.0)(0.3) == pytest.approx(0.3)
    assert LinearSchedule(0.0, 1.0, 0.0)(0.0) == 1.0   # no annealing at all
    assert ConstantSchedule(0.7)(0.4) == 0.7


@pytest.mark.parametrize("bad", [dict(fraction=1.5), dict(fraction=-0.1), dict(start="a")])
def test_linear_schedule_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        LinearSchedule(**bad)
    with pytest.raises(ValueError, match="progress"):
        LinearSchedule()(1.2)
