"""``fit``: check the inputs, claim the run directory, build the trainer (single-process or
data-parallel), resume it if asked, train, and return the result. The loop itself is
``pyro_air.train.loop``; see its docstring for what a step, an epoch and a checkpoint are.

``fit`` is the one place that claims a run directory, moves an old run aside (``overwrite``),
writes the files a caller keeps beside the run (``run_files``: the command line's
``train_args.json``) and loads and checks the checkpoint it resumes. ``check_run_dir`` runs the
same checks without writing anything, so that a caller (the command line) can fail before it loads
any data; ``check_inputs`` is what ``fit`` checks of the model, the guide and the data.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from pyro_air.backend.allocator import keep_freed_memory
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.core.validation import check_batch, check_compatible
from pyro_air.data.binarize import binarize_dynamic
from pyro_air.support.progress import say
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.train import run_dir as run_dirs
from pyro_air.train.config import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    TrainResult,
    resolve_device,
)
from pyro_air.train.loop import Trainer, rewrite_metrics
from pyro_air.train.schedule import StepSchedule


def _check_data(x: torch.Tensor, model, name: str, grey: bool) -> None:
    """Once, up front: shape, dtype, finiteness - and binary values unless grey levels are expected."""
    check_batch(x, model.x_dim, f"{name} data")
    if not grey:
        model.validate(x)
    elif x.min() < 0 or x.max() > 1:
        raise ValueError(
            f"dynamic binarization draws Bernoulli(x) pixels, so the {name} data must be grey levels in [0, 1], "
            f"but it has values in [{x.min().item():.3g}, {x.max().item():.3g}]; rescale it (e.g. x / 255 for "
            "8-bit images)")


class DataDtypeWarning(UserWarning):
    """Training data were converted to the parameters' dtype (e.g. NumPy's float64 to float32)."""


def _as_parameter_dtype(x: torch.Tensor, model, name: str = "training") -> torch.Tensor:
    """Floating data in the parameters' dtype: float64 (NumPy's default) data trains a float32 model
    after a cast, instead of failing inside a matrix product - with a one-line notice (issue 34), since
    the cast rounds the values and holds a second copy of the data in memory while it is made."""
    params = list(model.parameters())
    dtype = params[0].dtype if params else torch.get_default_dtype()
    if x.dtype == dtype:
        return x
    have, want = str(x.dtype).replace("torch.", ""), str(dtype).replace("torch.", "")
    warnings.warn(f"the {name} data are {have} and the parameters {want}: converted (values rounded to {want}); "
                  f"pass x.to({dtype}) to skip the conversion and this notice", DataDtypeWarning, stacklevel=3)
    return x.to(dtype)


def check_inputs(model, guide, train_x: torch.Tensor, valid_x: torch.Tensor | None, config) -> None:
    """Everything ``fit`` checks before it touches the run directory (the CLI calls it before writing
    ``train_args.json``, so a bad option never changes a run)."""
    config.validate()
    check_compatible(model, guide)
    if len(train_x) == 0:
        raise ValueError("the training set is empty; load a dataset with at least one image")
    if config.batch_size > len(train_x):
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the training set ({len(train_x)} points); "
            "lower batch_size or use more data"
        )
    _check_data(train_x, model, "training", grey=config.dynamic_binarization)
    if valid_x is not None:
        _check_data(valid_x, model, "validation", grey=config.dynamic_binarization)


def resume_state(run_dir, spec: dict | None, config: TrainConfig) -> dict:
    """The checkpoint ``run_dir/checkpoint.pt`` a resume continues from, loaded safely and checked
    against ``spec`` and ``config``: only the options in ``RESUME_MAY_CHANGE`` may differ."""
    path = Path(run_dir) / "checkpoint.pt"
    state = ckpt_io.load(path)
    ckpt_io.check_same_run(state, path, spec, asdict(config), may_change=RESUME_MAY_CHANGE)
    return state


def check_run_dir(run_dir, spec: dict | None = None, config: TrainConfig | None = None, resume: bool = False,
                  overwrite: bool = False, empty: bool = False, what: str = "run",
                  resume_hint: str | None = None) -> int:
    """What ``fit(..., run_dir=run_dir, resume=resume, overwrite=overwrite)`` refuses about its run
    directory, checked without writing anything, so that a caller can fail before it loads any data:
    the path (``run_dir.check_path``); for a resume, the checkpoint, loaded and checked against
    ``spec`` and ``config`` (``resume_state``); for a new run without ``overwrite``, that the directory
    holds no run - with ``empty=True`` that it holds nothing at all (the command line's rule; the
    refusal names the ``what`` and, where the directory holds a run, ``resume_hint``, the way to
    continue it). Returns the number of epochs the resumed checkpoint holds (0 for a new run)."""
    if resume and overwrite:
        raise ValueError("resume=True continues a run and overwrite=True moves it aside: give one of them")
    path = run_dirs.check_path(run_dir)
    if resume:
        return len(resume_state(path, spec, config or TrainConfig()).get("history") or [])
    if not overwrite:
        if empty:
            run_dirs.refuse_non_empty(path, what=what, resume_hint=resume_hint)
        else:
            _refuse_a_run(path)
    return 0


def _refuse_a_run(run_path: Path, run_files=()) -> None:
    """A new run refuses a directory that holds a run (its training files, or the files its caller keeps
    beside it)."""
    if run_dirs.holds_training(run_path) or any((run_path / name).exists() for name in run_files):
        present = ", ".join(n for n in (*run_dirs.TRAINING_FILES, *run_files) if (run_path / n).exists())
        raise run_dirs.RunDirError(
            f"{run_path} already holds a run ({present}); resume it with fit(..., resume=True), move it aside "
            "with pyro_air.train.run_dir.move_aside(run_dir), or train into another run_dir")


def fit(model, guide, objective, train_x: torch.Tensor, valid_x: torch.Tensor | None = None,
        config: TrainConfig | None = None, run_dir: str | Path | None = None, spec: dict | None = None,
        resume: bool = False, distributed: bool = False, schedule: StepSchedule | None = None,
        overwrite: bool = False, run_files: dict | None = None) -> TrainResult:
    """Train ``model`` and ``guide`` on ``train_x`` with ``objective``; see the module docstring.

    With ``run_dir`` the loop writes ``metrics.jsonl`` (one JSON line per epoch) and the atomic
    checkpoints ``checkpoint.pt`` (last good state, for resuming: every epoch and every
    ``checkpoint_every_steps`` steps) and ``best.pt`` (best validation). ``spec`` (names and configs
    of model, guide, objective, data) is stored in the checkpoints so ``pyro-air evaluate`` can
    rebuild the run. ``resume=True`` continues from ``run_dir/checkpoint.pt``. ``distributed=True``:
    data-parallel over the ranks of the process group (joined from torchrun's environment if this
    process has not joined one); call it in every rank with the same arguments.

    Seeding: ``fit`` seeds its own streams from ``config.seed``, but ``model`` and ``guide`` were
    initialized before the call - the caller fixes their initial weights, by building them with
    ``pyro_air.runs.build_run(spec, seed=config.seed)`` or after ``pyro_air.core.seeds.seed_all(seed)``.
    Resuming may change only the options in ``RESUME_MAY_CHANGE``; a changed ``lr`` rescales the
    learning-rate schedule from the resume point on. The run directory must be empty (or hold only
    the CLI's ``train_args.json``) unless ``resume=True``, and is locked while ``fit`` writes it.
    ``overwrite=True`` moves a run the directory holds aside first (``RUN.old-<time>``: nothing is
    deleted; the line "moved the old run to ..." says where). ``run_files`` ({name: text}) are files
    the caller keeps beside the run (the command line's options, ``train_args.json``): written
    atomically under the claim before training (on a resume only where the text changed); a caller
    that keeps such files owns the directory, so a new run then needs it empty.
    Float64 data is cast to the parameters' dtype. ``config.tensorboard`` also logs each epoch's
    metrics under ``run_dir/tensorboard`` (``pyro_air.train.tensorboard_log``).
    """
    config = config or TrainConfig()
    config.validate()
    device = resolve_device(config.device)
    if distributed:
        if config.compile:
            raise ValueError("compile=True (--compile) runs single-process only; drop it for distributed=True "
                             "(--distributed)")
        from pyro_air.support import parallel as dist_utils
        device = dist_utils.setup(config.device)
        dist_utils.check_batch_divisible(config.batch_size, dist_utils.world_size())
    check_inputs(model, guide, train_x, valid_x, config)
    if schedule is not None:
        schedule.check(train_x, valid_x, config)
    keep_freed_memory()  # reuse freed tensor memory (pyro_air.backend.allocator); a bad PYRO_AIR_MALLOC fails here
    train_x = _as_parameter_dtype(train_x, model, "training")
    if valid_x is not None:
        valid_x = _as_parameter_dtype(valid_x, model, "validation")
        if config.valid_size is not None:
            valid_x = valid_x[: config.valid_size]
    run_path = Path(run_dir) if run_dir is not None else None
    if resume and run_path is None:
        raise ValueError("resume=True needs the run_dir to resume from")
    if resume and overwrite:
        raise ValueError("resume=True continues a run and overwrite=True moves it aside: give one of them")
    if (overwrite or run_files) and run_path is None:
        raise ValueError("overwrite and run_files act on a run directory: pass fit(..., run_dir=...)")
    if config.tensorboard and run_path is None:
        raise ValueError("tensorboard=True logs under RUN_DIR/tensorboard: pass fit(..., run_dir=...)")
    writes = run_path is not None and (not distributed or dist_utils.is_main_process())
    if run_path is not None:
        run_dirs.check_path(run_path)
        if resume and not (run_path / "checkpoint.pt").exists():
            ckpt_io.load(run_path)  # raises: no checkpoint to resume from
    if writes and overwrite and not resume:
        moved = run_dirs.move_aside(run_path)
        if moved is not None:
            say(f"moved the old run to {moved}")
    with run_dirs.claim(run_path) if writes else contextlib.nullcontext():
        if writes and not resume:
            if run_files:
                run_dirs.refuse_non_empty(run_path)  # the caller keeps files beside the run: it owns the directory
            else:
                _refuse_a_run(run_path)
        if writes:
            _write_run_files(run_path, run_files or {}, resume)
        return _fit_claimed(model, guide, objective, train_x, valid_x, config, device, run_path, spec, resume, schedule,
                            distributed)


def _write_run_files(run_path: Path, run_files: dict, resume: bool) -> None:
    for name, text in run_files.items():
        path = run_path / name
        if resume and path.is_file() and path.read_text() == text:
            continue  # a resume rewrites only what changed (RESUME_MAY_CHANGE)
        with run_dirs.write_guard(path, "write the run's options"):
            run_dirs.atomic_write_text(path, text)


def _fit_claimed(model, guide, objective, train_x, valid_x, config, device, run_path, spec, resume, schedule,
                 distributed):
    seed_all(stream_seed(config.seed, "training", 0))  # DistributedTrainer: one stream per rank
    model.to(device)
    guide.to(device)
    train_x = train_x.to(device)  # data resident on the device: no per-step host copies
    valid_eval_x = None
    if valid_x is not None:
        valid_eval_x = valid_x.to(device)
        if config.dynamic_binarization:
            gen = torch.Generator(device).manual_seed(stream_seed(config.seed, "binarize_valid"))
            valid_eval_x = binarize_dynamic(valid_eval_x, gen)

    trainer_class = Trainer
    if distributed:
        from pyro_air.train.distributed import DistributedTrainer as trainer_class
    trainer = trainer_class(model, guide, objective, train_x, valid_eval_x, config, device, run_path, spec,
                            schedule=schedule)
    if resume:
        state = resume_state(run_path, spec, config)
        trainer.load_state_dict(state)
        trainer.checkpoint_on_disk = True
        stored_lr = (state.get("train_config") or {}).get("lr", config.lr)
        if stored_lr != config.lr:  # an allowed change (RESUME_MAY_CHANGE): the schedule continues scaled
            trainer.scale_learning_rate(config.lr / stored_lr)
        if trainer.is_writer:
            rewrite_metrics(run_path, trainer.loop.history)  # drop lines of epochs the checkpoint does not hold
    trainer.last_good = trainer.state_dict()
    trainer.train()
    return trainer.finish()
