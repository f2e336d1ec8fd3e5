"""``pyro-air zoo list`` and ``pyro-air zoo show NAME``: they read the manifest only (no torch, no
weights), so they answer at once."""
from __future__ import annotations

import json

from pyro_air.zoo import manifest as zoo


def _mean(record) -> str:
    return f"{record['mean']:.2f}" if isinstance(record, dict) and "mean" in record else "-"


def test_nll(numbers: dict) -> str:
    """The recorded full-test -log p(x): the first ``nll_iwae<S>`` (else ``nll*``) record, "90.65 (IWAE-5000)"."""
    keys = [k for k in numbers if k.startswith("nll_iwae")] or [k for k in numbers if k.startswith("nll")]
    if not keys:
        return "-"
    samples = keys[0][len("nll_iwae"):] if keys[0].startswith("nll_iwae") else ""
    return _mean(numbers[keys[0]]) + (f" (IWAE-{samples})" if samples.isdigit() else "")


def zoo_table(entries: list) -> str:
    """One line per zoo model (about 110 characters): its parts, the check (-log p(x) on a slice of test
    images, which `pyro-air evaluate zoo:NAME` repeats in about a minute), the recorded full-test
    -log p(x) and inference gap, the weight file's size. Everything else: `pyro-air zoo show NAME`."""
    header = ("name", "model / guide / objective", "check -log p(x)", "test -log p(x)", "gap", "size")
    rows = [header]
    for e in entries:
        spec, check, numbers = e["spec"], e["check"], e.get("test_numbers") or {}
        parts = " / ".join(spec[k]["name"] for k in ("model", "guide", "objective"))
        rows.append((e["name"], parts, f"{check['neg_log_px']:.2f} ({check['points']} img, IWAE-{check['num_samples']})",
                     test_nll(numbers), _mean(numbers.get("inference_gap")), f"{e['size_bytes'] / 1e6:.1f} MB"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def cmd_zoo_list(args) -> int:
    root = zoo.zoo_root()
    entries = [zoo.entry(name) for name in zoo.names()]
    if not entries:
        print(f"The zoo at {root} holds no trained models yet. Add one from a finished run with "
              "pyro_air.zoo.export(RUN_DIR, NAME, ...) (docs/design.md, \"Zoo\").")
        return 0
    print(f"zoo: {root}; nats; test: all test images; details: pyro-air zoo show NAME")
    print(zoo_table(entries))
    print("check one (about a minute, the check column again): pyro-air evaluate zoo:NAME\n"
          f"the full test set (half an hour or more on 2 CPU cores): pyro-air evaluate zoo:NAME --num-samples {FULL_NUM_SAMPLES}\n"
          "diagnose one: pyro-air diagnose zoo:NAME; in Python: model, guide = pyro_air.zoo.load(NAME)")
    return 0


def _cfg(part: dict) -> str:
    cfg = part.get("cfg") or {}
    return part["name"] + (f" {json.dumps(cfg, separators=(', ', ': '))}" if cfg else "")


def _record(v) -> str:
    """A recorded number: "90.01 ± 0.25", with any other keys after it: "87.84 ± 0.77 (test_images 1000, ...)"."""
    if not (isinstance(v, dict) and {"mean", "stderr"} <= set(v)):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    extra = ", ".join(f"{k} {x}" for k, x in v.items() if k not in ("mean", "stderr"))
    return f"{v['mean']:.2f} ± {v['stderr']:.2f}" + (f" ({extra})" if extra else "")


def show_entry(e: dict) -> str:
    """One model's manifest entry as about 15 lines: what it is, how it was trained, its numbers, its file
    and how to use it (the whole entry: ``pyro-air zoo show NAME --json``)."""
    spec, check, budget = e["spec"], e["check"], e.get("budget") or {}
    numbers = {k: _record(v) for k, v in (e.get("test_numbers") or {}).items()}
    trained = ", ".join(f"{k} {budget[k]}" for k in ("epochs", "train_size", "best_epoch", "training_seconds")
                        if budget.get(k) is not None)
    lines = [f"{e['name']}: {e['description']}",
             f"  model      {_cfg(spec['model'])}",
             f"  guide      {_cfg(spec['guide'])}",
             f"  objective  {_cfg(spec['objective'])}",
             f"  trained    {trained or '-'}; seed {e.get('seed')}",
             f"  by         {e.get('command', '-')}",
             f"  on         {e.get('cpu', '-')}; torch {e.get('torch_version', '-')}, pyro {e.get('pyro_version', '-')}; "
             f"commit {str(e.get('git_commit', '-'))[:12]}",
             f"  check      -log p(x) {check['neg_log_px']:.2f}: first {check['points']} {check['split']} images, "
             f"IWAE-{check['num_samples']}, seed {check['seed']}, {check.get('threads', '?')} thread(s)",
             "  test       " + ("; ".join(f"{k} {v}" for k, v in numbers.items()) or "-"),
             f"  file       {e['file']} ({e['size_bytes'] / 1e6:.1f} MB, sha256 {e['sha256'][:16]}...)",
             f"use it:     pyro-air evaluate zoo:{e['name']}      # the check again, about a minute",
             f"            pyro-air evaluate zoo:{e['name']} --num-samples {FULL_NUM_SAMPLES}   # all test images",
             f"            pyro-air diagnose zoo:{e['name']}",
             f"            model, guide = pyro_air.zoo.load({e['name']!r})   # Python"]
    return "\n".join(lines)


def cmd_zoo_show(args) -> int:
    e = zoo.entry(args.name)
    print(json.dumps(e, indent=1) if getattr(args, "json", False) else show_entry(e))
    return 0


# -- `pyro-air evaluate zoo:NAME` / `pyro-air diagnose zoo:NAME`: a quick default, the full job's command --
FULL_NUM_SAMPLES = 5000  # `pyro-air evaluate`'s IWAE-S for a run directory, and the zoo's recorded test numbers
TEST_IMAGES = 10000      # MNIST's test split


def source_name(source) -> str | None:
    """NAME of a ``zoo:NAME`` source, None for a run directory or checkpoint (``pyro_air.zoo.zoo_name``'s rule)."""
    text = str(source)
    return text[len("zoo:"):] if text.startswith("zoo:") else None


def quick_evaluation(args) -> dict | None:
    """``pyro-air evaluate zoo:NAME`` without ``--num-samples`` evaluates the manifest's ``check`` (its first
    100 test images at IWAE-1000, seed 0: about a minute) instead of all 10 000 test images at IWAE-5000
    (half an hour to more than an hour on 2 CPU cores): sets ``args`` to the check's images, samples and
    seed and returns the check; None (``args`` as given, ``--num-samples`` 5000 if omitted) otherwise."""
    name = source_name(args.checkpoint)
    if name is None or args.num_samples is not None or getattr(args, "distributed", False):
        if args.num_samples is None:
            args.num_samples = FULL_NUM_SAMPLES
        return None
    check = zoo.entry(name)["check"]
    if args.max_points is None:
        args.max_points = check["points"]
    args.num_samples, args.splits = check["num_samples"], [check["split"]]
    if args.seed is None:
        args.seed = check["seed"]
    print(f"zoo:{name}: the quick check (first {args.max_points} {check['split']} images, IWAE-{args.num_samples}, "
          f"seed {args.seed}), the manifest's recorded -log p(x) {check['neg_log_px']:.2f}; the full test set: "
          f"pyro-air evaluate zoo:{name} --num-samples {FULL_NUM_SAMPLES}")
    return check


def full_evaluation_estimate(args, seconds: float) -> str:
    """The line after a quick check: how long the full test set at IWAE-5000 would take, scaled from
    this check's time (images x samples), and its command."""
    scale = (TEST_IMAGES / args.max_points) * (FULL_NUM_SAMPLES / args.num_samples)
    minutes = seconds * scale / 60
    return (f"the quick check took {seconds:.0f} s; all {TEST_IMAGES} test images at IWAE-{FULL_NUM_SAMPLES} (the "
            f"recorded test numbers, `pyro-air zoo show {source_name(args.checkpoint)}`) would take about "
            f"{minutes:.0f} min at this speed: pyro-air evaluate {args.checkpoint} --num-samples {FULL_NUM_SAMPLES}")


def diagnose_plan(args) -> str | None:
    """The line before ``pyro-air diagnose zoo:NAME``: the work it does and a quicker command."""
    if source_name(args.checkpoint) is None or args.max_points <= QUICK_DIAGNOSE_POINTS:
        return None
    return (f"diagnosing {args.checkpoint}: {args.max_points} {args.split} images x {args.num_samples} guide draws "
            f"(38 s with --threads 1 on a 2-core Intel Xeon at a load of 5; the bar shows the time left); a quicker "
            f"look: pyro-air diagnose {args.checkpoint} --max-points {QUICK_DIAGNOSE_POINTS}")


QUICK_DIAGNOSE_POINTS = 300  # (at 100 images the aggregate-posterior plot of air-vae-mnist fails: not here)
