"""Lagging-inference-network training (He, Spokoyny, Neubig & Berg-Kirkpatrick, ICLR 2019).

Early in training the encoder lags behind the true posterior of the current decoder, and the model
collapses towards the prior. He et al. (Algorithm 1) make the encoder catch up before each decoder
update, while an "aggressive" phase lasts:

    repeat for each minibatch x_B:
        if aggressive:
            repeat (at most ``max_inner_steps``):   phi <- phi - lr grad_phi loss(x_B')   on fresh minibatches x_B'
            until the summed loss of the last ``inner_window`` inner steps no longer decreases
            theta <- theta - lr grad_theta loss(x_B)                     (the decoder step, phi fixed)
        else:
            (theta, phi) <- (theta, phi) - lr grad loss(x_B)             (the ordinary joint step)
    after each epoch, while aggressive: aggressive <- I_q(x; z) on validation data > its previous value

with I_q(x; z) = E_x KL(q(z | x) || q(z)) the encoder's mutual information
(``pyro_air.evaluate.mutual_information``): the aggressive phase stops once the mutual information
stops climbing. ``loss`` is any objective's ``differentiable_loss``; the optimizer is the one
``pyro_air.train.fit`` uses (one Adam over model and guide; in the encoder steps only the guide's
parameters receive gradients, in the decoder step only the model's, so Adam moves only those).

``fit_lagging`` runs its own loop with ``fit``'s pieces and rules (the epoch orders of
``pyro_air.core.parallel.epoch_order``, ``make_adam``, the exponential learning-rate decay, early
stopping on the validation IWAE bound, the best parameters restored at the end). With
``aggressive=False`` it performs exactly ``fit``'s computation, so the two give the same
parameters bit for bit (tests/test_lagging.py). What it does not do: checkpoints, resuming,
non-finite rollback, dynamic binarization, data parallelism. A hook in ``fit``'s loop (a per-step
"update" callable replacing the joint step, and an end-of-epoch callback) would let the real loop
run this schedule with all of those; until then this is a standalone loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pyro
import torch

from pyro_air.core.parallel import epoch_order
from pyro_air.core.seeds import derive_seed
from pyro_air.core.validation import check_batch, check_positive_int
from pyro_air.evaluate import log_likelihood, mutual_information
from pyro_air.train import (
    TrainConfig,
    TrainResult,
    make_adam,
    parameters_of,
    resolve_device,
    seed_everything,
)


@dataclass
class LaggingConfig:
    """The aggressive phase of He et al. 2019 (module docstring)."""
    aggressive: bool = True               # False: plain joint training (``fit``'s computation)
    max_inner_steps: int = 100            # encoder steps per decoder step, at most (He et al.: 100)
    inner_window: int = 10                # convergence check: compare sums of this many inner losses
    mi_size: int | None = 500             # validation points for the mutual-information criterion
    max_aggressive_epochs: int | None = None  # an upper bound on the aggressive phase (None: the criterion alone)

    def validate(self) -> None:
        check_positive_int(self.max_inner_steps, "max_inner_steps (encoder steps per decoder step)")
        check_positive_int(self.inner_window, "inner_window")
        if self.mi_size is not None:
            check_positive_int(self.mi_size, "mi_size", minimum=2)
        if self.max_aggressive_epochs is not None:
            check_positive_int(self.max_aggressive_epochs, "max_aggressive_epochs", minimum=0)


def _state(model, guide) -> dict:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "guide": {k: v.detach().clone() for k, v in guide.state_dict().items()}}


def _step_only(optimizer, loss: torch.Tensor, params: list) -> None:
    """An optimizer step that moves only ``params`` (the others keep grad None and are skipped)."""
    optimizer.zero_grad(set_to_none=True)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()


def fit_lagging(model, guide, objective, train_x: torch.Tensor, valid_x: torch.Tensor | None = None,
                config: TrainConfig | None = None, lagging: LaggingConfig | None = None) -> TrainResult:
    """Train with the aggressive encoder schedule of He et al. 2019 (module docstring).

    Each history record adds ``aggressive`` (whether the epoch ran aggressively), ``encoder_steps``
    (inner encoder steps taken) and, while aggressive, ``mutual_information`` on validation data.
    """
    config = config or TrainConfig()
    lagging = lagging or LaggingConfig()
    config.validate()
    lagging.validate()
    if config.dynamic_binarization:
        raise ValueError("fit_lagging supports statically binarized data only; use pyro_air.train.fit for "
                         "dynamic binarization")
    if config.batch_size > len(train_x):
        raise ValueError(f"batch_size={config.batch_size} is larger than the training set ({len(train_x)} points)")
    if lagging.aggressive and valid_x is None:
        raise ValueError("the aggressive phase stops by the mutual information on validation data: pass valid_x")
    device = resolve_device(config.device)
    check_batch(train_x, model.x_dim, "training data")
    model.validate(train_x)
    if valid_x is not None:
        check_batch(valid_x, model.x_dim, "validation data")
        model.validate(valid_x)
        if config.valid_size is not None:
            valid_x = valid_x[: config.valid_size]
        valid_x = valid_x.to(device)

    seed_everything(config.seed)
    model.to(device)
    guide.to(device)
    train_x = train_x.to(device)
    params = parameters_of(model, guide)
    guide_ids = {id(p) for p in guide.parameters()}
    encoder_params = [p for p in params if id(p) in guide_ids]
    decoder_params = [p for p in params if id(p) not in guide_ids]
    optimizer = make_adam(params, config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_final_ratio ** (1.0 / config.epochs))
    n, bs = len(train_x), config.batch_size
    num_batches = n // bs
    inner_batches = torch.Generator().manual_seed(derive_seed(config.seed, 7919))  # the encoder steps' minibatches
    mi_x = None if valid_x is None else valid_x[: lagging.mi_size]

    aggressive = lagging.aggressive and lagging.max_aggressive_epochs != 0
    previous_mi = None
    result = TrainResult()
    best_valid = best_epoch = best_state = None
    bad_evals, step = 0, 0
    model.train()
    guide.train()

    def loss_of(xb):
        return objective.differentiable_loss(model, guide, xb, num_data=n)

    with pyro.validation_enabled(False):
        for epoch in range(config.epochs):
            order = epoch_order(n, config.seed, epoch, device)
            loss_sum = torch.zeros((), device=device)
            encoder_steps = 0
            t0 = time.perf_counter()
            for b in range(num_batches):
                xb = train_x[order[b * bs:(b + 1) * bs]]
                if hasattr(objective, "set_progress"):
                    objective.set_progress(step / (config.epochs * num_batches))
                if aggressive:
                    encoder_steps += _encoder_catch_up(loss_of, optimizer, encoder_params, train_x, bs,
                                                       lagging, inner_batches)
                    loss = loss_of(xb)
                    _step_only(optimizer, loss, decoder_params)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_of(xb)
                    loss.backward()
                    optimizer.step()
                loss_sum += loss.detach()
                step += 1
            seconds = time.perf_counter() - t0
            train_loss = (loss_sum / (num_batches * n)).item()
            scheduler.step()
            record = {"epoch": epoch + 1, "step": step, "train_loss": train_loss,
                      "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": seconds,
                      "aggressive": aggressive, "encoder_steps": encoder_steps}
            if aggressive:
                mi = mutual_information(guide, mi_x)
                record["mutual_information"] = mi
                aggressive = previous_mi is None or mi > previous_mi
                if lagging.max_aggressive_epochs is not None and epoch + 1 >= lagging.max_aggressive_epochs:
                    aggressive = False
                previous_mi = mi
            if valid_x is not None and ((epoch + 1) % config.valid_every == 0 or epoch + 1 == config.epochs):
                valid = log_likelihood(model, guide, valid_x, num_samples=config.valid_num_samples).mean().item()
                record[f"valid_iwae{config.valid_num_samples}"] = valid
                if best_valid is None or valid > best_valid:
                    best_valid, best_epoch, bad_evals = valid, epoch + 1, 0
                    best_state = _state(model, guide)
                else:
                    bad_evals += 1
            result.history.append(record)
            if config.patience is not None and bad_evals >= config.patience:
                result.stopped_early = True
                break
    result.best_epoch, result.best_valid, result.steps = best_epoch, best_valid, step
    if best_state is not None:
        model.load_state_dict(best_state["model"])
        guide.load_state_dict(best_state["guide"])
    return result


def _encoder_catch_up(loss_of, optimizer, encoder_params, train_x, batch_size, lagging, generator) -> int:
    """Encoder-only steps on fresh random minibatches until the windowed loss stops decreasing; the
    number of steps taken."""
    window, previous, current = lagging.inner_window, None, 0.0
    for i in range(lagging.max_inner_steps):
        idx = torch.randint(len(train_x), (batch_size,), generator=generator).to(train_x.device)
        loss = loss_of(train_x[idx])
        _step_only(optimizer, loss, encoder_params)
        current += loss.item()
        if (i + 1) % window == 0:
            if previous is not None and current >= previous:
                return i + 1
            previous, current = current, 0.0
    return lagging.max_inner_steps
