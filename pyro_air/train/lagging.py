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

``fit_lagging`` is ``pyro_air.train.fit`` with the ``LaggingSchedule`` step hook
(``pyro_air.train.schedule``): the same loop, data order, learning-rate decay, early stopping,
non-finite rollback, checkpoints and exact resume (the schedule's state - the aggressive flag, the
last mutual information, the inner minibatch generator - is part of the checkpoint). With
``aggressive=False`` the hook does nothing, so it is ``fit`` bit for bit (tests/test_lagging.py).
Single-process only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pyro_air.core.seeds import stream_seed
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate import mutual_information
from pyro_air.train.config import TrainConfig, TrainResult
from pyro_air.train.fit import fit
from pyro_air.train.schedule import StepSchedule


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


def encoder_parameters(trainer) -> list:
    """The guide's parameters among the trainer's (the ones the inner steps move)."""
    guide_ids = {id(p) for p in trainer.guide.parameters()}
    return [p for p in trainer.params if id(p) in guide_ids]


def step_only(optimizer, loss: torch.Tensor, params: list) -> None:
    """An optimizer step that moves only ``params`` (the others keep grad None and are skipped)."""
    optimizer.zero_grad(set_to_none=True)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    optimizer.step()


class LaggingSchedule(StepSchedule):
    """The aggressive phase as a step hook of the training loop (module docstring)."""

    def __init__(self, lagging: LaggingConfig, seed: int):
        lagging.validate()
        self.lagging = lagging
        self.aggressive = lagging.aggressive and lagging.max_aggressive_epochs != 0
        self.previous_mi: float | None = None
        self.encoder_steps = 0  # inner steps in the current epoch
        self.epochs_done = 0
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "lagging"))

    def check(self, train_x, valid_x, config) -> None:
        if self.aggressive and valid_x is None:
            raise ValueError("the aggressive phase stops by the mutual information on validation data: pass valid_x")

    def before_step(self, trainer) -> None:
        if self.aggressive:
            self.encoder_steps += self.catch_up(trainer)

    def before_update(self, trainer) -> None:
        if self.aggressive:  # the decoder step: the encoder keeps its parameters
            for p in encoder_parameters(trainer):
                p.grad = None

    def catch_up(self, trainer) -> int:
        """Encoder-only steps on fresh random minibatches until the windowed loss stops decreasing;
        the number of steps taken."""
        lagging, window = self.lagging, self.lagging.inner_window
        params = encoder_parameters(trainer)
        batch_size, x = trainer.config.batch_size, trainer.train_x
        previous, current = None, 0.0
        for i in range(lagging.max_inner_steps):
            idx = torch.randint(len(x), (batch_size,), generator=self.generator).to(x.device)
            loss = trainer.objective.differentiable_loss(trainer.model, trainer.guide, x[idx], num_data=trainer.n)
            step_only(trainer.optimizer, loss, params)
            current += loss.item()
            if (i + 1) % window == 0:
                if previous is not None and current >= previous:
                    return i + 1
                previous, current = current, 0.0
        return lagging.max_inner_steps

    def end_epoch(self, trainer) -> dict:
        record = {"aggressive": self.aggressive, "encoder_steps": self.encoder_steps}
        self.epochs_done += 1
        if self.aggressive:
            mi = mutual_information(trainer.guide, trainer.valid_eval_x[: self.lagging.mi_size])
            record["mutual_information"] = mi
            self.aggressive = self.previous_mi is None or mi > self.previous_mi
            cap = self.lagging.max_aggressive_epochs
            if cap is not None and self.epochs_done >= cap:
                self.aggressive = False
            self.previous_mi = mi
        self.encoder_steps = 0
        return record

    def state_dict(self) -> dict:
        return {"aggressive": self.aggressive, "previous_mi": self.previous_mi, "encoder_steps": self.encoder_steps,
                "epochs_done": self.epochs_done, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.aggressive, self.previous_mi = state["aggressive"], state["previous_mi"]
        self.encoder_steps, self.epochs_done = state["encoder_steps"], state["epochs_done"]
        self.generator.set_state(state["generator"])


def fit_lagging(model, guide, objective, train_x: torch.Tensor, valid_x: torch.Tensor | None = None,
                config: TrainConfig | None = None, lagging: LaggingConfig | None = None, **fit_kwargs) -> TrainResult:
    """``fit`` with the aggressive encoder schedule of He et al. 2019 (module docstring); ``fit_kwargs``
    (run_dir, spec, resume) go to ``fit``.

    Each history record adds ``aggressive`` (whether the epoch ran aggressively), ``encoder_steps``
    (inner encoder steps taken) and, while aggressive, ``mutual_information`` on validation data.
    """
    config = config or TrainConfig()
    lagging = lagging or LaggingConfig()
    return fit(model, guide, objective, train_x, valid_x, config, schedule=LaggingSchedule(lagging, config.seed),
               **fit_kwargs)
