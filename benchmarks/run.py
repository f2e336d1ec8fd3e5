"""Run the benchmarks in one process and write ``benchmarks/RESULTS.md``.

    python -m benchmarks.run            # full size (3-10 minutes on 2 shared cores, by load)
    python -m benchmarks.run --quick    # a sanity run at a small budget
    python -m benchmarks.run --device cuda

Sections: machine and commit; a cProfile of pyro-air's training step; the per-step framework
overhead on a tiny model; the kernel choices (benchmarks.kernels); training-step ratios (ELBO and
IWAE-8 groups); log-likelihood
evaluation throughput against the GEMM bound and a per-datapoint peer; peak memory as
``num_samples`` grows (fresh subprocess per setting). All comparisons inside a section are
interleaved round-robin (``benchmarks.timing``), so they share the machine's noise.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/run.py`: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import statistics
import subprocess
import time

import pyro
import torch

from benchmarks import evaluation as ev
from benchmarks.timing import interleave, markdown_table, ratio_rows
from benchmarks.training import HandwrittenStep, PyroAirStep, training_cases
from pyro_air import data, guides, infer, models
from pyro_air.evaluate.chunking import DEFAULT_CHUNK_ELEMENTS

ROOT = Path(__file__).resolve().parent.parent
NUM_DATA = 60000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine_summary(device: torch.device) -> list:
    lines = []
    try:
        lscpu = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        keep = ("Model name", "CPU(s):", "Thread(s) per core", "Core(s) per socket", "L2 cache", "L3 cache")
        lines += [" ".join(line.split()) for line in lscpu.splitlines() if line.startswith(keep)]
    except OSError:
        lines.append(platform.processor())
    flags = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    lines.append("AVX-512: " + ("yes" if "avx512f" in flags else "no"))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    lines.append(f"commit: {commit}{' (with uncommitted changes)' if dirty else ''}")
    lines.append(f"python {platform.python_version()}, torch {torch.__version__}, pyro-ppl {pyro.__version__}")
    lines.append(f"torch threads: {torch.get_num_threads()}; device: {device}"
                 + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    lines.append(f"load average at start: {os.getloadavg()[0]:.1f} (1 min)")
    if device.type == "cpu":
        from pyro_air.backend.report import kernel_report
        report = kernel_report()
        tanh = report["tanh"]
        times = tanh.get("times") or {}
        measured = ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in times.items()) if times else "not timed in this run"
        lines.append(f"kernel report (`pyro_air.backend.report.kernel_report()`): CPU {report['cpu']}; flags "
                     f"{', '.join(report['flags']) or 'none of avx2/avx512f/avx512_bf16/amx'}; tanh kernel "
                     f"**{tanh['kernel']}** ({tanh['source']}; {measured}); dense layers without gradients "
                     f"**{report['linear']['kernel']}** ({report['linear']['source']}; "
                     + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in (report['linear'].get('times') or {}).items())
                     + f"); evaluation chunks of **{report['chunk_elements']['elements']:,}** elements "
                     f"({report['chunk_elements']['source']}); bf16 matrix products "
                     f"**{report['bf16']['state']}** ({report['bf16']['source']}; "
                     + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in (report['bf16'].get('times') or {}).items())
                     + f"); denormals can be flushed: {report['denormals_flushed']} "
                     + f"(on {report['denormal_flush_reach']}); allocator: "
                     + ("freed memory kept, " if report["allocator"]["applied"] else "C library defaults, ")
                     + report["allocator"]["reason"])
    return lines


def sync_for(device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def training_batches(device, count=8):
    x = data.load("mnist", "train")[: 100 * count].to(device)
    return list(x.split(100))


def profile_section(batches, steps: int) -> str:
    """Where the time of one pyro-air ELBO step goes (cProfile, internal time)."""
    step = training_cases(1, batches, NUM_DATA, device=batches[0].device)["pyro-air ELBO"]
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    groups = {"torch kernels (C++: matmul, elementwise, autograd backward, Adam)": 0.0,
              "Pyro machinery (poutine handlers, pyro.param, PyroModule)": 0.0,
              "pyro-air Python (log weights, models, guides)": 0.0, "other Python (torch.nn, distributions, optim)": 0.0}
    keys = list(groups)
    rows = []
    for (filename, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        if filename == "~" or filename.startswith("<built-in"):
            groups[keys[0]] += tt
        elif "/pyro/" in filename:
            groups[keys[1]] += tt
        elif "pyro_air" in filename:
            groups[keys[2]] += tt
        else:
            groups[keys[3]] += tt
        rows.append((tt, nc, f"{Path(filename).name}:{line}({func})" if filename != "~" else func, ct))
    rows.sort(reverse=True)
    module_getattr = sum(ct for (f, _, fn), (_, _, _, ct, _) in stats.stats.items()
                         if f.endswith("pyro/nn/module.py") and fn == "__getattr__" and ct > 0)
    out = [f"cProfile of {steps} pyro-air ELBO steps (784-500-500-50, batch 100): total {total:.2f} s.", "",
           markdown_table(["where", "internal time", "share"],
                          [(k, v, v / total) for k, v in groups.items()], ["{}", "{:.3f} s", "{:.1%}"]), "",
           (f"PyroModule attribute access (`pyro/nn/module.py __getattr__`, cumulative, includes the "
           f"`pyro.param` statements it issues): {module_getattr:.3f} s = {module_getattr / total:.1%}."), "",
           "Top 10 functions by internal time:", "",
           markdown_table(["function", "internal", "calls/step"],
                          [(name, tt, nc / steps) for tt, nc, name, ct in rows[:10]], ["`{}`", "{:.3f} s", "{:.0f}"])]
    return "\n".join(out)


def overhead_section(device, rounds: int) -> str:
    """Per-step framework overhead: pyro-air vs hand-written on a tiny model (compute ~ 0), one
    thread (with two, every tiny op pays an OpenMP barrier that dominates on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = models.build("bernoulli-vae", z_dim=2, hidden=(8,)).to(device)
    guide = guides.build("gaussian", z_dim=2, hidden=(8,)).to(device)
    batches = training_batches(device, 2)
    cases = {"pyro-air ELBO (tiny)": PyroAirStep(model, guide, infer.MonteCarloELBO(), batches, NUM_DATA),
             "hand-written ELBO (tiny)": HandwrittenStep(model, guide, 1, "elbo", batches, NUM_DATA)}
    times = interleave(cases, rounds, calls_per_block=20, sync=sync_for(device))
    torch.set_num_threads(threads)
    a, b = (t.median for t in times.values())
    ca, cb = (statistics.median(t.cpu_seconds) for t in times.values())
    return (f"Framework overhead, tiny 784-8-2 model, batch 100, 1 thread (medians of {rounds} interleaved "
            f"rounds of 20 steps): pyro-air step {1e6 * a:.0f} us wall / {1e6 * ca:.0f} us CPU, hand-written "
            f"{1e6 * b:.0f} us wall / {1e6 * cb:.0f} us CPU; overhead {1e6 * (a - b):.0f} us wall, "
            f"{1e6 * (ca - cb):.0f} us CPU per step.")


def kernel_section(device, rounds: int) -> str:
    if device.type != "cpu":
        return "(CPU-only section: on CUDA pyro-air uses torch.tanh, and the other two choices are not timed.)"
    from benchmarks.kernels import kernel_rows
    from benchmarks.training import fresh_pair
    from pyro_air.train import parameters_of
    params = parameters_of(*fresh_pair())
    return markdown_table(["kernel", "shape", "torch default", "pyro-air's choice", "ratio"], kernel_rows(params, rounds),
                          ["{}", "{}", "{:.3f} ms", "{:.3f} ms", "{:.2f}x"])


def training_section(device, rounds: int, block: int, particles: int) -> tuple:
    batches = training_batches(device)
    cases = training_cases(particles, batches, NUM_DATA, device=device)
    baseline = next(name for name in cases if name.startswith("hand-written"))
    times = interleave(cases, rounds, calls_per_block=block, warmup_blocks=2, sync=sync_for(device),
                       progress=lambda r, n: log(f"  round {r}/{n}") if r % 5 == 0 else None)
    rows = ratio_rows(times, baseline)
    table = markdown_table(["case", "median step (wall)", "ratio of medians", "median of paired ratios",
                            "median CPU time", "CPU-time ratio"], rows,
                           ["{}", "{:.1f} ms", "{:.3f}", "{:.3f}", "{:.1f} ms", "{:.3f}"])
    return table, {name: {"median_ms": ms, "ratio": r, "paired_ratio": p, "cpu_ms": c, "cpu_ratio": cr}
                   for name, ms, r, p, c, cr in rows}


class WithThreads:
    """Run ``fn`` with ``threads`` torch threads (restored after)."""

    def __init__(self, fn, threads):
        self.fn, self.threads = fn, threads

    def __call__(self):
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.fn()
        finally:
            torch.set_num_threads(before)


def evaluation_section(device, images, rounds, block, peer_block, num_samples, thread_counts) -> tuple:
    model, guide = ev_pair(device)
    x = images.to(device)
    f_dec = ev.decoder_flops_per_sample(model)
    gemms = {"chunk": ev.DecoderGemms(model, block, num_samples, device)}
    gemms.update({r: ev.DecoderGemms(model, block, num_samples, device, rows=r) for r in (1024, 4096)})
    if torch.device(device).type == "cpu" and ev.onednn_available():  # the bound: the best of both libraries
        gemms["onednn chunk"] = ev.DecoderGemms(model, block, num_samples, device, library="onednn")
        gemms.update({f"onednn {r}": ev.DecoderGemms(model, block, num_samples, device, rows=r, library="onednn")
                      for r in (1024, 4096)})
    cases = {}
    for n in thread_counts:
        cases[f"air@{n}"] = WithThreads(ev.PyroAirEvaluation(model, guide, x, block, num_samples), n)
        cases[f"hand@{n}"] = WithThreads(ev.HandwrittenEvaluation(model, guide, x, block, num_samples), n)
        cases[f"plain@{n}"] = WithThreads(ev.HandwrittenEvaluation(model, guide, x, block, num_samples, True), n)
        for key, gemm in gemms.items():
            cases[f"gemm{key}@{n}"] = WithThreads(gemm, n)
    cases[f"peer@{thread_counts[0]}"] = WithThreads(ev.PerDatapointPeer(model, guide, x, peer_block, num_samples),
                                                    thread_counts[0])
    if ev.pythae_available():
        cases[f"pythae@{thread_counts[0]}"] = WithThreads(ev.PythaeGetNLL(model, guide, x, peer_block, num_samples),
                                                          thread_counts[0])
    with torch.no_grad():
        times = interleave(cases, rounds, warmup_blocks=1, sync=sync_for(device),
                           progress=lambda r, n: log(f"  round {r}/{n}"))
    rows, raw = [], {}
    for n in thread_counts:
        rates = {key: gemm.flops / times[f"gemm{key}@{n}"].median for key, gemm in gemms.items()}
        best_key = max(rates, key=rates.get)
        flops_per_s = rates[best_key]
        bound = flops_per_s / (num_samples * f_dec)
        air_t = times[f"air@{n}"]
        air_ips = block / air_t.median
        best_t = times[f"gemm{best_key}@{n}"]
        work = gemms[best_key].flops / (block * num_samples * f_dec)  # the best GEMM block's work, in blocks
        paired = sorted(g / work / a for a, g in zip(air_t.seconds, best_t.seconds))  # same round
        for key, rate in rates.items():
            library = "oneDNN" if str(key).startswith("onednn") else "torch's product"
            size = str(key).removeprefix("onednn ")
            shape = f"pyro-air's chunk shapes, {gemms[key].rows} rows" if size == "chunk" else f"{size} rows"
            rows.append((f"{n}", f"GEMM (decoder GEMMs only, {library}, {shape})" + (" = bound" if key == best_key else ""),
                         rate / 1e9, rate / (num_samples * f_dec), f"{rate / flops_per_s:.1%}", "-"))
        rows.append((f"{n}", "pyro-air `log_likelihood` (chunked)", float("nan"), air_ips,
                     f"{air_ips / bound:.1%}", f"{paired[len(paired) // 2]:.1%}"))
        hand_ips = block / times[f"hand@{n}"].median
        rows.append((f"{n}", "hand-written chunked IWAE (same math and chunks, no Pyro)", float("nan"), hand_ips,
                     f"{hand_ips / bound:.1%}", "-"))
        plain_ips = block / times[f"plain@{n}"].median
        rows.append((f"{n}", "hand-written, nn.Tanh + BCE-with-logits", float("nan"), plain_ips,
                     f"{plain_ips / bound:.1%}", "-"))
        raw[n] = {"hand_ips": hand_ips, "plain_torch_ips": plain_ips, "gemm_gflops": {str(k): r / 1e9 for k, r in rates.items()},
                  "bound_ips": bound, "pyro_air_ips": air_ips,
                  "fraction": air_ips / bound, "paired_fraction": paired[len(paired) // 2]}
        if n == thread_counts[0]:
            peer_ips = peer_block / times[f"peer@{n}"].median
            rows.append((f"{n}", "per-datapoint peer (pythae `get_nll` strategy)", float("nan"), peer_ips,
                         f"{peer_ips / bound:.1%}", "-"))
            raw[n]["peer_ips"] = peer_ips
            if f"pythae@{n}" in times:
                pythae_ips = peer_block / times[f"pythae@{n}"].median
                rows.append((f"{n}", "pythae 0.1.2 `VAE.get_nll` itself (same weights)", float("nan"), pythae_ips,
                             f"{pythae_ips / bound:.1%}", "-"))
                raw[n]["pythae_ips"] = pythae_ips
    table = markdown_table(["threads", "case", "GEMM GFLOP/s", "images / s", "fraction of GEMM bound",
                            "median of paired fractions"], rows,
                           ["{}", "{}", "{:.1f}", "{:.3f}", "{}", "{}"]).replace("| nan |", "| |")
    chunk = gemms["chunk"]
    notes = (f"IWAE-{num_samples}; blocks of {block} images (peer: {peer_block}) taken in order from the first "
             f"{len(images)} binarized MNIST test images (randomly initialized weights: speed does not depend "
             f"on them); {rounds} interleaved rounds. Decoder FLOPs per sample F_dec = {f_dec:,}; pyro-air's "
             f"chunk: {chunk.chunk} samples x {block} images = {chunk.rows} rows per GEMM, {chunk.num_chunks} "
             f"chunks per block; GEMM bound = the best GEMM FLOP/s of the rows above / ({num_samples} * F_dec) "
             f"images/s.")
    return table, notes, raw


def ev_pair(device):
    from benchmarks.training import fresh_pair
    model, guide = fresh_pair(device=device)
    return model.eval(), guide.eval()


def memory_section(device, settings, images, threads) -> tuple:
    rows, raw = [], []
    for num_samples, chunk in settings:
        cmd = [sys.executable, "-m", "benchmarks.memory", "--num-samples", str(num_samples), "--images", str(images),
               "--device", str(device), "--threads", str(threads)]
        if chunk is not None:
            cmd += ["--chunk-size", str(chunk)]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        raw.append(result)
        rows.append(("automatic chunking" if chunk is None else f"one chunk of all {chunk} samples (unchunked)",
                     num_samples, result["before_mib"], result["peak_mib"], result["added_mib"]))
        log(f"  memory S={num_samples} chunk={chunk}: +{result['added_mib']:.0f} MiB")
    table = markdown_table(["evaluation", "num_samples", "after setup", "peak", "added by evaluation"], rows,
                           ["{}", "{}", "{:.0f} MiB", "{:.0f} MiB", "{:.0f} MiB"])
    return table, raw


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="pyro-air benchmarks (interleaved; ratios in one run)")
    parser.add_argument("--quick", action="store_true", help="small budget sanity run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available here; run on a GPU machine "
                         "or use --device cpu")
    torch.set_num_threads(args.threads)
    q = args.quick
    cfg = {"profile_steps": 3 if q else 10, "overhead_rounds": 5 if q else 15, "kernel_rounds": 3 if q else 15,
               "train_rounds": 3 if q else 60, "train_block": 1 if q else 4,
               "eval_images": 20 if q else 1000, "eval_samples": 200 if q else 5000, "eval_rounds": 3 if q else 7,
               "eval_block": 5 if q else 10, "peer_block": 1,
               "mem_images": 2 if q else 10,
               "denormal_rounds": 3 if q else 15, "denormal_block": 2,
               "epoch_images": 6000 if q else NUM_DATA, "epoch_rounds": 1 if q else 5,
               "busy_rounds": 1 if q else 2, "busy_steps": 20 if q else 60,
               "allocator_rounds": 2 if q else 7, "allocator_samples": 500 if q else 5000,
               "mem_settings": [(100, None), (500, None), (2000, None), (500, 500), (2000, 2000)] if q else
               [(2000, None), (5000, None), (10000, None), (2000, 2000), (5000, 5000)]}
    t_start = time.perf_counter()
    from pyro_air.backend.allocator import keep_freed_memory
    keep_freed_memory()  # as fit and the evaluations would on first use: every in-process case runs with it
    results = {"config": cfg, "device": str(device), "quick": q}
    machine = machine_summary(device)
    log("machine: " + "; ".join(machine))

    with pyro.validation_enabled(False):
        log("profile")
        batches = training_batches(device)
        profile = profile_section(batches, cfg["profile_steps"])
        log("framework overhead (tiny model)")
        overhead = overhead_section(device, cfg["overhead_rounds"])
        log("kernel choices")
        kernels = kernel_section(device, cfg["kernel_rounds"])
        log("training step, ELBO group")
        elbo_table, results["train_elbo"] = training_section(device, cfg["train_rounds"], cfg["train_block"], 1)
        log("training step, IWAE-8 group")
        iwae_table, results["train_iwae8"] = training_section(device, cfg["train_rounds"], cfg["train_block"], 8)
        log("denormals: IWAE-8 step from initialization, flushed vs not")
        denormal_table, results["denormals"] = denormal_section(device, cfg["denormal_rounds"], cfg["denormal_block"])
        log("the whole epoch: fit vs hand-written")
        epoch_tables, results["epoch"] = epoch_section(device, cfg["epoch_rounds"], cfg["epoch_images"], args.threads)
    busy_table = "(CPU-only section.)"
    if device.type == "cpu":
        log("a busy machine (benchmarks/busy.py)")
        from benchmarks.busy import run as busy_run
        busy_table, results["busy"] = busy_run(cfg["busy_rounds"], cfg["busy_steps"], log=log)
    allocator_table = "(CPU-only section.)"
    if device.type == "cpu":
        log("allocator: freed memory kept vs the C library's defaults (benchmarks/allocator.py)")
        from benchmarks.allocator import run as allocator_run
        allocator_table, results["allocator"] = allocator_run(cfg["allocator_rounds"], cfg["allocator_samples"],
                                                              args.threads, log=log)
    log("evaluation")
    images = data.load("mnist", "test")[: cfg["eval_images"]]
    eval_table, eval_notes, results["evaluation"] = evaluation_section(
        device, images, cfg["eval_rounds"], cfg["eval_block"], cfg["peer_block"], cfg["eval_samples"],
        [args.threads, 1] if args.threads != 1 and device.type == "cpu" else [args.threads])
    log("memory")
    mem_table, results["memory"] = memory_section(device, cfg["mem_settings"], cfg["mem_images"], args.threads)
    elapsed = time.perf_counter() - t_start
    machine.append(f"load average at end: {os.getloadavg()[0]:.1f} (1 min); benchmark wall time {elapsed / 60:.1f} min")

    extra = issue17_sections(denormal_table, epoch_tables, busy_table, allocator_table, cfg)
    report = render(machine, profile, overhead + "\n\n## Kernel choices (" + str(torch.get_num_threads())
                    + " threads; `benchmarks/kernels.py`)\n\n" + kernels, elbo_table, iwae_table, eval_table, eval_notes, mem_table, cfg, q,
                    device, targets_summary(results))
    report = report.replace("\n## Log-likelihood evaluation", extra + "\n## Log-likelihood evaluation", 1)
    Path(args.out).write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(report)
    log(f"wrote {args.out}")


def issue17_sections(denormal_table, epoch_tables, busy_table, allocator_table, cfg) -> str:
    n = cfg["epoch_images"]
    return f"""## Denormals (issue 17): an IWAE-8 training step from initialization

`fit` flushes denormal floats to zero while training (`TrainConfig.flush_denormals`, default on;
`pyro_air.backend.openmp.denormals_flushed`); `tests/test_train.py` checks that a short fit ends with
the same parameters either way, to float rounding. Interleaved, {torch.get_num_threads()} threads:

{denormal_table}

## The whole epoch (issue 17): `fit` vs a hand-written loop, {n} MNIST images{'' if n == NUM_DATA else ' (a part of the epoch: quick run)'}

One call of each case per round ({cfg['epoch_rounds']} interleaved rounds after one warm-up call, {torch.get_num_threads()}
threads): `fit(model, guide, objective, x, config=TrainConfig(epochs=1, threads={torch.get_num_threads()}))` with no
validation and no run directory (everything a call costs, its set-up included) against a
hand-written loop over the same {n // 100} batches of 100 with pyro-air's kernels (fused Adam,
tanh choice, softplus log-density, denormals flushed) and against a typical user's loop
(`nn.Linear`, `nn.Tanh`, BCE-with-logits, default `torch.optim.Adam`, denormals not flushed).
The typical user's loop runs twice: in a worker process of its own, with the C library's malloc
settings as in a user's own process (`benchmarks/remote.py`; the target's row), and in this
process, which pyro-air's allocator setting has changed (`pyro_air.backend.allocator`), for scale.
The last row runs only the epoch's matrix products (`benchmarks.training.EpochGemms`: forward and
backward products of every dense layer at the step's shapes), a floor no loop can go below here.
Issue 17's targets: fit <= 1.03x the hand-written loop and <= 0.85x the typical user's (own process).

ELBO:

{epoch_tables[0]}

IWAE-8:

{epoch_tables[1]}

## A busy machine (issue 17; `benchmarks/busy.py`)

One competing busy process (`while True: pass`) holds a core; each measurement is a fresh process
training the AIR MNIST VAE with `fit` for {cfg['busy_steps']} steps (ELBO, batch 100), scaled to a full epoch
(600 steps); settings interleaved over {cfg['busy_rounds']} round(s). The last two rows pause the competitor
(SIGSTOP), for scale; other users' jobs on this shared machine keep running in every row.

{busy_table}

## Freed memory kept for reuse (issue 17; `benchmarks/allocator.py`)

`fit` and the evaluation functions set glibc's mmap and trim thresholds once per process
(`pyro_air.backend.allocator`; `PYRO_AIR_MALLOC=system` opts out), so the same MiB-sized tensors that
every chunk or step allocates and frees are reused instead of coming back from the kernel as fresh
pages that fault on first touch. Each setting runs in a worker process of its own, interleaved over
{cfg['allocator_rounds']} rounds; the page faults are those of one more call after the rounds. glibc's defaults adapt
to the largest mapped block freed so far (up to 32 MiB), so the process history matters: loading
MNIST frees 31 MiB arrays and already raises its thresholds; a process that has freed no such block
faults on every call.

{allocator_table}
"""


def targets_summary(results: dict) -> str:
    """The issue's targets against this run's numbers (computed, not written by hand)."""
    rows = []
    for group, name in (("train_elbo", "pyro-air ELBO"), ("train_iwae8", "pyro-air IWAE-8")):
        r = results[group][name]
        met = max(r["paired_ratio"], r["ratio"]) <= 1.05
        rows.append((f"training step, {name.split()[-1]}, <= 1.05x hand-written",
                     (f"{r['paired_ratio']:.3f}x median of paired ratios; {r['ratio']:.3f}x ratio of medians; "
                     f"{r['cpu_ratio']:.3f}x CPU time"), "yes" if met else "no"))
    for threads, r in results["evaluation"].items():
        met = min(r["fraction"], r["paired_fraction"]) >= 0.75
        rows.append((f"evaluation >= 75% of the GEMM bound, {threads} thread(s)",
                     f"{r['fraction']:.1%} (median of paired: {r['paired_fraction']:.1%})", "yes" if met else "no"))
    for threads, r in results["evaluation"].items():
        if "pythae_ips" in r:
            speedup = r["pyro_air_ips"] / r["pythae_ips"]
            rows.append((f"evaluation >= 3x pythae's get_nll, {threads} thread(s)", f"{speedup:.2f}x",
                         "yes" if speedup >= 3 else "no"))
    for group in ("elbo", "iwae8"):
        rows_ = results.get("epoch", {}).get(group)
        if not rows_:
            continue
        fit_row = next(v for k, v in rows_.items() if k.startswith("pyro-air fit") and "bf16" not in k)
        user_row = next(v for k, v in rows_.items() if k.startswith("typical user") and "own process" in k)
        ratio = max(fit_row["ratio"], fit_row["paired_ratio"])
        rows.append((f"fit epoch, {group.upper()}, <= 1.03x hand-written", (f"{fit_row['paired_ratio']:.3f}x paired; "
                     f"{fit_row['ratio']:.3f}x of medians"), "yes" if ratio <= 1.03 else "no"))
        vs_user = fit_row["ratio"] / user_row["ratio"]
        bound_row = next((v for k, v in rows_.items() if "matrix products only" in k), None)
        bound = (f"; the epoch's matrix products alone take {bound_row['ratio'] / user_row['ratio']:.3f}x"
                 if bound_row else "")
        rows.append((f"fit epoch, {group.upper()}, <= 0.85x the typical user's loop",
                     f"{vs_user:.3f}x (of medians){bound}", "yes" if vs_user <= 0.85 else "no"))
        bf16_row = next((v for k, v in rows_.items() if k.startswith("pyro-air fit") and "bf16" in k), None)
        if bf16_row is not None:
            rows.append((f"fit epoch, {group.upper()}, --precision bf16, vs the typical user's (float32) loop",
                         f"{bf16_row['ratio'] / user_row['ratio']:.3f}x (of medians); "
                         f"{fit_row['ratio'] / bf16_row['ratio']:.2f}x faster than float32 fit", "(for scale)"))
    from pyro_air.backend.precision import bf16_support
    state = bf16_support()["state"] if results.get("device", "cpu") == "cpu" else "CUDA"
    for group, name in (("train_elbo", "ELBO"), ("train_iwae8", "IWAE-8")):
        f32, bf = results[group].get(f"pyro-air {name}"), results[group].get(f"pyro-air {name}, bf16 autocast")
        if f32 and bf:
            speedup = min(f32["ratio"] / bf["ratio"], 1 / bf["paired_ratio"] * f32["paired_ratio"])
            target = name == "IWAE-8"
            rows.append((f"bf16 {name} training step" + (" >= 1.8x float32 (issue: where AMX exists)" if target else
                         " vs float32") + f"; bf16 here: {state}",
                         f"{f32['ratio'] / bf['ratio']:.2f}x (of medians); {f32['paired_ratio'] / bf['paired_ratio']:.2f}x "
                         "(of paired ratios)", ("yes" if speedup >= 1.8 else "no") if target else "(for scale)"))
    chunked = [m for m in results["memory"] if m["chunk_size"] is None]
    if len(chunked) >= 2:
        lo, hi = chunked[0], chunked[-1]
        flat = hi["added_mib"] <= 1.25 * lo["added_mib"] + 16
        rows.append(("memory flat in num_samples (automatic chunking)",
                     " / ".join(f"+{m['added_mib']:.0f} MiB at S = {m['num_samples']}" for m in chunked),
                     "yes" if flat else "no"))
    return markdown_table(["target", "measured in this run", "met?"], rows, ["{}", "{}", "{}"])


def denormal_section(device, rounds: int, block: int) -> tuple:
    """An IWAE-8 training step from initialization with denormals flushed (the training default) vs not."""
    from benchmarks.training import PyroAirStep, fresh_pair, renamed_copy
    from pyro_air.backend.openmp import denormals_flushed
    batches = training_batches(device)
    model, guide = fresh_pair(device=device)
    kept = PyroAirStep(*renamed_copy(model, guide, "kept"), infer.IWAE_ELBO(num_particles=8), batches, NUM_DATA)
    flushed = PyroAirStep(*renamed_copy(model, guide, "flushed"), infer.IWAE_ELBO(num_particles=8), batches, NUM_DATA)

    calling_only = PyroAirStep(*renamed_copy(model, guide, "flushed1"), infer.IWAE_ELBO(num_particles=8), batches,
                               NUM_DATA)

    def flushed_step():
        with denormals_flushed():
            return flushed()

    def calling_thread_step():  # torch's own switch: the calling thread only (pyro_air.backend.openmp)
        torch.set_flush_denormal(True)
        try:
            return calling_only()
        finally:
            torch.set_flush_denormal(False)

    cases = {"IWAE-8 step, denormals kept": kept,
             "IWAE-8 step, denormals flushed on the calling thread only (torch.set_flush_denormal)": calling_thread_step,
             "IWAE-8 step, denormals flushed on every pool thread (fit's default)": flushed_step}
    times = interleave(cases, rounds, calls_per_block=block, warmup_blocks=1, sync=sync_for(device))
    rows = ratio_rows(times, "IWAE-8 step, denormals kept")
    table = markdown_table(["case", "median step (wall)", "ratio of medians", "median of paired ratios",
                            "median CPU time", "CPU-time ratio"], rows,
                           ["{}", "{:.1f} ms", "{:.3f}", "{:.3f}", "{:.1f} ms", "{:.3f}"])
    steps = block * (rounds + 1)
    note = (f"Each case trains its own copy of the same initial 784-500-500-50 pair for {steps} steps "
            f"({rounds} interleaved rounds of {block} steps after one warm-up block): the first steps from "
            "initialization, where normalized importance weights underflow.")
    return table + "\n\n" + note, {name: {"median_ms": ms, "ratio": r, "paired_ratio": pr} for name, ms, r, pr, *_ in rows}


def epoch_section(device, rounds: int, images: int, threads: int) -> tuple:
    """One epoch through ``fit`` vs the hand-written loop (and a typical user's loop), ELBO and IWAE-8."""
    from benchmarks.remote import close_all
    from benchmarks.training import epoch_cases
    x = data.load("mnist", "train")[:images].to(device)
    tables, raw = [], {}
    for k in (1, 8):
        cases = epoch_cases(k, x, threads)
        baseline = next(iter(cases))
        try:
            times = interleave(cases, rounds, calls_per_block=1, warmup_blocks=1, sync=sync_for(device),
                               progress=lambda r, n: log(f"  epoch round {r}/{n}"))
        finally:
            close_all(cases)
        rows = [(name, ms / 1e3, r, pr, cpu / 1e3, cr) for name, ms, r, pr, cpu, cr in ratio_rows(times, baseline)]
        tables.append(markdown_table(["case", "median epoch (wall)", "ratio of medians", "median of paired ratios",
                                      "median CPU time", "CPU-time ratio"], rows,
                                     ["{}", "{:.2f} s", "{:.3f}", "{:.3f}", "{:.2f} s", "{:.3f}"]))
        raw["elbo" if k == 1 else f"iwae{k}"] = {name: {"median_s": sec, "ratio": r, "paired_ratio": pr}
                                                 for name, sec, r, pr, *_ in rows}
    return tables, raw


def render(machine, profile, overhead, elbo_table, iwae_table, eval_table, eval_notes, mem_table, cfg, quick,
           device, summary="") -> str:
    today = datetime.date.today().isoformat()
    gpu = ("measured on this device (see above)" if device.type == "cuda" else
           "**not measured**: no GPU was lent to this session. `python -m benchmarks.run --device cuda` runs every "
           "section on CUDA (data resident on the device, `torch.cuda.synchronize` around each timed block, "
           "memory from `torch.cuda.max_memory_allocated`).")
    from pyro_air.backend.choices import cpu_model
    from pyro_air.backend.onednn import chunk_elements, linear_kernel
    linear = {"onednn": "oneDNN", "torch": "torch's product"}[linear_kernel()] if device.type == "cpu" else "torch's product"
    chunk = chunk_elements(device)
    return f"""# pyro-air benchmarks on {cpu_model() if device.type == 'cpu' else device.type.upper()} ({'QUICK sanity run' if quick else 'full run'}, {today})

Produced by `python -m benchmarks.run{' --quick' if quick else ''}` in one process. Reports from other
CPUs sit beside this one (`benchmarks/RESULTS*.md`: AMD EPYC in RESULTS.md, Intel Xeon with AMX in
RESULTS-intel.md); ratios compare only within one report.

**Noise.** This machine has 2 CPU cores shared with several other engineers' jobs (see the load
averages below), so absolute times are inflated and vary by a large factor from minute to minute.
Only the ratios inside one table mean anything: every table's cases were run interleaved
round-robin in short blocks (warm-up first), each time is the median over rounds, and each ratio
is given both as the ratio of medians and as the median of same-round ratios (the more robust
of the two under bursty load). Never compare absolute times across runs.

## Targets (issues 8 and 17) against this run

{summary}

A target counts as met only if both ratio views meet it; memory counts as flat when the largest
num_samples adds at most 1.25x (+16 MiB) of what the smallest adds. GPU: see the last section.

## Machine

{chr(10).join('- ' + line for line in machine)}

## Where a pyro-air training step spends its time

pyro-air's training path (`pyro_air.train.fit`): one `torch.optim.Adam` over all parameters
(torch's fused kernel where it applies, `pyro_air.train.make_adam`; the hand-written and stock
Pyro cases use the same kernel), `objective.differentiable_loss(...).backward()`, Pyro validation
and the per-call input checks off in the hot loop (the data are checked once, up front).
`differentiable_loss` takes the direct path of `pyro_air/infer/direct.py` when no Pyro handler is
active and model and guide implement the direct-scoring protocol (docs/design.md, contract 6):
the same log weights, bit for bit (tests/test_direct.py), without poutine traces, plates or
`pyro.param` statements. `BernoulliVAE.log_joint` and `GaussianEncoder.direct_posterior` override
the protocol with specialized tensor formulas without distribution objects, again bit for bit; the
"generic direct path" rows are the distribution-object defaults (`pyro_air.core.scoring.generic_scoring`).
Under `pyro.infer.SVI` (or any effect) the traced primitive runs, and `tests/test_direct.py`
checks that one SVI step and one fast step give the same loss, gradients and updated parameters.

{profile}

{overhead}

## Training step: 784-500-500-50 BernoulliVAE + GaussianEncoder, batch 100, {torch.get_num_threads()} threads

Baseline: hand-written PyTorch of exactly the same loss and optimizer (`benchmarks/handwritten.py`;
`tests/test_benchmarks.py` checks that its loss and gradients equal pyro-air's on the same batch
and seed). Target: pyro-air <= 1.05x. The "nn.Tanh + BCE" row is the same hand-written step with
torch's own tanh and binary cross-entropy (the same function to float32 rounding), for scale.
The "oneDNN products" row (CPUs whose torch has oneDNN) is pyro-air's step with the opt-in
`PYRO_AIR_LINEAR_TRAINING=onednn`: forward products with tanh fused and input gradients through
oneDNN (`pyro_air.backend.onednn`; the same function to float rounding, not the same bits).
Each round times {cfg['train_block']} consecutive steps per case. Every case runs with denormal floats flushed
on every pool thread, as `fit` trains, except the typical user's step and stock Pyro with its
defaults, which keep them (`benchmarks.training.Flushed`; the denormal section below shows what
flushing is worth).

ELBO (1 particle):

{elbo_table}

IWAE-8 (8 vectorized particles):

{iwae_table}

## Log-likelihood evaluation (IWAE-{cfg['eval_samples']})

{eval_table}

{eval_notes}

`log_likelihood` runs the same direct log weights as training (bit-identical to the traced ones),
with the guide's q(z | x) computed once per block of images rather than once per chunk of samples.
Samples are drawn in units of at most {DEFAULT_CHUNK_ELEMENTS:,} elements per [unit, B, 784] tensor
(fixed: the draws depend on it) and scored in chunks of whole units of at most {chunk:,} elements
({chunk * 4 // 2 ** 20} MiB; `pyro_air.backend.onednn.chunk_elements`: 16 MiB where the dense layers run
through oneDNN, whose products gain from more rows, else 4 MiB, where the chunk's elementwise work
stays in cache). What separates it from the GEMM bound is eager
PyTorch's elementwise work on those tensors: the two tanh layers (2 sigmoid(2a) - 1 where the
kernel measurement chose it, `pyro_air/core/nets.py`), the Bernoulli log-density (softplus(l) - x l,
`pyro_air/core/distributions.py`), the bias adds and the normal draws. The hand-written chunked row
pays the same; the "nn.Tanh + BCE" row shows what torch's own tanh and binary cross-entropy would
cost instead (as a plain `nn.Sequential`). Without gradients the dense layers run through the
library the kernel measurement chose (`pyro_air.backend.onednn.linear_kernel`; this run: {linear}):
through oneDNN each dense layer and the tanh after it are one call (`pyro_air.backend.onednn`: tanh
fused into the product as a post-op, same function to float rounding); through torch's product
each runs as one product that returns 2a directly (alpha = beta = 2, exact) and two in-place
passes (`pyro_air.backend.nets.MLP`; bit for bit the layer-by-layer numbers; ~3% of the evaluation
time side by side). The GEMM bound is the best of both libraries' products. (Tried and
removed earlier: moving the bias add out of the product into the tanh's first pass - not bit for
bit, and 0.98-1.04x the time at 2 threads.) Every case here runs in a process whose freed memory is
kept for reuse (`pyro_air.backend.allocator`), the bound included.

The per-datapoint peer follows pythae's `get_nll` strategy in plain torch; the pythae row (present
when pythae 0.1.2 is installed: `pip install -e ".[peers]"`) calls pythae's own `VAE.get_nll` on a
pythae VAE that wraps the same weights (`benchmarks/evaluation.py`, `pythae_vae`). Both re-encode the
repeated image for every batch of 100 samples, so they do more FLOPs than the bound counts.
Targets for pyro-air: >= 75% of the GEMM bound; >= 3x pythae's `get_nll`.

## Peak memory as num_samples grows

Fresh subprocess per setting (`benchmarks/memory.py`), {cfg['mem_images']} random binary images;
CPU: the process's resident-set high-water mark (`VmHWM`, reset after setup through
`/proc/self/clear_refs`) read after setup and after the evaluation (tracemalloc cannot see torch's
allocations and torch keeps no CPU allocator statistics); CUDA: `torch.cuda.max_memory_allocated`.

{mem_table}

With automatic chunking the largest per-chunk tensor ([chunk, images, 784]) is capped at
{chunk:,} elements ({chunk * 4 // 2 ** 20} MiB, `chunk_elements` in this run): with {cfg['mem_images']} images a chunk holds
at most {max(1, chunk // (cfg['mem_images'] * 784))} samples, so the memory added by an evaluation stops
growing once num_samples exceeds that; evaluating all samples in one chunk grows linearly.

## GPU

{gpu}
"""


if __name__ == "__main__":
    main()
