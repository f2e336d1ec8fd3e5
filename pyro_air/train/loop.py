"""The training loop: amortized variational inference by stochastic optimization.

Each step draws a minibatch x_B of the N training points (epoch e visits them in the order of a
permutation drawn from a generator seeded by (seed, e): ``pyro_air.support.parallel.epoch_order``) and
takes an Adam step on
``objective.differentiable_loss(model, guide, x_B, num_data=N)`` - an unbiased estimate of the
full-data negative bound (the same loss ``pyro.infer.SVI`` minimizes; ``test_train`` checks that
both give identical numbers). One torch optimizer holds every parameter of model and guide, and
Pyro's validation is off in the hot loop (inputs are checked once, up front).

Learning rate: exponential decay lr_e = lr * lr_final_ratio^(e / epochs) per epoch (AIR Appendix
E decays the initial rate exponentially over training). Early stopping: every ``valid_every``
epochs the validation IWAE-k bound is computed; the best parameters are kept and restored at the
end; training stops after ``patience`` evaluations without improvement.

Checkpoints resume exactly, also mid-epoch (``checkpoint_every_steps``): a checkpoint holds model,
guide, optimizer, scheduler, every RNG state (torch, numpy, python, CUDA, and the generator of
dynamic binarization), the epoch's data order and the position in it, the partial loss sum and the
early-stopping state, so an interrupted and resumed run ends with bit-identical parameters (on
CPU) to an uninterrupted one. Resuming refuses a checkpoint written for another spec or training
configuration (``RESUME_MAY_CHANGE`` lists the options a resume may change: those that do not change
the result, and ``lr`` / ``device``, which change it from the resume point on).

Non-finite loss: see ``pyro_air.train.nonfinite`` (how it is detected without a host sync per step on
CUDA). ``on_nonfinite="stop"`` (default) raises ``NonFiniteLossError`` naming the step and the
likely causes, with the model and guide reset to the last good state and the last good checkpoint
untouched; ``"rollback"`` restores the last good state, lowers the learning rate by another factor
``rollback_lr_factor`` each time (cumulatively: two rollbacks before the next checkpoint give
factor^2), reseeds the sampling streams from the ``rollback`` stream so the retried steps draw
fresh latent samples (retrying the very draws that failed could fail again), and continues, at
most ``max_rollbacks`` times. A checkpoint is written only after the losses since the last check
and all parameters were found finite.

Reproducibility: ``fit`` seeds the training stream (``pyro_air.core.seeds``) before its first draw, but
the model and guide exist before ``fit`` is called, so their initial weights are the caller's: build
them with ``build_run(spec, seed=s)`` (or call ``pyro_air.core.seeds.seed_all`` first). Validation draws
come from their own stream per epoch, so how often the run validates does not change its training
draws. The run directory (``pyro_air.train.run_dir``) is locked while ``fit`` writes it and must not hold
another run unless ``resume=True``; SIGINT / SIGTERM (``pyro_air.train.signals``) finish the current step,
write a checkpoint and raise ``TrainingInterrupted``.

Data parallelism: ``fit(..., distributed=True)`` inside a ``torch.distributed`` process group runs
``pyro_air.train.distributed.DistributedTrainer``, this loop with DDP gradient averaging, each rank
on its slice of every global batch, and only rank 0 writing files (see ``pyro_air.support.parallel``).
"""
from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyro
import torch

from pyro_air.backend.openmp import denormals_flushed
from pyro_air.backend.precision import autocast
from pyro_air.backend.threads import num_threads
from pyro_air.support.parallel import epoch_order
from pyro_air.support.progress import current_job, tqdm
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.data.binarize import binarize_dynamic
from pyro_air.evaluate.log_likelihood import log_likelihood
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.train import run_dir as run_dirs
from pyro_air.train import tensorboard_log
from pyro_air.train.compiled import compiled_loss
from pyro_air.train.config import TrainResult
from pyro_air.train.nonfinite import (
    LossWindow,
    NonFiniteLossError,
    default_check_every,
    nonfinite_message,
    parameters_finite,
)
from pyro_air.train.optim import make_adam, parameters_of
from pyro_air.train.schedule import StepSchedule
from pyro_air.train.signals import StopRequests, TrainingInterrupted


def _state(model, guide) -> dict:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "guide": {k: v.detach().clone() for k, v in guide.state_dict().items()}}


def _clone(tree):
    """A deep copy in which every tensor is a fresh copy (state dicts share storage with the live run)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree


@dataclass
class LoopState:
    """Where the loop is: everything besides modules, optimizer, scheduler and RNGs that a resume needs."""
    epoch: int = 0                       # epochs completed
    batch: int = 0                       # batches of the current epoch completed
    step: int = 0                        # optimizer steps completed
    order: torch.Tensor | None = None    # the current epoch's data order (None between epochs)
    loss_sum: torch.Tensor | None = None  # sum of the current epoch's step losses so far
    bad_evals: int = 0
    best_valid: float | None = None
    best_epoch: int | None = None
    best_state: dict | None = None
    history: list = field(default_factory=list)
    lr_scale: float = 1.0                # product of the rollback factors applied so far
    stopped: bool = False                # early stopping fired


class Trainer:
    """The state of one run and the steps that change it (used by ``fit``).

    The methods under "hooks" are what ``DistributedTrainer`` overrides for data parallelism.
    """

    world_size = 1     # processes training together
    is_writer = True   # this process writes metrics, checkpoints and progress bars

    def __init__(self, model, guide, objective, train_x, valid_eval_x, config, device, run_path, spec,
                 schedule: StepSchedule | None = None):
        self.model, self.guide, self.objective = model, guide, objective
        self.train_x, self.valid_eval_x, self.config, self.device = train_x, valid_eval_x, config, device
        self.run_path, self.spec = run_path, spec
        self.params = parameters_of(model, guide)
        self.optimizer = make_adam(self.params, config.lr)
        gamma = config.lr_final_ratio ** (1.0 / config.epochs)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=gamma)
        self.binarize_rng = (torch.Generator(device).manual_seed(stream_seed(config.seed, "binarize_train"))
                             if config.dynamic_binarization else None)
        self.n = len(train_x)
        self.num_batches = self.n // config.batch_size  # drop the ragged last batch: every step has one shape
        self.schedule = schedule if schedule is not None else StepSchedule()
        self.window = LossWindow(config.nonfinite_check_every or default_check_every(device), device)
        self.loop = LoopState()
        self.last_good: dict | None = None
        self.checkpoint_on_disk = False  # a checkpoint.pt of this run exists (written here, or resumed from)
        self.last_good_on_disk = True    # False while checkpoint_every_epochs keeps a newer last good state in memory only
        self.stop = StopRequests(enabled=False)
        self.tensorboard = None  # the SummaryWriter while train() runs with config.tensorboard (writer only)
        self.result = TrainResult(run_dir=str(run_path) if run_path else None)
        self._loss_fn = compiled_loss(self._eager_loss, device) if config.compile else self._eager_loss

    rank = 0
    handles_signals = True  # SIGINT / SIGTERM stop at the next step with a checkpoint (pyro_air.train.signals)

    def scale_learning_rate(self, factor: float) -> None:
        """Multiply the learning rate, now and for the rest of the schedule, by ``factor``."""
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]

    # -- checkpoint state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        loop = self.loop
        return _clone({
            "format_version": ckpt_io.FORMAT_VERSION, "spec": self.spec or {}, "world_size": self.world_size,
            "train_config": asdict(self.config),
            "model_state": self.model.state_dict(), "guide_state": self.guide.state_dict(),
            "optimizer_state": self.optimizer.state_dict(), "scheduler_state": self.scheduler.state_dict(),
            "epoch": loop.epoch, "step": loop.step,
            "position": {"batch": loop.batch, "order": loop.order, "loss_sum": loop.loss_sum},
            "rng": ckpt_io.rng_state(),
            "binarize_rng": self.binarize_rng.get_state() if self.binarize_rng is not None else None,
            "history": loop.history, "lr_scale": loop.lr_scale,
            "early_stopping": {"best_valid": loop.best_valid, "best_epoch": loop.best_epoch,
                               "bad_evals": loop.bad_evals, "stopped": loop.stopped},
            "best_state": loop.best_state,
            # objectives with a random stream of their own (e.g. AVO's choice of step) save it too
            "objective_state": self.objective.state_dict() if hasattr(self.objective, "state_dict") else None,
            "schedule_state": self.schedule.state_dict(),
        })

    def load_state_dict(self, state: dict) -> None:
        state = _clone(state)  # the optimizer keeps the tensors it is given: never hand it a snapshot's
        if state.get("world_size", 1) != self.world_size:
            raise ckpt_io.CheckpointError(
                f"the checkpoint was written by a run of {state.get('world_size', 1)} processes and this run has "
                f"{self.world_size}; each process's random stream is part of the state, so resume with the same "
                "number of processes (torchrun --nproc_per_node x --nnodes)")
        self.model.load_state_dict(state["model_state"])
        self.guide.load_state_dict(state["guide_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.scheduler.load_state_dict(state["scheduler_state"])
        ckpt_io.set_rng_state(state["rng"])
        if state.get("objective_state") is not None and hasattr(self.objective, "load_state_dict"):
            self.objective.load_state_dict(state["objective_state"])
        if state.get("schedule_state") is not None:
            self.schedule.load_state_dict(state["schedule_state"])
        if self.binarize_rng is not None and state.get("binarize_rng") is not None:
            self.binarize_rng.set_state(state["binarize_rng"])
        pos = state.get("position") or {}  # format 1: always at an epoch boundary
        es = state["early_stopping"]
        order, loss_sum = pos.get("order"), pos.get("loss_sum")
        self.loop = LoopState(
            epoch=state["epoch"], batch=pos.get("batch", 0), step=state["step"],
            order=order.to(self.device) if order is not None else None,
            loss_sum=loss_sum.to(self.device) if loss_sum is not None else None,
            bad_evals=es["bad_evals"], best_valid=es["best_valid"], best_epoch=es["best_epoch"],
            best_state=state.get("best_state"), history=list(state.get("history", [])),
            lr_scale=state.get("lr_scale", 1.0), stopped=bool(es.get("stopped")))

    # -- hooks (overridden by DistributedTrainer) -------------------------------------------------
    @property
    def _writes(self) -> bool:
        return self.run_path is not None and self.is_writer

    def _next_batch(self) -> torch.Tensor:
        """This step's global batch: rows order[tB:(t+1)B] of the training data, binarized if dynamic."""
        loop, bs = self.loop, self.config.batch_size
        # index_select copies whole rows: faster than x[index] (advanced indexing; docs/performance.md)
        xb = self.train_x.index_select(0, loop.order[loop.batch * bs:(loop.batch + 1) * bs])
        if self.binarize_rng is not None:
            xb = binarize_dynamic(xb, self.binarize_rng)
        return xb

    def _loss(self, xb: torch.Tensor) -> torch.Tensor:
        """The step's loss, in float32; with ``precision="bf16"`` its forward pass runs under bf16
        autocast (the backward pass follows the forward's dtypes; validation stays float32)."""
        with autocast(self.config.precision, self.device):
            loss = self._loss_fn(xb)
        return loss.float()

    def _eager_loss(self, xb: torch.Tensor) -> torch.Tensor:
        return self.objective.differentiable_loss(self.model, self.guide, xb, num_data=self.n)

    def _epoch_loss_sum(self) -> torch.Tensor:
        return self.loop.loss_sum

    def _validation_bound(self) -> float:
        """Mean validation IWAE-k bound (k = valid_num_samples), drawn from the epoch's validation stream."""
        return log_likelihood(self.model, self.guide, self.valid_eval_x, num_samples=self.config.valid_num_samples,
                              seed=stream_seed(self.config.seed, "validation", self.loop.epoch)).mean().item()

    def _first_bad_step(self):
        return self.window.first_bad_step()

    def _parameters_finite(self) -> bool:
        return parameters_finite(self.params)

    # -- the loop -------------------------------------------------------------------------------
    def train(self) -> None:
        """Run the remaining epochs: Pyro validation off, denormals flushed to zero
        (``config.flush_denormals``; importance weights from initialization underflow into the slow
        denormal range, ``pyro_air.backend.openmp.denormals_flushed``), ``config.threads`` CPU threads;
        all restored after."""
        self.model.train()
        self.guide.train()
        # num_threads before denormals_flushed: the flush then reaches (and on exit restores) every
        # thread of the team this run uses, however many it adds to the pool
        with pyro.validation_enabled(False), StopRequests(enabled=self.handles_signals) as self.stop, \
                num_threads(self.config.threads), denormals_flushed(self.config.flush_denormals), \
                self._tensorboard_writer():
            while self.loop.epoch < self.config.epochs and not self.loop.stopped:
                if self.stop.requested:
                    self._interrupt()
                self._train_epoch()  # returns early after a rollback; the loop goes on from the restored state

    @contextlib.contextmanager
    def _tensorboard_writer(self):
        """``self.tensorboard``: a SummaryWriter under RUN_DIR/tensorboard while training, if
        ``config.tensorboard`` and this process writes (``pyro_air.train.tensorboard_log``); a resumed
        run purges what an interrupted run logged after its checkpoint."""
        if not (self.config.tensorboard and self._writes):
            yield
            return
        purge = self.loop.epoch + 1 if self.loop.epoch > 0 else None
        with run_dirs.write_guard(self.run_path / tensorboard_log.TENSORBOARD_DIR, "open the TensorBoard log"):
            self.tensorboard = tensorboard_log.open_writer(self.run_path, purge_step=purge)
        try:
            yield
        finally:
            writer, self.tensorboard = self.tensorboard, None
            writer.close()

    def _interrupt(self) -> None:
        """A signal arrived: checkpoint this exact position and stop (pyro_air.train.signals)."""
        if not self._verified_finite():
            return  # rolled back (or raised): the loop comes back here from the restored state
        self._save_checkpoint()
        path = self.run_path / "checkpoint.pt" if self._writes else None
        raise TrainingInterrupted(self.stop.signum, self.loop.epoch + 1, self.loop.step, path)

    def _train_epoch(self) -> None:
        loop, cfg = self.loop, self.config
        if loop.order is None:  # a new epoch (a resumed one keeps its order and partial loss sum)
            loop.order = epoch_order(self.n, cfg.seed, loop.epoch, self.device)
            loop.loss_sum = torch.zeros((), device=self.device)
        t0 = time.perf_counter()
        label = f"{cfg.progress_label}: " if cfg.progress_label else ""
        job = current_job() if cfg.progress and self.is_writer else None  # one bar for the whole command
        if job is not None:
            job.stage(f"{label}epoch {loop.epoch + 1}/{cfg.epochs}")
        bar = tqdm(total=self.num_batches, initial=loop.batch, desc=f"{label}epoch {loop.epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress or not self.is_writer or job is not None, leave=False)
        with bar:
            while loop.batch < self.num_batches:
                if not self._step():
                    return
                bar.update(1)
                if job is not None:
                    job.advance()
                every = cfg.checkpoint_every_steps
                if every and loop.step % every == 0 and loop.batch < self.num_batches:
                    if not self._verified_finite():
                        return
                    self._save_checkpoint()
                if self.stop.requested:
                    self._interrupt()
                    return  # only after a rollback
        self._end_epoch(time.perf_counter() - t0)

    def _step(self) -> bool:
        """One optimizer step on the next minibatch; False if a non-finite loss made it roll back."""
        loop = self.loop
        xb = self._next_batch()
        if hasattr(self.objective, "set_progress"):  # schedules (e.g. KL warm-up) follow training progress
            self.objective.set_progress(loop.step / (self.config.epochs * self.num_batches))
        self.schedule.before_step(self)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(xb)
        self.window.record(loop.step + 1, loss)
        if self.window.full and not self._losses_finite():  # on CPU: before the step can use the bad loss
            return False
        loss.backward()
        self.schedule.before_update(self)
        self.optimizer.step()
        loop.loss_sum += loss.detach()
        loop.batch += 1
        loop.step += 1
        return True

    def _end_epoch(self, seconds: float) -> None:
        loop, cfg = self.loop, self.config
        if not self._verified_finite():  # before anything is recorded or saved
            return
        train_loss = (self._epoch_loss_sum() / (self.num_batches * self.n)).item()  # mean per-datapoint negative bound
        self.scheduler.step()
        record = {"epoch": loop.epoch + 1, "step": loop.step, "train_loss": train_loss,
                  "lr": self.optimizer.param_groups[0]["lr"], "epoch_seconds": seconds}
        record.update(self.schedule.end_epoch(self))
        if self.valid_eval_x is not None and ((loop.epoch + 1) % cfg.valid_every == 0 or loop.epoch + 1 == cfg.epochs):
            valid = self._validation_bound()
            record[f"valid_iwae{cfg.valid_num_samples}"] = valid
            if loop.best_valid is None or valid > loop.best_valid:
                loop.best_valid, loop.best_epoch, loop.bad_evals = valid, loop.epoch + 1, 0
                loop.best_state = _state(self.model, self.guide)
                if self._writes:
                    self._write(self.run_path / "best.pt", "write the best parameters", ckpt_io.atomic_save,
                                _checkpoint(self.model, self.guide, loop.best_state, self.spec, loop.epoch + 1),
                                self.run_path / "best.pt")
            else:
                loop.bad_evals += 1
        loop.history.append(record)
        job = current_job() if cfg.progress and self.is_writer else None
        if job is not None:
            job.show(loss=train_loss, valid=record.get(f"valid_iwae{cfg.valid_num_samples}"))
        loop.epoch += 1
        loop.batch, loop.order, loop.loss_sum = 0, None, None
        loop.stopped = cfg.patience is not None and loop.bad_evals >= cfg.patience
        # checkpoint policy: the last good state is kept every epoch (for rollbacks); the file is
        # written every checkpoint_every_epochs epochs and when training ends
        last = loop.stopped or loop.epoch >= cfg.epochs
        self._save_checkpoint(write=last or loop.epoch % cfg.checkpoint_every_epochs == 0)
        if self._writes:
            self._write(self.run_path / "metrics.jsonl", "append to the metrics", _append_metrics, self.run_path,
                        record)
            if self.tensorboard is not None:
                self._write(self.run_path / tensorboard_log.TENSORBOARD_DIR, "write the TensorBoard scalars",
                            tensorboard_log.log_epoch, self.tensorboard, record)

    # -- non-finite losses ----------------------------------------------------------------------
    def _losses_finite(self) -> bool:
        bad = self._first_bad_step()
        if bad is None:
            return True
        self._on_nonfinite(*bad)
        return False

    def _verified_finite(self) -> bool:
        """Losses since the last check and all parameters finite (needed before any checkpoint)."""
        if not self._losses_finite():
            return False
        if not self._parameters_finite():
            self._on_nonfinite(self.loop.step, None)
            return False
        return True

    def _on_nonfinite(self, step: int, value: float | None) -> None:
        """Roll back to the last good state with a lower learning rate, or stop (raise)."""
        cfg = self.config
        lr = self.optimizer.param_groups[0]["lr"]
        epoch, scale_before = self.loop.epoch, self.loop.lr_scale
        self.load_state_dict(self.last_good)  # never leave the caller with NaN parameters
        if cfg.on_nonfinite == "rollback" and len(self.result.rollbacks) < cfg.max_rollbacks:
            # cumulative: the last good state may predate earlier rollbacks, so scale from its own factor
            scale = scale_before * cfg.rollback_lr_factor
            self.scale_learning_rate(scale / self.loop.lr_scale)
            self.loop.lr_scale = scale
            n = len(self.result.rollbacks) + 1
            # fresh draws for the retried steps (the restored RNG state would repeat the failed ones)
            seed_all(stream_seed(cfg.seed, "rollback", self.loop.step, n, self.rank))
            if self.binarize_rng is not None:
                self.binarize_rng.manual_seed(stream_seed(cfg.seed, "rollback", self.loop.step, n, self.rank, 1))
            event = {"step": step, "restored_step": self.loop.step, "lr": self.optimizer.param_groups[0]["lr"]}
            self.result.rollbacks.append(event)
            warnings.warn(f"non-finite loss at step {step}: rolled back to step {event['restored_step']} and "
                          f"lowered the learning rate to {event['lr']:.3g} (rollback {n} of at most "
                          f"{cfg.max_rollbacks})", RuntimeWarning, stacklevel=2)
            return
        if self.run_path is not None and self.checkpoint_on_disk:
            if not self.last_good_on_disk and self._writes:  # the file is older than the last good state: write it
                self._save_checkpoint()
            where, resumable = f"in {self.run_path / 'checkpoint.pt'}", True
        elif self.run_path is not None:
            where, resumable = "in the model and guide (no checkpoint had been written yet)", False
        else:
            where, resumable = "in the model and guide", False
        message = nonfinite_message(step, value, epoch, lr, self.loop.step, where, resumable=resumable)
        if self.result.rollbacks:
            message += f" {len(self.result.rollbacks)} rollbacks with lower learning rates did not help."
        raise NonFiniteLossError(message)

    def _fault_advice(self) -> str:
        if self.checkpoint_on_disk:
            return (f"The run directory keeps its last complete checkpoint; then continue with: pyro-air train "
                    f"--resume {self.run_path} (or fit(..., resume=True)).")
        return "No checkpoint had been written yet; start the run again."

    def _write(self, path: Path, action: str, write, *args) -> None:
        """``write(*args)``, an OSError (disk full, read-only) turned into a RunDirError with a remedy."""
        with run_dirs.write_guard(path, action, after=self._fault_advice()):
            write(*args)

    # -- saving ---------------------------------------------------------------------------------
    def _save_checkpoint(self, write: bool = True) -> None:
        """Make the current (verified finite) state the last good one, and write it (if ``write``)."""
        self.last_good = self.state_dict()
        self.last_good_on_disk = write
        if write and self._writes:
            self._write(self.run_path / "checkpoint.pt", "write the checkpoint", ckpt_io.atomic_save, self.last_good,
                        self.run_path / "checkpoint.pt")
            self.checkpoint_on_disk = True

    def finish(self) -> TrainResult:
        loop, result = self.loop, self.result
        result.history, result.best_epoch, result.best_valid = loop.history, loop.best_epoch, loop.best_valid
        result.stopped_early, result.steps = loop.stopped, loop.step
        if loop.best_state is not None:  # early-stopping semantics: end with the best validation parameters
            self.model.load_state_dict(loop.best_state["model"])
            self.guide.load_state_dict(loop.best_state["guide"])
        elif self._writes:
            self._write(self.run_path / "best.pt", "write the final parameters", ckpt_io.atomic_save,
                        _checkpoint(self.model, self.guide, _state(self.model, self.guide), self.spec,
                                    self.config.epochs), self.run_path / "best.pt")
        return result


def _checkpoint(model, guide, state, spec, epoch) -> dict:
    return {"format_version": ckpt_io.FORMAT_VERSION, "spec": spec or {}, "epoch": epoch,
            "model_state": state["model"], "guide_state": state["guide"]}


def _append_metrics(run_path: Path, record: dict) -> None:
    run_dirs.append_line(run_path / "metrics.jsonl", json.dumps(record))


def rewrite_metrics(run_path: Path, history: list) -> None:
    """metrics.jsonl holding exactly ``history`` (a resume drops lines of epochs its checkpoint does not hold)."""
    path = run_path / "metrics.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in history)
    if (path.is_file() and path.read_text() == text) or (not text and not path.exists()):
        return  # nothing to change: no write (a resume on a full disk leaves the file as it was)
    with run_dirs.write_guard(path, "rewrite the metrics"):
        run_dirs.atomic_write_text(path, text)
