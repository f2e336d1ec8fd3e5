"""``pyro-air zoo list`` and ``pyro-air zoo show NAME``: they read the manifest only (no torch, no
weights), so they answer at once."""
from __future__ import annotations

import json

from pyro_air.zoo import manifest as zoo


def _numbers(values: dict) -> str:
    """"key value, ..." with floats to 2 decimals and {"mean", "stderr"} records as "mean ± stderr"."""
    def one(v):
        if isinstance(v, float):
            return f"{v:.2f}"
        if isinstance(v, dict) and {"mean", "stderr"} <= set(v):
            return f"{v['mean']:.2f} ± {v['stderr']:.2f}"
        return str(v)
    return ", ".join(f"{k} {one(v)}" for k, v in values.items()) or "-"


def zoo_table(entries: list) -> str:
    """One line per zoo model: its parts, the check (-log p(x) on a slice of test images), the recorded
    test numbers and the weight file's size."""
    header = ("name", "model / guide / objective", "check -log p(x)", "test numbers", "size")
    rows = [header]
    for e in entries:
        spec, check = e["spec"], e["check"]
        parts = " / ".join(spec[k]["name"] for k in ("model", "guide", "objective"))
        rows.append((e["name"], parts,
                     f"{check['neg_log_px']:.2f} (IWAE-{check['num_samples']}, first {check['points']} test)",
                     _numbers(e.get("test_numbers") or {}), f"{e['size_bytes'] / 1e6:.1f} MB"))
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
    print(f"zoo: {root}; nats, mean over the images named; details: pyro-air zoo show NAME")
    print(zoo_table(entries))
    print("use one: pyro-air evaluate zoo:NAME, pyro-air diagnose zoo:NAME, or in Python "
          "model, guide = pyro_air.zoo.load(NAME)")
    return 0


def cmd_zoo_show(args) -> int:
    print(json.dumps(zoo.entry(args.name), indent=1))
    return 0
