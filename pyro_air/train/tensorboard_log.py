"""TensorBoard logging of a run, beside ``metrics.jsonl`` (``TrainConfig(tensorboard=True)``,
``pyro-air train --tensorboard``).

After every epoch the record that goes to ``metrics.jsonl`` also goes to
``RUN_DIR/tensorboard/`` through ``torch.utils.tensorboard.SummaryWriter``: every number in it
except ``epoch`` and ``step`` (``train_loss``, ``valid_iwaeK``, ``lr``, ``epoch_seconds``, and what a
step schedule adds) becomes a scalar of that name, at global step = the epoch (1, 2, ...). View
with ``tensorboard --logdir RUN_DIR/tensorboard`` (or ``--logdir runs`` for several runs).

It reads the record only: no random draw, no change to the parameters, so a run logs the same
numbers with and without it. A resume opens the writer with ``purge_step`` = the next epoch, so
epochs logged after the checkpoint by the interrupted run are dropped, as they are from
``metrics.jsonl``. TensorBoard is optional (``pip install tensorboard``); without it
``TrainConfig.validate`` fails before anything is written (``pyro_air.support.extras``).
"""
from __future__ import annotations

import math
from pathlib import Path

from pyro_air.support.extras import TENSORBOARD_INSTALL, require
from pyro_air.train.run_dir import RunDirError

TENSORBOARD_DIR = "tensorboard"
NOT_SCALARS = ("epoch", "step")


def check_available() -> None:
    """Raise ``MissingExtraError`` (with the install command) unless the tensorboard package is installed."""
    require("tensorboard", "TensorBoard logging (--tensorboard, TrainConfig(tensorboard=True))", TENSORBOARD_INSTALL)


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter`` (imported only when a run logs; tests replace it)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def check_log_dir(run_path: Path) -> Path:
    """``run_path / "tensorboard"``, refused in one line if it is a symbolic link or not a directory (the event
    files would go elsewhere, or the writer would fail with its own text)."""
    path = Path(run_path) / TENSORBOARD_DIR
    if path.is_symlink():
        raise RunDirError(f"{path} is a symbolic link (to {path.resolve()}); pyro-air writes TensorBoard's event "
                          "files only inside the run directory: remove the link (its target is not touched)")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file, not a directory; TensorBoard's event files go there: move the file "
                          "away, or train without --tensorboard")
    return path


def open_writer(run_path: Path, purge_step: int | None = None):
    """A SummaryWriter writing under ``run_path / "tensorboard"``."""
    check_available()
    log_dir = check_log_dir(run_path)
    return summary_writer_class()(log_dir=str(log_dir), purge_step=purge_step)


def scalars_of(record: dict) -> dict:
    """The numbers of a metrics record that are logged as scalars (module docstring)."""
    return {k: float(v) for k, v in record.items()
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))}


def log_epoch(writer, record: dict) -> None:
    """Write one epoch's record as scalars at global step = its epoch, and flush."""
    for name, value in scalars_of(record).items():
        writer.add_scalar(name, value, global_step=int(record["epoch"]))
    writer.flush()
