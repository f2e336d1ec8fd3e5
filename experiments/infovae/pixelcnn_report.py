"""Tables of ``pixelcnn_table.py`` (InfoVAE Table 1 with a PixelCNN decoder) from what is on disk:
``table.md`` and ``results.json``.

Per run: -log p(x) (IWAE-S, first test images), -L (the ELBO), I_q(x; z), active units, KL, MMD(q(z), p(z)),
log det Cov[q(z)] per dimension. Paired: Δ = -log p_MMD(x) - (-log p_ELBO(x)) per test image at the
same seed (negative = MMD better), mean ± s.e. over the images; with several seeds, Δ̄ ± sd / sqrt(n)
over seeds. "Collapsed": I_q below 0.1 nats and no active unit.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from plan_worker import cpus_line, mean_se, read_json, record_cpus
from pyro_air.backend.choices import cpu_label
from pyro_air.support.atomic import atomic_write_text

COLLAPSE_NATS = 0.1  # I_q(x; z) below this (and no active unit): z carries (almost) nothing about x


def chunk_paths(directory: Path, points: int, chunk: int) -> list:
    return [directory / f"points{a}-{a + chunk}.json" for a in range(0, points, chunk)]


def test_points(s: dict, split_size: int = 10000) -> int:
    return split_size if s["full_test_points"] is None else s["full_test_points"]


def task_done(out: Path, t: dict, s: dict) -> bool:
    if t["kind"] == "train":
        return (out / "per_image" / f"{t['name']}.json").exists()
    if t["kind"] == "full-test":
        return all(p.exists() for p in chunk_paths(out / "estimators" / t["name"], test_points(s), s["full_test_chunk"]))
    raise ValueError(f"unknown task kind {t['kind']!r}")


def variant(t: dict) -> str:
    """Which comparison a run belongs to: "first", "long" (the 120-epoch schedule) or "deep" (the deeper
    decoder); ELBO and MMD runs are paired within one."""
    return "deep" if t.get("deep") else "long" if t["long"] else "first"


def _paired(a: list, b: list):
    return mean_se([y - x for x, y in zip(a, b)])


def collapsed(latent: dict) -> bool:
    return latent["mutual_information"] < COLLAPSE_NATS and latent["active_units"] == 0


def collect(out: Path, plan: list, s: dict) -> dict:
    runs = {}
    for t in plan:
        if t["kind"] != "train":
            continue
        train = read_json(out / "runs" / t["name"] / "train.json")
        r = read_json(out / "per_image" / f"{t['name']}.json")
        if train is None and r is None:
            continue
        row = {"task": t["name"], "method": t["method"], "seed": t["seed"], "long": t["long"],
               "variant": variant(t)}
        if train:
            row.update(best_epoch=train["best_epoch"], epochs=train["epochs"], best_valid=train["best_valid"],
                       train_minutes=train["epoch_seconds_sum"] / 60)
        if r:
            row.update(nll=mean_se([-v for v in r["log_px"]]), nll_check=mean_se([-v for v in r["log_px_check"]]),
                       neg_elbo=mean_se([-v for v in r["bound"]]), points=r["points"], latent=r["latent"],
                       collapsed=collapsed(r["latent"]), eval_minutes=r["cpu_seconds"] / 60, _log_px=r["log_px"],
                       s_convergence=_paired(r["log_px"], r["log_px_check"]))
        full = [read_json(p) for p in chunk_paths(out / "estimators" / f"fulltest-{t['name']}", test_points(s),
                                                   s["full_test_chunk"])]
        if full and all(f is not None for f in full):
            values = [v for f in full for v in f["log_px"]]
            row.update(nll_full=mean_se([-v for v in values]), _log_px_full=values)
        runs[t["name"]] = row
    return runs


def paired(runs: dict) -> dict:
    """Each non-ELBO run against the ELBO run of its variant and seed: {key: {"seeds": {seed: Δ}, "over_seeds":
    (mean, se) or None, "full": Δ on all test images}}, key the variant ("first" | "long" | "deep") for the
    MMD-VAE, "variant (method)" for another method (e.g. "first (mmd-rate)")."""
    out = {}
    for row in runs.values():
        if row["method"] == "elbo":
            continue
        prefix = "" if row["variant"] == "first" else f"{row['variant']}-"
        base = runs.get(f"elbo-{prefix}s{row['seed']}")
        if not base or "_log_px" not in row or "_log_px" not in base:
            continue
        key = row["variant"] if row["method"] == "mmd" else f"{row['variant']} ({row['method']})"
        entry = out.setdefault(key, {"seeds": {}, "full": {}})
        entry["seeds"][row["seed"]] = _paired(row["_log_px"], base["_log_px"])
        if "_log_px_full" in row and "_log_px_full" in base:
            entry["full"][row["seed"]] = _paired(row["_log_px_full"], base["_log_px_full"])
    for entry in out.values():
        deltas = [d[0] for d in entry["seeds"].values()]
        entry["over_seeds"] = mean_se(deltas) if len(deltas) >= 2 else None
    return out


def fmt(m, se=None, digits=2) -> str:
    if m is None:
        return "—"
    return f"{m:.{digits}f}" if se is None or math.isnan(se) else f"{m:.{digits}f} ± {se:.{digits}f}"


def fmt_delta(d) -> str:
    return "—" if d is None else (f"{d[0]:+.2f}" if math.isnan(d[1]) else f"{d[0]:+.2f} ± {d[1]:.2f}")


def write_report(out: Path, plan: list, s: dict) -> None:
    from pixelcnn_table import METHODS, PAPER_NLL

    runs = collect(out, plan, s)
    pairs = paired(runs)
    lines = ["# InfoVAE Table 1 with a PixelCNN decoder (generated by `experiments/infovae/pixelcnn_table.py --report`)",
             "", f"{cpus_line(out)} Statically binarized MNIST (draw 0), "
             f"z = {s['z_dim']}; PixelCNN {s['channels']} channels x {s['layers']} gated layers, kernel {s['kernel']}; "
             f"{s['epochs']} epochs "
             f"(long: {s['long_epochs']}; deep: {s['deep_layers']} gated layers, {s['deep_epochs']} epochs). -log p(x): IWAE-{s['test_samples']} on the first {s['test_points']} test "
             f"images (IWAE-{s['check_samples']} beside it); latent metrics on "
             f"{'all' if s['metric_points'] is None else 'the first ' + str(s['metric_points'])} test images. "
             f"Collapsed: I_q < {COLLAPSE_NATS} nats and no active unit.", "",
             "| run | objective | epochs (best) | -log p(x) | paper | -log p, IWAE-" + str(s["check_samples"])
             + " | -L | I_q(x;z) (cap) | active units | KL | MMD | log det Cov / dim | collapsed | train min | "
             "eval min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lat = r.get("latent")
        lines.append(
            f"| {name} | {METHODS[r['method']]['label']} | {r.get('epochs', '—')} ({r.get('best_epoch', '—')}) | "
            f"{fmt(*r['nll']) if 'nll' in r else '—'} | "
            f"{format(PAPER_NLL[r['method']], '.2f') if r['method'] in PAPER_NLL else '—'} | "
            f"{fmt(*r['nll_check']) if 'nll_check' in r else '—'} | "
            f"{fmt(*r['neg_elbo']) if 'neg_elbo' in r else '—'} | "
            + (f"{lat['mutual_information']:.3f} ({lat['mi_cap']:.2f}) | {lat['active_units']}/{lat['z_dim']} | "
               f"{lat['kl']:.2f} | {lat['mmd']:.4f} | {lat['log_det_cov_per_dim']:.2f} | "
               f"{'yes' if r['collapsed'] else 'no'}" if lat else "— | — | — | — | — | —")
            + f" | {fmt(r.get('train_minutes'))} | {fmt(r.get('eval_minutes'))} |")
    lines += ["", "## Paired: MMD-VAE - ELBO, -log p(x) on the same test images (negative = MMD better; paper: "
              f"{PAPER_NLL['mmd'] - PAPER_NLL['elbo']:+.2f})", "",
              "| comparison | Δ per seed (± s.e. over images) | Δ over seeds (± s.e. over seeds) | "
              "Δ on all test images |",
              "|---|---|---|---|"]
    for key, entry in pairs.items():
        lines.append(f"| {key} | " + ", ".join(f"s{k}: {fmt_delta(v)}" for k, v in sorted(entry["seeds"].items()))
                     + f" | {fmt_delta(entry['over_seeds'])} | "
                     + (", ".join(f"s{k}: {fmt_delta(v)}" for k, v in sorted(entry["full"].items())) or "—") + " |")
    lines += ["", "## Information in z (the paper's claim: the ELBO's code collapses, MMD's does not)", ""]
    for method in METHODS:
        rows = [r for r in runs.values() if r["method"] == method and "latent" in r]
        if rows:
            lines.append(f"- {METHODS[method]['label']}: " + "; ".join(
                f"{r['task']}: I_q {r['latent']['mutual_information']:.3f} nats, {r['latent']['active_units']} active"
                f"{' (collapsed)' if r['collapsed'] else ''}" for r in rows))
    results = {"machine": cpu_label(), "cpus": record_cpus(out), "sizes": s, "paper": PAPER_NLL, "collapse_nats": COLLAPSE_NATS,
               "runs": {n: {k: v for k, v in r.items() if not k.startswith("_")} for n, r in runs.items()},
               "paired_mmd_minus_elbo": {k: {"seeds": {str(a): b for a, b in e["seeds"].items()},
                                             "full": {str(a): b for a, b in e["full"].items()},
                                             "over_seeds": e["over_seeds"]} for k, e in pairs.items()}}
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
