"""The training loop: amortized variational inference by stochastic optimization.

Each step draws a minibatch x_B of the N training points and takes an Adam step on
``objective.differentiable_loss(model, guide, x_B, num_data=N)`` - an unbiased estimate of the
full-data negative bound (the same loss ``pyro.infer.SVI`` minimizes; ``test_train`` checks that
both give identical numbers). One torch optimizer holds every parameter of model and guide, and
Pyro's validation is off in the hot loop (inputs are checked once, up front).

Learning rate: exponential decay lr_e = lr * lr_final_ratio^(e / epochs) per epoch (AIR Appendix
E decays the initial rate exponentially over training). Early stopping: every ``valid_every``
epochs the validation IWAE-k bound is computed; the best parameters are kept and restored at the
end; training stops after ``patience`` evaluations without improvement.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from pyro_air import checkpoint as ckpt_io
from pyro_air.data.binarize import binarize_dynamic
from pyro_air.evaluate.log_likelihood import log_likelihood
from pyro_air.validation import check_batch, check_positive, check_positive_int


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

    def validate(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_positive(self.lr, "lr")
        check_positive(self.lr_final_ratio, "lr_final_ratio")
        check_positive_int(self.valid_every, "valid_every")
        check_positive_int(self.valid_num_samples, "valid_num_samples")
        if self.patience is not None:
            check_positive_int(self.patience, "patience")
        resolve_device(self.device)


@dataclass
class TrainResult:
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_valid: float | None = None
    stopped_early: bool = False
    run_dir: str | None = None


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={name!r} was asked for but CUDA is not available on this machine; "
            "use device='cpu' or run on a machine with an NVIDIA GPU"
        )
    return device


def seed_everything(seed: int) -> None:
    pyro.set_rng_seed(seed)  # torch, numpy and python's random


def _check_data(x: torch.Tensor, model, name: str, grey: bool) -> None:
    """Once, up front: shape, dtype, finiteness - and binary values unless grey levels are expected."""
    check_batch(x, model.x_dim, f"{name} data")
    if not grey:
        model.validate(x)


def parameters_of(*modules) -> list:
    seen, params = set(), []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def _state(model, guide) -> dict:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "guide": {k: v.detach().clone() for k, v in guide.state_dict().items()}}


def fit(model, guide, objective, train_x: torch.Tensor, valid_x: torch.Tensor | None = None,
        config: TrainConfig | None = None, run_dir: str | Path | None = None, spec: dict | None = None,
        resume: bool = False) -> TrainResult:
    """Train ``model`` and ``guide`` on ``train_x`` with ``objective``; see the module docstring.

    With ``run_dir`` the loop writes ``metrics.jsonl`` (one JSON line per epoch) and the atomic
    checkpoints ``checkpoint.pt`` (last state, for resuming) and ``best.pt`` (best validation).
    ``spec`` (names and configs of model, guide, objective, data) is stored in the checkpoints so
    ``pyro-air evaluate`` can rebuild the run.
    """
    config = config or TrainConfig()
    config.validate()
    device = resolve_device(config.device)
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
        if config.valid_size is not None:
            valid_x = valid_x[: config.valid_size]

    seed_everything(config.seed)
    model.to(device)
    guide.to(device)
    train_x = train_x.to(device)  # data resident on the device: no per-step host copies
    valid_eval_x = None
    if valid_x is not None:
        valid_eval_x = valid_x.to(device)
        if config.dynamic_binarization:
            valid_eval_x = binarize_dynamic(valid_eval_x, torch.Generator(device).manual_seed(config.seed + 1))

    params = parameters_of(model, guide)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    gamma = config.lr_final_ratio ** (1.0 / config.epochs)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)

    run_path = Path(run_dir) if run_dir is not None else None
    result = TrainResult(run_dir=str(run_path) if run_path else None)
    start_epoch, step, bad_evals = 0, 0, 0
    best_state = None
    if resume:
        if run_path is None:
            raise ValueError("resume=True needs the run_dir to resume from")
        state = ckpt_io.load(run_path / "checkpoint.pt")
        model.load_state_dict(state["model_state"])
        guide.load_state_dict(state["guide_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        start_epoch, step = state["epoch"], state["step"]
        es = state["early_stopping"]
        result.best_valid, result.best_epoch, bad_evals = es["best_valid"], es["best_epoch"], es["bad_evals"]
        result.history = list(state.get("history", []))
        best_state = state.get("best_state")
        ckpt_io.set_rng_state(state["rng"])
        if es.get("stopped"):
            result.stopped_early = True
            start_epoch = config.epochs

    n = len(train_x)
    num_batches = n // config.batch_size  # drop the ragged last batch: every step has the same shape
    model.train()
    guide.train()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, device=device)
        total = torch.zeros((), device=device)
        bar = tqdm(range(num_batches), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False)
        with pyro.validation_enabled(False):
            for b in bar:
                xb = train_x[order[b * config.batch_size:(b + 1) * config.batch_size]]
                if config.dynamic_binarization:
                    xb = binarize_dynamic(xb)
                if hasattr(objective, "set_progress"):  # schedules (e.g. KL warm-up) follow training progress
                    objective.set_progress(step / (config.epochs * num_batches))
                optimizer.zero_grad(set_to_none=True)
                loss = objective.differentiable_loss(model, guide, xb, num_data=n)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                step += 1
        train_loss = (total / (num_batches * n)).item()  # mean per-datapoint negative bound
        if not math.isfinite(train_loss):
            raise FloatingPointError(
                f"non-finite training loss at epoch {epoch + 1} (step {step}); lower the learning rate "
                "or check the data. The last good checkpoint is kept."
            )
        scheduler.step()
        record = {"epoch": epoch + 1, "step": step, "train_loss": train_loss,
                  "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": time.perf_counter() - t0}

        if valid_eval_x is not None and ((epoch + 1) % config.valid_every == 0 or epoch + 1 == config.epochs):
            valid = log_likelihood(model, guide, valid_eval_x, num_samples=config.valid_num_samples).mean().item()
            record[f"valid_iwae{config.valid_num_samples}"] = valid
            if result.best_valid is None or valid > result.best_valid:
                result.best_valid, result.best_epoch, bad_evals = valid, epoch + 1, 0
                best_state = _state(model, guide)
                if run_path is not None:
                    ckpt_io.atomic_save(_checkpoint(model, guide, best_state, spec, epoch + 1), run_path / "best.pt")
            else:
                bad_evals += 1
        result.history.append(record)
        stop = config.patience is not None and bad_evals >= config.patience
        if run_path is not None:
            _append_metrics(run_path, record)
            ckpt_io.atomic_save({
                "format_version": ckpt_io.FORMAT_VERSION, "spec": spec or {},
                "train_config": asdict(config),
                "model_state": model.state_dict(), "guide_state": guide.state_dict(),
                "optimizer_state": optimizer.state_dict(), "scheduler_state": scheduler.state_dict(),
                "epoch": epoch + 1, "step": step, "rng": ckpt_io.rng_state(), "history": result.history,
                "early_stopping": {"best_valid": result.best_valid, "best_epoch": result.best_epoch,
                                   "bad_evals": bad_evals, "stopped": stop},
                "best_state": best_state,
            }, run_path / "checkpoint.pt")
        if stop:
            result.stopped_early = True
            break

    if best_state is not None:  # early-stopping semantics: end with the best validation parameters
        model.load_state_dict(best_state["model"])
        guide.load_state_dict(best_state["guide"])
    elif run_path is not None:
        ckpt_io.atomic_save(_checkpoint(model, guide, _state(model, guide), spec, config.epochs),
                            run_path / "best.pt")
    return result


def _checkpoint(model, guide, state, spec, epoch) -> dict:
    return {"format_version": ckpt_io.FORMAT_VERSION, "spec": spec or {}, "epoch": epoch,
            "model_state": state["model"], "guide_state": state["guide"]}


def _append_metrics(run_path: Path, record: dict) -> None:
    run_path.mkdir(parents=True, exist_ok=True)
    with open(run_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
