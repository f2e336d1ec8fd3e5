"""Training options: `TrainConfig`, its command-line options and the lagging-encoder schedule.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import torch

from tests.errors.builders import binary, pair, tiny_fit
from tests.errors.table import Case, cli, raised

TITLE = "Training options"


def _valid_size_zero(tmp, mp):
    from pyro_air.train import TrainConfig
    return raised(TrainConfig(valid_size=0).validate)


def _valid_size_zero_cli(tmp, mp):
    return cli("train", "--valid-size", "0", "--run-dir", tmp / "run")


def _threads_zero(tmp, mp):
    from pyro_air.train import TrainConfig
    return raised(TrainConfig(threads=0).validate)


def _unknown_precision(tmp, mp):
    from pyro_air.train import TrainConfig
    return raised(TrainConfig(precision="fp16").validate)


def _compile_not_bool(tmp, mp):
    from pyro_air.train import TrainConfig
    return raised(TrainConfig(compile="yes").validate)


def _malloc_setting(tmp, mp):
    from pyro_air import infer
    from pyro_air.backend import allocator
    from pyro_air.train import TrainConfig, fit
    mp.setattr(allocator, "_state", {})  # a process where nothing has applied the setting yet
    mp.setenv("PYRO_AIR_MALLOC", "fast")
    return raised(fit, *pair(), infer.MonteCarloELBO(), binary(10), config=TrainConfig(batch_size=5, progress=False))


def _compile_distributed(tmp, mp):
    from pyro_air import infer
    from pyro_air.train import TrainConfig, fit
    return raised(fit, *pair(), infer.MonteCarloELBO(), binary(10), config=TrainConfig(compile=True, progress=False),
                  distributed=True)


def _invalid_option(tmp, mp):
    from pyro_air.train import TrainConfig
    return raised(TrainConfig(rollback_lr_factor=1.5).validate)


def _no_cuda(tmp, mp):
    mp.setattr(torch.cuda, "is_available", lambda: False)
    return raised(tiny_fit, device="cuda")


def _lagging_bad_inner_steps(tmp, monkeypatch):
    from pyro_air.train import TrainConfig
    from pyro_air.train.lagging import LaggingConfig, fit_lagging

    model, guide = pair(2)
    from pyro_air import infer

    x = binary(20)
    return raised(fit_lagging, model, guide, infer.build("elbo"), x, x, TrainConfig(epochs=1, batch_size=10, progress=False),
                  LaggingConfig(max_inner_steps=0))


def _lagging_without_validation(tmp, monkeypatch):
    from pyro_air import infer
    from pyro_air.train import TrainConfig
    from pyro_air.train.lagging import fit_lagging

    model, guide = pair(2)
    return raised(fit_lagging, model, guide, infer.build("elbo"), binary(20), None,
                  TrainConfig(epochs=1, batch_size=10, progress=False))


def _lagging_schedule_without_validation(tmp, monkeypatch):
    from pyro_air import infer
    from pyro_air.train import TrainConfig, fit
    from pyro_air.train.lagging import LaggingConfig, LaggingSchedule

    model, guide = pair(2)
    return raised(fit, model, guide, infer.build("elbo"), binary(20), None,
                  TrainConfig(epochs=1, batch_size=10, progress=False), schedule=LaggingSchedule(LaggingConfig(), 0))


CASES = [
    Case("training-option", "invalid training option (`epochs < 1`, `lr <= 0`, non-integer `batch_size`, unknown "
         "`on_nonfinite`, `rollback_lr_factor` outside (0, 1), `checkpoint_every_steps < 1`)", "ValueError",
         "rollback_lr_factor must lie in (0, 1) (it lowers the learning rate), got 1.5", _invalid_option),
    Case("threads-zero", "`threads=0` (`--threads 0`)", "ValueError",
         "threads must be an integer >= 1 (CPU threads for torch's kernels), got 0; omit it (--threads) for the "
         "default, … on this machine", _threads_zero),
    Case("unknown-precision", "`precision` other than float32 or bf16", "ValueError",
         "precision must be one of float32, bf16, got 'fp16'", _unknown_precision),
    Case("compile-not-bool", "`compile` other than True or False", "ValueError",
         "compile must be True or False, got 'yes'", _compile_not_bool),
    Case("compile-distributed", "`compile=True` with `distributed=True`", "ValueError",
         "compile=True (--compile) runs single-process only; drop it for distributed=True (--distributed)",
         _compile_distributed),
    Case("malloc-setting", "`PYRO_AIR_MALLOC` other than keep or system", "ValueError",
         "PYRO_AIR_MALLOC='fast' is not one of ('keep', 'system'): use 'keep' (pyro-air keeps freed memory for reuse, "
         "the default) or 'system' (the C library's own malloc thresholds)", _malloc_setting),
    Case("valid-size-zero", "`valid_size=0`", "ValueError",
         "valid_size must be an integer >= 1 (the first valid_size validation images), got 0; omit it "
         "(--valid-size) to use the whole validation split", _valid_size_zero),
    Case("valid-size-zero-cli", "`pyro-air train --valid-size 0`", "exit 2",
         "pyro-air: error: valid_size must be an integer >= 1 (the first valid_size validation images), got 0; omit "
         "it (--valid-size) to use the whole validation split", _valid_size_zero_cli),
    Case("cuda-unavailable", "`device=\"cuda\"` where CUDA is not available", "RuntimeError",
         "device='cuda' was asked for but CUDA is not available on this machine; use device='cpu' or run on a "
         "machine with an NVIDIA GPU", _no_cuda),
    Case("lagging-bad-inner-steps", "lagging-encoder training with `max_inner_steps < 1`", "ValueError",
         "max_inner_steps (encoder steps per decoder step) must be an integer >= 1, got 0", _lagging_bad_inner_steps),
    Case("lagging-without-validation", "lagging-encoder training without validation data", "ValueError",
         "the aggressive phase stops by the mutual information on validation data: pass valid_x",
         _lagging_without_validation),
    Case("lagging-schedule-without-validation", "`fit(..., schedule=LaggingSchedule(...))` without validation data",
         "ValueError", "the aggressive phase stops by the mutual information on validation data: pass valid_x",
         _lagging_schedule_without_validation),
]
