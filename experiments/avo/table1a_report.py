"""Tables of ``table1a.py`` (AVO Table 1a at full data) from what is on disk: ``table.md`` and ``results.json``.

Rows as in the paper's Table 1a: -L on the training, validation and test splits (the extended-model
ELBO for HVI), -log p(x) on validation and test (IWAE-5000 over the extended model), gen gap =
-L_te - (-L_tr), var gap = -L_te - (-log p_te). Paired differences: Δ = -log p_method(x) - (-log p_VAE(x))
per test image, the VAE of the same seed (negative = the method is better), mean ± s.e. over the
images. With several seeds of both, the Δ of each seed is one draw: Δ̄ ± sd / sqrt(n) over seeds is
the error that counts (it holds the training noise), beside the seed spread of each method (the sd
over seeds of its mean -log p). A difference is called only where it is beyond 2 of its errors.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from plan_worker import cpus_line, mean_se, read_json, record_cpus
from pyro_air.backend.choices import cpu_label
from pyro_air.support.atomic import atomic_write_text

# AVO Table 1a (MNIST): -L_tr, -L_va, -log p(D_va), -L_te, -log p(D_te), gen gap, var gap
PAPER = {"vae": (84.69, 92.37, 87.49, 92.40, 87.50, 7.71, 4.90), "hvi": (84.51, 92.37, 87.63, 92.48, 87.62, 7.97, 4.86),
         "avo": (86.15, 90.00, 86.06, 90.01, 86.06, 3.86, 3.95),
         "avo-a0.5": (87.02, 90.22, 86.12, 90.26, 86.12, 3.24, 4.14)}
ROWS = ("-L tr", "-L va", "-log p va", "-L te", "-log p te", "gen gap", "var gap")
ORDER = ("vae", "hvi", "avo", "avo-a0.5")


# -- which task is done --------------------------------------------------------------------------
def chunk_paths(directory: Path, points: int, chunk: int, prefix: str = "") -> list:
    return [directory / f"{prefix}points{a}-{a + chunk}.json" for a in range(0, points, chunk)]


def task_done(out: Path, t: dict, s: dict) -> bool:
    if t["kind"] == "train":
        if t["role"] == "select":
            return (out / "runs" / t["name"] / "train.json").exists()
        return (out / "per_image" / f"{t['name']}.json").exists()
    if t["kind"] == "valid":
        return (out / "per_image" / f"{t['name']}.json").exists()
    directory = out / "estimators" / t["name"]
    if t["kind"] == "ais":
        return ais_values(out, t["of"], s) is not None
    if t["kind"] == "bdmc":
        return chosen_T(directory, s) is not None
    raise ValueError(f"unknown task kind {t['kind']!r}")


def bdmc_widths(directory: Path, s: dict) -> dict:
    """{T: (mean, s.e., points)} of the BDMC sandwich width upper - lower, for every T of the ladder whose
    chunks are all on disk."""
    widths = {}
    for T in s["ais_ladder"]:
        records = _chunks(directory, s["bdmc_points"], s["bdmc_chunk"], f"T{T}_", key=None)
        if records:
            w = [u - lo for r in records for lo, u in zip(r["lower"], r["upper"])]
            widths[T] = (*mean_se(w), len(w))
    return widths


def chosen_T(directory: Path, s: dict):
    """The AIS T of a model: the first T of ``ais_ladder`` whose BDMC width (points simulated from that model)
    is below ``max_width``; the ladder's last T when none is; None while the ladder has not got that far."""
    widths = bdmc_widths(directory, s)
    for T in s["ais_ladder"]:
        if T not in widths:
            return None
        if widths[T][0] < s["max_width"]:
            return T
    return s["ais_ladder"][-1]


def ais_values(out: Path, of: str, s: dict):
    """Per-image AIS log p(x) of run ``of`` at its chosen T (image order), or None until all are on disk."""
    T = chosen_T(out / "estimators" / f"bdmc-{of}", s)
    if T is None:
        return None
    return _chunks(out / "estimators" / f"ais-{of}", s["ais_points"], s["ais_chunk"], f"T{T}_")


def chosen(out: Path, plan: list, method: str) -> dict:
    """The grid cell of ``method`` with the best validation IWAE (all cells must be finished)."""
    cells = []
    for t in plan:
        if t.get("role") == "select" and t["method"] == method:
            record = read_json(out / "runs" / t["name"] / "train.json")
            if record is None:
                raise RuntimeError(f"grid cell {t['name']} has not finished; run it first")
            cells.append({**t, "best_valid": record["best_valid"]})
    return max(cells, key=lambda c: c["best_valid"])  # the first of equals, in grid order


# -- reading the results -------------------------------------------------------------------------
def _chunks(directory: Path, points: int, chunk: int, prefix: str = "", key: str = "log_px"):
    """Values of every chunk in image order, or None until every chunk is on disk."""
    records = [read_json(p) for p in chunk_paths(directory, points, chunk, prefix)]
    if any(r is None for r in records):
        return None
    return [v for r in records for v in r[key]] if key else records


def _paired(a: list, b: list):
    """Mean ± s.e. of -log p_a - (-log p_b) = log p_b - log p_a over images."""
    return mean_se([y - x for x, y in zip(a, b)])


def collect(out: Path, plan: list, s: dict) -> dict:
    runs = {}
    for t in plan:
        if t["kind"] != "train" or t["role"] != "full":
            continue
        train = read_json(out / "runs" / t["name"] / "train.json")
        r = read_json(out / "per_image" / f"{t['name']}.json")
        if train is None and r is None:
            continue
        row = {"task": t["name"], "method": t["method"], "seed": t["seed"]}
        if train:
            row.update(best_epoch=train["best_epoch"], epochs=train["epochs"], best_valid=train["best_valid"],
                       train_minutes=train["epoch_seconds_sum"] / 60, hyper=train["hyper"])
        if r:
            gap = [lp - b for lp, b in zip(r["log_px"], r["bound"])]
            row.update(nll=mean_se([-v for v in r["log_px"]]), neg_elbo=mean_se([-v for v in r["bound"]]),
                       var_gap=mean_se(gap), points=r["points"], eval_minutes=r["cpu_seconds"] / 60,
                       neg_elbo_train=tuple(r["splits"]["train"]["neg_elbo"]),
                       neg_elbo_valid=tuple(r["splits"]["valid"]["neg_elbo"]), _log_px=r["log_px"])
            row["gen_gap"] = row["neg_elbo"][0] - row["neg_elbo_train"][0]
        v = read_json(out / "per_image" / f"valid-{t['name']}.json")
        if v:
            row["nll_valid"] = mean_se([-x for x in v["log_px"]])
        ais = ais_values(out, t["name"], s)
        if ais is not None:
            row["_ais"], row["ais_T"] = ais, chosen_T(out / "estimators" / f"bdmc-{t['name']}", s)
            row["ais"] = mean_se([-x for x in ais])
            if "_log_px" in row:
                row["iwae_on_ais_points"] = mean_se([-x for x in row["_log_px"][:len(ais)]])
                row["ais_minus_iwae"] = _paired(ais, row["_log_px"][:len(ais)])
        runs[t["name"]] = row
    return runs


def paired_against_vae(runs: dict) -> dict:
    """method -> {"seeds": {seed: Δ (mean, se)}, "over_seeds": (mean, se) or None, "ais": {seed: Δ}}."""
    out = {}
    for name, row in runs.items():
        base = runs.get(f"vae-s{row['seed']}")
        if row["method"] == "vae" or not base or "_log_px" not in row or "_log_px" not in base:
            continue
        entry = out.setdefault(row["method"], {"seeds": {}, "ais": {}})
        entry["seeds"][row["seed"]] = _paired(row["_log_px"], base["_log_px"])
        if "_ais" in row and "_ais" in base:
            entry["ais"][row["seed"]] = _paired(row["_ais"], base["_ais"])
    for entry in out.values():
        deltas = [d[0] for d in entry["seeds"].values()]
        entry["over_seeds"] = mean_se(deltas) if len(deltas) >= 2 else None
    return out


def seed_spread(runs: dict) -> dict:
    """method -> (sd over seeds of the mean -log p, number of seeds); methods with two seeds or more."""
    means = {}
    for row in runs.values():
        if "nll" in row:
            means.setdefault(row["method"], []).append(row["nll"][0])
    spread = {}
    for method, values in means.items():
        if len(values) >= 2:
            m = sum(values) / len(values)
            spread[method] = (math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)), len(values))
    return spread


def bdmc_ladders(out: Path, plan: list, s: dict) -> dict:
    """{run: {T: (mean width, s.e., points)}} of every BDMC task with a finished rung."""
    ladders = {t["of"]: bdmc_widths(out / "estimators" / t["name"], s) for t in plan if t["kind"] == "bdmc"}
    return {run: w for run, w in ladders.items() if w}


def fmt(m, se=None) -> str:
    if m is None:
        return "—"
    return f"{m:.2f}" if se is None or math.isnan(se) else f"{m:.2f} ± {se:.2f}"


def _cell(r: dict, key: str) -> str:
    return fmt(*r[key]) if key in r else "—"


def _epochs(r: dict) -> str:
    return f"{r['best_epoch']} / {r['epochs']}" if "best_epoch" in r else "—"


def fmt_delta(d) -> str:
    return "—" if d is None else (f"{d[0]:+.2f}" if math.isnan(d[1]) else f"{d[0]:+.2f} ± {d[1]:.2f}")


def verdict(delta, error) -> str:
    if delta is None or error is None or math.isnan(error):
        return "—"
    if abs(delta) <= 2 * error:
        return "within 2 errors"
    return "better than the VAE" if delta < 0 else "worse than the VAE"


# -- the report ----------------------------------------------------------------------------------
def write_report(out: Path, plan: list, s: dict) -> None:
    from table1a import METHODS

    runs = collect(out, plan, s)
    pairs = paired_against_vae(runs)
    spread = seed_spread(runs)
    ladders = bdmc_ladders(out, plan, s)
    lines = ["# AVO Table 1a at full data (generated by `experiments/avo/table1a.py --report`)", "",
             f"{cpus_line(out)} Statically binarized MNIST (draw 0), 50000 / 10000 / "
             f"10000; -log p(x) by IWAE-{s['test_samples']} over the extended model on "
             f"{'all' if s['test_points'] is None else 'the first ' + str(s['test_points'])} test images; -L the "
             f"{s['bound_draws']}-draw ELBO per test image ({s['split_draws']} draws on train / valid); AIS (C = "
             f"{s['ais_chains']}, from q_0; T per model: the first of {s['ais_ladder']} whose BDMC width on points "
             f"simulated from it is below {s['max_width']} nats) on the first {s['ais_points']} test images. "
             f"Full runs: {s['epochs']} epochs; grid cells: {s['select_epochs']}.", ""]
    lines += selection_lines(out, plan, s, METHODS)
    lines += ["", "## Table 1a, seed 0 (ours | paper)", "",
              "| | " + " | ".join(METHODS[m]["label"] for m in ORDER) + " |", "|---|" + "---|" * len(ORDER)]
    seed0 = {runs[n]["method"]: runs[n] for n in runs if runs[n]["seed"] == 0}
    keys = ("neg_elbo_train", "neg_elbo_valid", "nll_valid", "neg_elbo", "nll", "gen_gap", "var_gap")
    for label, key, col in zip(ROWS, keys, range(len(ROWS))):
        cells = []
        for m in ORDER:
            v = seed0.get(m, {}).get(key)
            ours = "—" if v is None else (f"{v:.2f}" if isinstance(v, float) else f"{v[0]:.2f}")
            cells.append(f"{ours} \\| {PAPER[m][col]:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| AIS te (first images) | " + " | ".join(fmt(*seed0[m]["ais"]) if "ais" in seed0.get(m, {}) else "—"
                                                    for m in ORDER) + " |")
    lines.append("| best epoch / epochs | " + " | ".join(_epochs(seed0.get(m, {})) for m in ORDER) + " |")
    lines += ["", "Standard errors over the images of the seed-0 means: " + ", ".join(
        f"{m}: -log p {fmt(*seed0[m]['nll'])}" for m in ORDER if "nll" in seed0.get(m, {})), ""]
    lines += ["## Every run", "", "| run | lr | warm-up | best epoch | -log p valid (IWAE, training's check) | "
              "-log p te | -L te | var gap | -L tr | train min | eval min |", "|---|" + "---|" * 10]
    for name, r in runs.items():
        h = r.get("hyper", {})
        cells = [name, h.get("lr", "—"), h.get("warmup", "—"), _epochs(r),
                 fmt(-r["best_valid"]) if "best_valid" in r else "—", _cell(r, "nll"), _cell(r, "neg_elbo"),
                 _cell(r, "var_gap"), fmt(r["neg_elbo_train"][0]) if "neg_elbo_train" in r else "—",
                 fmt(r.get("train_minutes")), fmt(r.get("eval_minutes"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Seed spread (sd over seeds of a method's mean test -log p): " + (", ".join(
        f"{m} {v:.2f} ({n} seeds)" for m, (v, n) in spread.items()) or "not yet (needs two seeds of a method)"), ""]
    lines += ["## Paired differences against the VAE of the same seed (Δ -log p, negative = better than the VAE)", "",
              "| method | paper Δ | Δ seed 0 (± s.e. over images) | Δ per seed | "
              "Δ over seeds (± s.e. over seeds) | AIS Δ (first images) | verdict |", "|---|---|---|---|---|---|---|"]
    for m in ORDER[1:]:
        e = pairs.get(m)
        if not e:
            continue
        paper = PAPER[m][4] - PAPER["vae"][4]
        d0 = e["seeds"].get(0)
        over = e["over_seeds"]
        if over is not None:
            decided = verdict(over[0], over[1])
        elif d0 is not None:
            decided = verdict(d0[0], d0[1]) + " (one seed: image noise only)"
        else:
            decided = "—"
        lines.append(f"| {METHODS[m]['label']} | {paper:+.2f} | {fmt_delta(d0)} | "
                     + ", ".join(f"s{k}: {v[0]:+.2f}" for k, v in sorted(e["seeds"].items())) + " | "
                     + fmt_delta(over) + " | "
                     + (", ".join(f"s{k}: {fmt_delta(v)}" for k, v in sorted(e["ais"].items())) or "—")
                     + f" | {decided} |")
    lines += ["", f"## AIS against IWAE-{s['test_samples']} on the first {s['ais_points']} test images", "",
              "| run | T | AIS -log p | IWAE -log p (same images) | AIS - IWAE (paired) |", "|---|---|---|---|---|"]
    for name, r in runs.items():
        if "ais" in r:
            lines.append(f"| {name} | {r['ais_T']} | {fmt(*r['ais'])} | {_cell(r, 'iwae_on_ais_points')} | "
                         f"{fmt_delta(r.get('ais_minus_iwae'))} |")
    lines += ["", "BDMC sandwich width (upper - lower) on points simulated from each model, HMC from q_0: " + (
        "; ".join(f"{run}: " + ", ".join(f"T = {T}: {fmt(w[0], w[1])} ({w[2]} points)" for T, w in ladder.items())
                  for run, ladder in ladders.items()) or "not run yet")]
    results = {"machine": cpu_label(), "cpus": record_cpus(out), "sizes": s, "paper": PAPER,
               "runs": {n: {k: v for k, v in r.items() if not k.startswith("_")} for n, r in runs.items()},
               "paired_against_vae": {m: {"seeds": {str(k): v for k, v in e["seeds"].items()},
                                          "ais": {str(k): v for k, v in e["ais"].items()}, "over_seeds": e["over_seeds"]}
                                      for m, e in pairs.items()},
               "seed_spread": spread, "bdmc_widths": {run: {str(T): w for T, w in ladder.items()}
                                                      for run, ladder in ladders.items()},
               "chosen": {m: _safe_chosen(out, plan, m) for m in ("vae", "hvi", "avo")}}
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")


def _safe_chosen(out: Path, plan: list, method: str):
    try:
        c = chosen(out, plan, method)
    except (RuntimeError, ValueError):
        return None
    return {"task": c["name"], "lr": c["lr"], "warmup": c["warmup"], "best_valid": c["best_valid"]}


def selection_lines(out: Path, plan: list, s: dict, methods: dict) -> list:
    lines = [f"## Hyperparameters: validation IWAE-{s['valid_samples']} (-log p, all validation images) after "
             f"{s['select_epochs']} epochs, seed 0", "",
             "| method | lr | warm-up fraction | -log p valid | best epoch | train min | chosen |",
             "|---|---|---|---|---|---|---|"]
    for method in ("vae", "avo", "hvi"):
        best = _safe_chosen(out, plan, method)
        for t in plan:
            if t.get("role") != "select" or t["method"] != method:
                continue
            r = read_json(out / "runs" / t["name"] / "train.json")
            lines.append(f"| {methods[method]['label']} | {t['lr']:g} | {t['warmup']:g} | "
                         + (f"{-r['best_valid']:.2f} | {r['best_epoch']} | {r['epoch_seconds_sum'] / 60:.1f}" if r
                            else "— | — | —") + f" | {'yes' if best and best['task'] == t['name'] else ''} |")
    return lines
