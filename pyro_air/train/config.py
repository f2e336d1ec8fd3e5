"""What a training run is configured by, and what it returns.

``TrainConfig`` holds every option of the loop (``pyro_air.train.loop``), ``TrainResult`` what it
returns (``stopping_summary``: how it ended, in one phrase); ``RESUME_MAY_CHANGE``
lists the options a resumed run may change, in two kinds: those that leave the parameters'
trajectory unchanged, and the two that change it deliberately from the resume point on (``lr``,
``device``). Every other option must match the checkpoint, or the resume is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pyro_air.backend.precision import check_precision
from pyro_air.backend.threads import resolve_threads
from pyro_air.core.validation import check_positive, check_positive_int
from pyro_air.train.tensorboard_log import check_available as check_tensorboard

NONFINITE_MODES = ("stop", "rollback")
# Options that may differ between a checkpoint and the run that resumes it (every other option of
# the spec and the training configuration must match, or the resume is refused). Two kinds:
RESUME_KEEPS_RESULT = tuple(f"train_config.{k}" for k in (  # do not change the parameters' trajectory
    "progress", "progress_label", "checkpoint_every_steps", "checkpoint_every_epochs", "on_nonfinite", "rollback_lr_factor", "max_rollbacks",
    "nonfinite_check_every", "tensorboard")) + ("spec.data.data_dir",)  # (where the same data files are read from)
RESUME_CHANGES_RESULT = (  # change it from the resume point on, deliberately:
    "train_config.lr",      # the advice after a non-finite loss: resume with a lower --lr (scales the schedule)
    "train_config.device",  # move a run between CPU and GPU (same algorithm, other float rounding)
    "train_config.threads",  # e.g. fewer threads on a machine that got busy (same algorithm, other float rounding)
    "train_config.compile",  # the same step compiled or not (other float rounding; compiled kernels draw their own noise)
)
# Not in either list, so a resume refuses to change them: ``precision`` (another algorithm's rounding,
# by far more than float32's) and ``flush_denormals`` (a run resumes bit for bit only with the same
# setting; the switch exists to show that flushing changes no result beyond rounding, not to be
# flipped in the middle of a run).
RESUME_MAY_CHANGE = RESUME_KEEPS_RESULT + RESUME_CHANGES_RESULT


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    lr_final_ratio: float = 0.1
    seed: int = 0
    device: str = "cpu"
    valid_every: int = 1
    valid_num_samples: int = 100
    valid_size: int | None = None
    patience: int | None = None
    dynamic_binarization: bool = False
    progress: bool = True
    progress_label: str = ""                   # shown before "epoch e/E" in the progress bar (e.g. the model)
    checkpoint_every_steps: int | None = None  # also checkpoint mid-epoch every this many steps
    checkpoint_every_epochs: int = 1           # write checkpoint.pt every this many epochs (and after the last)
    on_nonfinite: str = "stop"                 # "stop" | "rollback"
    rollback_lr_factor: float = 0.5            # lr multiplier applied at each rollback
    max_rollbacks: int = 3
    nonfinite_check_every: int | None = None   # steps between finiteness checks; None: 1 on CPU, 50 on CUDA
    flush_denormals: bool = True               # flush denormal floats to zero while training (faster IWAE; CPU)
    threads: int | None = None                 # torch CPU threads while training; None: leave the current setting
    precision: str = "float32"                 # "float32" | "bf16" (autocast of the training step; evaluation float32)
    tensorboard: bool = False                  # also log each epoch's metrics under RUN_DIR/tensorboard (needs tensorboard)
    compile: bool = False                      # torch.compile the step's loss (CUDA: CUDA graphs, "reduce-overhead"); pyro_air.train.compiled

    def validate(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive(self.lr, "lr")
        check_positive(self.lr_final_ratio, "lr_final_ratio")
        check_positive_int(self.valid_every, "valid_every")
        check_positive_int(self.valid_num_samples, "valid_num_samples")
        if self.patience is not None:
            check_positive_int(self.patience, "patience")
        if self.valid_size is not None and (isinstance(self.valid_size, bool) or not isinstance(self.valid_size, int)
                                            or self.valid_size < 1):
            raise ValueError(f"valid_size must be an integer >= 1 (the first valid_size validation images), got "
                             f"{self.valid_size!r}; omit it (--valid-size) to use the whole validation split")
        if self.checkpoint_every_steps is not None:
            check_positive_int(self.checkpoint_every_steps, "checkpoint_every_steps")
        check_positive_int(self.checkpoint_every_epochs, "checkpoint_every_epochs")
        if self.nonfinite_check_every is not None:
            check_positive_int(self.nonfinite_check_every, "nonfinite_check_every")
        if self.on_nonfinite not in NONFINITE_MODES:
            raise ValueError(f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got {self.on_nonfinite!r}")
        if not 0.0 < float(self.rollback_lr_factor) < 1.0:
            raise ValueError(f"rollback_lr_factor must lie in (0, 1) (it lowers the learning rate), "
                             f"got {self.rollback_lr_factor!r}")
        check_positive_int(self.max_rollbacks, "max_rollbacks", minimum=0)
        if self.threads is not None:
            resolve_threads(self.threads)
        resolve_device(self.device)
        check_precision(self.precision, self.device)
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        if self.tensorboard:
            check_tensorboard()  # before anything is written: the error says what to install


@dataclass
class TrainResult:
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_valid: float | None = None
    stopped_early: bool = False
    run_dir: str | None = None
    steps: int = 0
    rollbacks: list = field(default_factory=list)  # one dict per rollback: step, restored_step, lr


def stopping_summary(result: TrainResult, epochs: int, valid_num_samples: int) -> str:
    """How a run ended, in one phrase: early-stopped (only if it was), and where its best validation
    score was, e.g. "best validation IWAE-20 -98.31 at epoch 7 of 10"."""
    value = "n/a" if result.best_valid is None else f"{result.best_valid:.2f}"
    best = (f"best validation IWAE-{valid_num_samples} {value} at epoch {result.best_epoch}"
            if result.best_epoch is not None else "no validation set")
    if result.stopped_early:
        return f"early-stopped at epoch {len(result.history)} of {epochs}, {best}"
    return f"{best} of {epochs}"


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={name!r} was asked for but CUDA is not available on this machine; "
            "use device='cpu' or run on a machine with an NVIDIA GPU"
        )
    return device
