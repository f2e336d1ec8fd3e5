"""Markdown tables for RESULTS.md from results/figure4/figure4_*.jsonl and results/mnist/mnist_results.jsonl.

    python experiments/avo/report.py
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Table 1a of the AVO paper (MNIST): -L_tr, -L_va, -log p_va, -L_te, -log p_te
PAPER = {"T=0 a=0": [84.69, 92.37, 87.49, 92.40, 87.50], "T=5 a=0": [84.51, 92.37, 87.63, 92.48, 87.62],
         "T=5 a=0.2": [86.15, 90.00, 86.06, 90.01, 86.06], "T=5 a=0.5": [87.02, 90.22, 86.12, 90.26, 86.12]}


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def figure4_table() -> str:
    data = defaultdict(list)
    for path in sorted((HERE / "results" / "figure4").glob("figure4_*.jsonl")):
        for r in rows(path):
            data[(r["updates"], r.get("lr", 1e-3), r["energy"], r["anneal_fraction"], r["method"])].append(r["neg_kl"])
    budgets = sorted({k[:2] for k in data})
    out = []
    for updates, lr in budgets:
        out.append(f"\n{updates} updates, lr {lr}, batch 64, T = 10 (mean over trials; trials in brackets)\n")
        out.append("| energy | anneal fraction | HVI-ELBO (n) | HVI-AVO (a) | a - n |")
        out.append("|---|---|---|---|---|")
        keys = sorted({k[2:4] for k in data if k[:2] == (updates, lr)})
        for energy, frac in keys:
            n = data.get((updates, lr, energy, frac, "elbo"), [])
            a = data.get((updates, lr, energy, frac, "avo"), [])
            mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
            out.append(f"| {energy} | {frac:.1f} | {mean(n):.3f} [{len(n)}] | {mean(a):.3f} [{len(a)}] | "
                       f"{mean(a) - mean(n):+.3f} |")
    return "\n".join(out)


def mnist_table() -> str:
    rs = rows(HERE / "results" / "mnist" / "mnist_results.jsonl")
    if not rs:
        return "(no MNIST results yet)"
    out = ["| run | -L tr | -L va | -log p va | -L te | -log p te | gen gap | var gap | train s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        v = [r["neg_elbo_train"][0], r["neg_elbo_valid"][0], r["nll_valid"][0], r["neg_elbo_test"][0],
             r["nll_test"][0]]
        gen, var = v[3] - v[0], v[3] - v[4]
        p = PAPER[r["run"]]
        out.append(f"| {r['run']} (ours) | " + " | ".join(f"{x:.2f}" for x in v)
                   + f" | {gen:.2f} | {var:.2f} | {r['train_seconds']:.0f} |")
        out.append(f"| {r['run']} (paper) | " + " | ".join(f"{x:.2f}" for x in p)
                   + f" | {p[3] - p[0]:.2f} | {p[3] - p[4]:.2f} | |")
    se = rs[0]["nll_test"][1]
    out.append(f"\nStandard errors of the per-split means are about {se:.1f} nats (n = {rs[0]['eval_size']}).")
    return "\n".join(out)


if __name__ == "__main__":
    print("## Figure 4\n" + figure4_table() + "\n\n## Table 1a\n\n" + mnist_table())
