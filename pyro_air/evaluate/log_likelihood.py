"""Log-likelihood estimates per datapoint.

- ``log_likelihood``: the IWAE-S estimate  log (1/S) sum_s p(x, z_s) / q(z_s | x),  z_s ~ q(z|x)
  (Burda et al. 2016; AIR paper Eq. 20 / Appendix C Eq. 40). It is a stochastic lower bound of
  log p(x) that tightens as S grows; with the exact posterior as guide it is exact.
- ``elbo``: the amortized ELBO  (1/S) sum_s log p(x, z_s) / q(z_s | x)  (AIR Eq. 5).

Both return Tensor[N], computed in chunks of datapoints and of samples so that memory does not
grow with ``num_samples``; both work for any model/guide pair that ``pyro.infer.Trace_ELBO`` accepts,
PyroModules or plain Pyro functions (the log-weight primitive needs no parameters; a function's
batches stay on x's device). ``x`` is the model's data: a Tensor [N, ...] or a tuple of tensors
whose first dim is the datapoint (the model's positional arguments, e.g. ``(images, labels)`` or
``(sequences, masks)``), sliced into batches along that dim; ``model_kwargs`` go to every call
unchanged. The data plate and the local sites are read from the traces
(``pyro_air.infer.structure``; ``data_plate=`` names the plate). No gradients are taken, so
discrete local latents are accepted.

Global latent sites (outside the data plate) are drawn once per batch of datapoints and shared by
every sample of that batch (each chunk replays them); each datapoint's value is its local estimate
given that draw plus a 1/N share of the globals' term log p(theta) - log q(theta). Their sum over
the N datapoints is an unbiased estimate of the bound of ``pyro_air.infer.log_weights`` with the
whole evaluation set as the data (per datapoint, they are shares of that bound, not log p(x_n)).

Chunks. ``chunk_size`` given: that many samples per datapoint are drawn and scored at once. By
default the samples are drawn in units of ``default_chunk_size`` (fixed: the draws, and so the
estimates, depend on it) and, on the direct path, scored several units at once, as many as
``pyro_air.backend.onednn.chunk_elements`` allows; that choice moves the estimates at float rounding
only.

Reproducible and distributed evaluation. With ``seed=s`` the samples for datapoint batch i (rows
[i * batch_size, (i+1) * batch_size)) come from a stream seeded by ``derive_seed(s, i)``, the
caller's RNG left untouched; without it (default) they come from the caller's stream as before.
With ``distributed=True`` (inside an initialized ``torch.distributed`` group) rank r scores a
contiguous share of the batches and every rank returns the whole Tensor[N], gathered in dataset
order. Distributed evaluation is always seeded (``seed`` defaults to 0 there), so it returns the
same per-datapoint values as a single process called with the same ``seed`` and ``batch_size``.

Resumable evaluation. With ``resume_file=PATH`` (and ``seed``) every finished batch is kept in PATH
and a call cut short and made again skips them, returning the uninterrupted values
(``pyro_air.evaluate.resume``). The file is deleted when the call returns, unless ``keep_resume_file``:
then a repeated call returns the kept values without drawing (for callers that make several calls
and clean up once all have returned).
"""
from __future__ import annotations

import torch

from pyro_air.support import parallel as dist_utils
from pyro_air.support.progress import current_job, tqdm
from pyro_air.core.seeds import derive_seed, seeded
from pyro_air.core.validation import check_positive_int
from pyro_air.evaluate.chunking import (
    as_data,
    batches,
    row_size,
    slice_data,
    default_chunk_size,
    evaluation_mode,
    module_device,
    streaming_logmeanexp,
    units_per_chunk,
)
from pyro_air.evaluate.resume import PartialEvaluation, fingerprint
from pyro_air.infer.direct import can_compute_directly, direct_log_weight_chunks
from pyro_air.infer.log_weights import extend_model, global_sites_trace, log_importance_weights
from pyro_air.infer.structure import declared_structure, model_structure


def _log_weight_chunks(model, guide, xb, num_samples, chunk_size, units=1, traced=None):
    if traced is None and can_compute_directly(model, guide):  # the traced path's log weights without traces
        yield from direct_log_weight_chunks(model, guide, xb[0], num_samples, chunk_size, units)
        return
    traced = traced or TracedEvaluation(model, guide, xb, {}, None)
    yield from traced.chunks(xb, num_samples, chunk_size)


class TracedEvaluation:
    """The traced path of the evaluators for one (model, guide) and one evaluation: the structure
    found once, the particles vectorized when the pair broadcasts (else one run per sample), global
    sites drawn once per batch and replayed in every chunk (module docstring)."""

    def __init__(self, model, guide, first_batch, model_kwargs, data_plate, num_data=None, refuse_globals=None):
        self.model, self.guide, self.kwargs = model, guide, dict(model_kwargs or {})
        self.structure = model_structure(extend_model(model, guide), guide, tuple(first_batch), self.kwargs,
                                         data_plate, declared_by=(model, guide))
        self.vectorize = True if declared_structure(model, guide) is not None and data_plate is None else None
        self.num_data = num_data
        self.refuse_globals = refuse_globals

    def weights(self, xb, k, replay_globals=None):
        w = log_importance_weights(self.model, self.guide, *xb, num_particles=k, require_reparam=False,
                                   globals_per_particle=False, structure=self.structure, vectorize=self.vectorize,
                                   replay_globals=replay_globals, **self.kwargs)
        if self.vectorize is None:
            self.vectorize = w.layout.particle_plate is not None
        return w

    def chunks(self, xb, num_samples, chunk_size):
        """[k, B] log-weight chunks; with global latents, plus each datapoint's 1/N share of G."""
        replay = None
        for start in range(0, num_samples, chunk_size):
            w = self.weights(xb, min(chunk_size, num_samples - start), replay)
            if w.global_term is None:
                yield w.log_w
                continue
            if self.refuse_globals:
                names = [s["name"] for s in global_sites_trace(w).nodes.values()]
                raise ValueError(f"site(s) {', '.join(map(repr, names))} lie outside the data plate "
                                 f"{self.structure.data_plate!r}: {self.refuse_globals}; use log_likelihood")
            if replay is None:
                replay = global_sites_trace(w)
            yield w.log_w + w.global_term.reshape(1, 1) / self.num_data


def _check_inputs_once(x, model, guide):
    """The per-call input checks are off inside ``evaluation_mode``; run them once on all of x."""
    for module in (model, guide):
        if getattr(module, "validate_inputs", False):
            module.validate(x[0])


def per_datapoint(model, guide, x, num_samples, chunk_size, batch_size, reduce, progress, desc,
                   seed=None, distributed=False, model_kwargs=None, data_plate=None, refuse_globals=None,
                   resume_file=None, keep_resume_file=False):
    """Tensor[N]: ``reduce`` applied to the [k, B] log-weight chunks of each batch of datapoints
    (``log_likelihood`` reduces by a streaming log-mean-exp, ``elbo`` by a mean); the evaluators
    of this package share it. Inputs are checked once; x, seed, distributed and resume_file: module
    docstring."""
    check_positive_int(num_samples, "num_samples")
    data = as_data(x)
    n, width = len(data[0]), row_size(data)
    device = module_device(model, default=data[0].device)  # a plain-function model: where x is
    batch_size = batch_size or min(n, 100)
    chunk = chunk_size or default_chunk_size(num_samples, batch_size, width)
    check_positive_int(chunk, "chunk_size")
    # a chunk_size given is what the caller's memory allows: drawn and scored at that size
    units = 1 if chunk_size else units_per_chunk(chunk, num_samples, batch_size, width, device)
    _check_inputs_once(data, model, guide)
    direct = (len(data) == 1 and data[0].dim() == 2 and not model_kwargs and data_plate is None
              and can_compute_directly(model, guide))
    indexed = list(enumerate(batches(n, batch_size)))
    resume, finished = None, {}
    if resume_file is not None:
        if seed is None or distributed:
            raise ValueError("resume_file needs a seeded, single-process evaluation: pass seed=<int> "
                             "and distributed=False")
        resume = PartialEvaluation(resume_file, fingerprint(model, guide, data, desc, batch_size, chunk, seed))
        finished = resume.load()
    if distributed:
        dist_utils.require_initialized("distributed evaluation")
        seed = 0 if seed is None else seed
        indexed = dist_utils.shard(indexed, dist_utils.rank(), dist_utils.world_size())
        progress = progress and dist_utils.is_main_process()
    parts = []
    with evaluation_mode(model, guide):
        traced = None
        if not direct and indexed:
            first = slice_data(data, *indexed[0][1], device)
            with torch.random.fork_rng(devices=[]):
                traced = TracedEvaluation(model, guide, first, model_kwargs, data_plate, num_data=n,
                                          refuse_globals=refuse_globals)
        job = current_job() if progress and not distributed else None   # a command's one bar, if any
        try:
            for i, (start, stop) in tqdm(indexed, desc=desc, disable=not progress or job is not None, leave=False):
                if i in finished:  # a previous call's batch, drawn from the same stream
                    parts.append(finished[i])
                else:
                    xb = slice_data(data, start, stop, device)
                    with seeded(None if seed is None else derive_seed(seed, i), device):
                        parts.append(reduce(_log_weight_chunks(model, guide, xb, num_samples, chunk, units,
                                                               traced)).cpu())
                    if resume is not None:
                        resume.add(finished, i, parts[-1])
                if job is not None:
                    job.advance((stop - start) * num_samples)
        except BaseException:
            if resume is not None:
                resume.save(finished)  # Ctrl-C or an error: what is finished stays finished
            raise
    out = torch.cat(parts) if parts else torch.empty(0)
    if resume is not None:
        resume.save(finished) if keep_resume_file else resume.finish()
    return dist_utils.gather_in_order(out) if distributed else out


def log_likelihood(model, guide, x, num_samples: int = 5000, chunk_size: int | None = None,
                   batch_size: int | None = None, progress: bool = False, seed: int | None = None,
                   distributed: bool = False, model_kwargs: dict | None = None,
                   data_plate: str | None = None, resume_file=None,
                   keep_resume_file: bool = False) -> torch.Tensor:
    """IWAE-``num_samples`` estimate of log p(x) per datapoint, Tensor[N] (x, seed, distributed,
    global latents, resume_file: module docstring)."""
    return per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          streaming_logmeanexp, progress, f"log p(x), S={num_samples}", seed, distributed,
                          model_kwargs, data_plate, resume_file=resume_file, keep_resume_file=keep_resume_file)


def _mean_of_chunks(chunks) -> torch.Tensor:
    total, count = None, 0
    for c in chunks:
        s = c.sum(0)
        total = s if total is None else total + s
        count += c.shape[0]
    return total / count


def elbo(model, guide, x, num_samples: int = 1, chunk_size: int | None = None,
         batch_size: int | None = None, progress: bool = False, seed: int | None = None,
         distributed: bool = False, model_kwargs: dict | None = None, data_plate: str | None = None,
         resume_file=None, keep_resume_file: bool = False) -> torch.Tensor:
    """Monte Carlo ELBO per datapoint with ``num_samples`` draws, Tensor[N] (x, seed, distributed,
    global latents, resume_file: module docstring)."""
    return per_datapoint(model, guide, x, num_samples, chunk_size, batch_size,
                          _mean_of_chunks, progress, f"ELBO, S={num_samples}", seed, distributed,
                          model_kwargs, data_plate, resume_file=resume_file, keep_resume_file=keep_resume_file)
