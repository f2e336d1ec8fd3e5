"""The training loop of ``pyro_air.train``, data-parallel over the ranks of a process group.

What changes against one process (everything else - schedule, checkpoints, rollback - is the
same code in ``pyro_air.train.loop.Trainer``):

- Batches: every rank builds the same global batch of B points (same (seed, epoch) order, same
  dynamic-binarization generator) and keeps its slice of B/W rows (``pyro_air.support.parallel``).
- Gradients: the loss is computed through ``DistributedDataParallel`` wrapped around
  ``ELBOModule(model, guide, objective)`` (what ``pyro.infer.ELBO.__call__`` returns: an ``nn.Module``
  whose forward is ``objective.differentiable_loss``); DDP averages the gradients of every model and guide
  parameter over the W ranks, which gives the gradient of the single-process loss on the global
  batch (the scaling argument is in ``pyro_air.support.parallel``). DDP also broadcasts rank 0's
  initial parameters, so all ranks start equal.
- Random streams: rank r seeds its sampling stream with stream_seed(seed, "training", r), so ranks draw
  independent latent samples. A checkpoint holds every rank's RNG state and partial epoch loss sum
  (``per_rank``); on resume each rank restores its own, so a resumed run continues exactly (with
  the same number of ranks; another number is refused).
- Decisions agree on all ranks: the non-finite check all-gathers (step, value) and every rank acts
  on the earliest bad step; the parameter check is all-reduced; the epoch's training loss is the
  average over ranks; validation is evaluated distributedly (each rank scores a contiguous shard
  of the validation batches, seeded per batch) and gathered in order, so every rank sees the same
  Tensor[N] and takes the same early-stopping decision.
- Signals: SIGINT / SIGTERM keep their default behaviour (the ranks would see them at different
  steps); resume from the last periodic checkpoint (``--checkpoint-every-steps``).
- Files: only rank 0 writes metrics.jsonl, checkpoint.pt and best.pt and shows progress bars;
  ``finish`` ends with a barrier, so no rank returns before rank 0 has written its files.
"""
from __future__ import annotations

import torch
from pyro.infer.elbo import ELBOModule
from torch.nn.parallel import DistributedDataParallel

from pyro_air.support import parallel as dist_utils
from pyro_air.backend.precision import autocast
from pyro_air.core.seeds import seed_all, stream_seed
from pyro_air.evaluate.log_likelihood import log_likelihood
from pyro_air.train import checkpoints as ckpt_io
from pyro_air.train.loop import Trainer
from pyro_air.train.nonfinite import parameters_finite


class DistributedTrainer(Trainer):
    handles_signals = False

    def __init__(self, model, guide, objective, train_x, valid_eval_x, config, device, run_path, spec, schedule=None):
        dist_utils.require_initialized("DistributedTrainer")
        if schedule is not None:
            raise ValueError("a step schedule (e.g. lagging-encoder training) runs single-process only; drop "
                             "distributed=True")
        super().__init__(model, guide, objective, train_x, valid_eval_x, config, device, run_path, spec)
        self.rank, self.world_size = dist_utils.rank(), dist_utils.world_size()
        self.is_writer = self.rank == 0
        self.local_rows = dist_utils.local_batch_slice(config.batch_size, self.rank, self.world_size)
        seed_all(stream_seed(config.seed, "training", self.rank))
        device_ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(ELBOModule(model, guide, objective), device_ids=device_ids)

    # -- checkpoint state: what differs between ranks ---------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["per_rank"] = dist_utils.gather_objects({"rng": state["rng"], "loss_sum": state["position"]["loss_sum"]})
        return state

    def load_state_dict(self, state: dict) -> None:
        per_rank = state.get("per_rank")
        if state.get("world_size", 1) == self.world_size and (per_rank is None or len(per_rank) != self.world_size):
            raise ckpt_io.CheckpointError(
                f"the checkpoint holds no state for each of the {self.world_size} processes; it was not written "
                "by a distributed pyro-air run of this size")
        super().load_state_dict(state)  # checks world_size; restores rank 0's RNG state and loss sum ...
        own = per_rank[self.rank]       # ... which this rank replaces by its own
        ckpt_io.set_rng_state(own["rng"])
        if own["loss_sum"] is not None:
            self.loop.loss_sum = own["loss_sum"].clone().to(self.device)

    # -- hooks ------------------------------------------------------------------------------------
    def _next_batch(self) -> torch.Tensor:
        return super()._next_batch()[self.local_rows]

    def _loss(self, xb: torch.Tensor) -> torch.Tensor:
        with autocast(self.config.precision, self.device):
            loss = self.ddp(xb, self.n)
        return loss.float()

    def _epoch_loss_sum(self) -> torch.Tensor:
        return dist_utils.mean_across(self.loop.loss_sum)

    def _validation_bound(self) -> float:
        cfg = self.config
        return log_likelihood(self.model, self.guide, self.valid_eval_x, num_samples=cfg.valid_num_samples,
                              seed=stream_seed(cfg.seed, "validation", self.loop.epoch),
                              distributed=True).mean().item()

    def _first_bad_step(self):
        return dist_utils.first_bad_across(super()._first_bad_step())

    def _parameters_finite(self) -> bool:
        return dist_utils.all_true(parameters_finite(self.params))

    def finish(self):
        result = super().finish()
        torch.distributed.barrier()
        return result
