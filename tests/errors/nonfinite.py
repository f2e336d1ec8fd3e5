"""Non-finite losses: NaN / inf losses and parameters while training.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""

from tests.errors.builders import BadAt, tiny_fit
from tests.errors.table import Case, raised

TITLE = "Non-finite losses"


def _nan_loss(tmp, mp):
    return raised(tiny_fit, tmp, objective=BadAt({7}))


def _nan_before_checkpoint(tmp, mp):
    return raised(tiny_fit, tmp, objective=BadAt({3}))


def _inf_gradient(tmp, mp):
    return raised(tiny_fit, tmp, objective=BadAt({8}, gradient=True), epochs=1)


def _rollback_gives_up(tmp, mp):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return raised(tiny_fit, tmp, objective=BadAt(range(7, 100)), on_nonfinite="rollback", max_rollbacks=2)


CASES = [
    Case("nan-loss", "a NaN/inf training loss (default `on_nonfinite=\"stop\"`)", "NonFiniteLossError",
         "training produced a non-finite loss (nan) at step 7 (epoch 1). Likely causes: a learning rate too high "
         "(lr=0.01: lower --lr), bad data (NaN/inf or values outside the likelihood's support), or an unstable "
         "objective or encoder (extreme importance weights, a scale that collapsed to 0). The last good state (step "
         "4) is kept in …/checkpoint.pt; nothing with NaN parameters was saved. Resume from it with a lower learning "
         "rate (pyro-air train --resume RUN --lr LOWER), or train with on_nonfinite='rollback' to roll back and lower "
         "the learning rate automatically.", _nan_loss),
    Case("nan-loss-before-checkpoint", "the same before the first checkpoint", "NonFiniteLossError",
         "training produced a non-finite loss (nan) at step 3 (epoch 1). … The last good state (step 0) is kept in "
         "the model and guide (no checkpoint had been written yet); nothing with NaN parameters was saved. Start "
         "again with a lower learning rate, or train with on_nonfinite='rollback' to roll back and lower the "
         "learning rate automatically.", _nan_before_checkpoint),
    Case("nonfinite-parameters", "NaN/inf parameters after a finite loss (infinite gradient)", "NonFiniteLossError",
         "training produced non-finite parameters at step 8 (epoch 1). … The last good state (step 4) is kept in "
         "…/checkpoint.pt; …", _inf_gradient),
    Case("rollback-gives-up", "a NaN/inf loss with `on_nonfinite=\"rollback\"`, more than `max_rollbacks` times",
         "NonFiniteLossError", "training produced a non-finite loss (nan) at step 5 (epoch 1). … 2 rollbacks with "
         "lower learning rates did not help.", _rollback_gives_up),
]
