"""``pyro-air zoo list`` and ``pyro-air zoo show NAME``: they read the manifest only (no torch, no
weights), so they answer at once."""
from __future__ import annotations

import json

from pyro_air.zoo import manifest as zoo


def _mean(record) -> str:
    return f"{record['mean']:.2f}" if isinstance(record, dict) and "mean" in record else "-"


def _test_record(numbers: dict) -> tuple[str, str]:
    """(mean, how it was measured) of the recorded test -log p(x): the first ``nll_iwae<S>`` (else
    ``nll*``) record, e.g. ("90.65", "all 10000 test images by IWAE-5000"); ("-", "") when none is recorded."""
    keys = [k for k in numbers if k.startswith("nll_iwae")] or [k for k in numbers if k.startswith("nll")]
    if not keys:
        return "-", ""
    samples = keys[0][len("nll_iwae"):] if keys[0].startswith("nll_iwae") else ""
    images = numbers.get("test_images")
    where = "test images" if images is None else f"{'all ' if images == 10000 else 'first '}{images} test images"
    return _mean(numbers[keys[0]]), where + (f" by IWAE-{samples}" if samples.isdigit() else f" ({keys[0]})")


def _objective(spec: dict) -> str:
    """The objective's name; a wrapper names what it wraps: "kl-warmup(avo)"."""
    objective = spec["objective"]
    inner = (objective.get("cfg") or {}).get("objective")
    return f"{objective['name']}({inner})" if isinstance(inner, str) else objective["name"]


def _gap(numbers: dict) -> str:
    """The test inference gap log p(x) - ELBO: ``inference_gap``, or ``var_gap`` (the AVO paper's name for it)."""
    return _mean(numbers.get("inference_gap", numbers.get("var_gap")))


def _marks(column: str, hows: list, letters: str) -> tuple[list, list]:
    """How each cell of a column was measured, said once: the commonest way above the table (its cells
    unmarked), every other way in a note below it, its cells marked with the next of ``letters``:
    " [a]". Returns (one mark per cell, the notes: the common way first)."""
    counts = {}
    for how in hows:
        if how:
            counts[how] = counts.get(how, 0) + 1
    if not counts:
        return [""] * len(hows), []
    common = max(counts, key=counts.get)
    letter = dict(zip([how for how in counts if how != common], letters))
    notes = [f"{column}: {common}"] + [f"[{mark}] {column}: {how}" for how, mark in letter.items()]
    return [f" [{letter[how]}]" if how in letter else "" for how in hows], notes


def zoo_table(entries: list) -> str:
    """One line per zoo model (at most 120 characters): its parts, the check (-log p(x) on a slice of test
    images, which `pyro-air evaluate zoo:NAME` repeats in about a minute), the recorded test -log p(x)
    and inference gap, the weight file's size. How the check and the test number were measured is
    said once above the table; a model measured another way is marked, and the way noted below.
    Everything else: `pyro-air zoo show NAME`."""
    checks = [f"first {e['check']['points']} test images by IWAE-{e['check']['num_samples']}" for e in entries]
    tests = [_test_record(e.get("test_numbers") or {}) for e in entries]
    letters = "abcdefghijklmnopqrstuvwxyz"
    check_marks, check_notes = _marks("check", checks, letters)
    test_marks, test_notes = _marks("test", [how for _, how in tests], letters[max(len(check_notes) - 1, 0):])
    header = ("name", "model / guide / objective", "check -log p(x)", "test -log p(x)", "gap", "size")
    rows = [header]
    for e, check_mark, (mean, _), test_mark in zip(entries, check_marks, tests, test_marks):
        spec, numbers = e["spec"], e.get("test_numbers") or {}
        parts = " / ".join([spec["model"]["name"], spec["guide"]["name"], _objective(spec)])
        rows.append((e["name"], parts, f"{e['check']['neg_log_px']:.2f}{check_mark}", mean + test_mark,
                     _gap(numbers), f"{e['size_bytes'] / 1e6:.1f} MB"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    above = "; ".join(note for note in (check_notes[:1] + test_notes[:1]))
    below = check_notes[1:] + test_notes[1:]
    return "\n".join([*([above] if above else []), lines[0], "  ".join("-" * w for w in widths), *lines[1:], *below])


def cmd_zoo_list(args) -> int:
    root = zoo.zoo_root()
    entries = [zoo.entry(name) for name in zoo.names()]
    if not entries:
        print(f"The zoo at {root} holds no trained models yet. Add one from a finished run with "
              "pyro_air.zoo.export(RUN_DIR, NAME, ...) (docs/design.md, \"Zoo\").")
        return 0
    print(f"zoo: {root}; -log p(x) in nats; details: pyro-air zoo show NAME")
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
