"""Training: the SVI loop as a package (docs/design.md, layout).

- ``config``: ``TrainConfig``, ``TrainResult``, ``stopping_summary``, ``RESUME_MAY_CHANGE``, ``resolve_device``
- ``fit``: ``fit`` (the one place that claims a run directory and loads the checkpoint it resumes) and
  the checks it runs before writing anything (``check_inputs``, ``check_run_dir``)
- ``loop``: ``Trainer``, the state of one run and the steps that change it
- ``distributed``: ``DistributedTrainer``, the loop with DDP gradient averaging
- ``checkpoints``: atomic checkpoints, safe loading, the resume check
- ``nonfinite``: detecting NaN/inf losses without a host sync per step, and the message
- ``run_dir``: one writer per run directory, no clobbering, file-system faults
- ``signals``: SIGINT / SIGTERM end a run cleanly
- ``optim``: one (fused where possible) Adam over model and guide
- ``lagging``: the aggressive-encoder schedule of He et al. 2019
"""
from pyro_air.core.seeds import seed_all as seed_everything
from pyro_air.train.config import (
    NONFINITE_MODES,
    RESUME_MAY_CHANGE,
    TrainConfig,
    TrainResult,
    resolve_device,
    stopping_summary,
)
from pyro_air.train.fit import check_inputs, check_run_dir, fit
from pyro_air.train.loop import LoopState, Trainer
from pyro_air.train.optim import make_adam, parameters_of

__all__ = [
    "NONFINITE_MODES",
    "RESUME_MAY_CHANGE",
    "LoopState",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "check_inputs",
    "check_run_dir",
    "fit",
    "make_adam",
    "parameters_of",
    "resolve_device",
    "seed_everything",
    "stopping_summary",
]
