"""How a training step updates the parameters, as a hook of the loop (``pyro_air.train.loop``).

The default, ``StepSchedule``, is the ordinary joint step: one gradient of the loss on the step's
minibatch, one Adam update of every parameter of model and guide. A schedule that changes this
(the aggressive encoder updates of lagging-inference-network training, ``pyro_air.train.lagging``)
overrides the hooks; the loop keeps everything else - data order, learning-rate decay, early
stopping, non-finite rollback, checkpoints and exact resume (a schedule's own state goes into the
checkpoint through ``state_dict``).
"""
from __future__ import annotations


class StepSchedule:
    """The joint step: every hook does nothing."""

    def check(self, train_x, valid_x, config) -> None:
        """Runs in ``fit`` with its other input checks, before anything is seeded or written: raise if
        the run lacks what the schedule needs."""

    def before_step(self, trainer) -> None:
        """Runs before the step's loss is computed (e.g. extra encoder updates)."""

    def before_update(self, trainer) -> None:
        """Runs after ``backward``, before ``optimizer.step()`` (e.g. drop some parameters' gradients)."""

    def end_epoch(self, trainer) -> dict:
        """Runs when an epoch ends; returns entries for that epoch's metrics record."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
