"""experiments/avo/transition_init.py: every case trains and is measured, the files are written, and for
the plain VAE (whose q_0 is its guide) the two measurements are the same number."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "experiments" / "avo"), str(ROOT / "experiments")]

import transition_init  # noqa: E402


def test_a_tiny_comparison_writes_every_case(tmp_path):
    out = tmp_path / "t"
    assert transition_init.main(["--steps", "1", "--train-size", "100", "--valid-size", "4", "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())
    assert list(record["rows"]) == list(transition_init.CASES)
    vae = record["rows"]["VAE"]
    assert vae["steps"] == 1 and vae["valid_iwae20"] == vae["valid_iwae20_q0_alone"]
    table = (out / "table.md").read_text()
    assert all(f"| {label} |" in table for label in transition_init.CASES)


def test_the_near_identity_cases_ask_the_guide_for_that_start():
    guide, _, start = transition_init.CASES["HVI-ELBO, near identity (gate -4, std 0.05)"]
    cfg = transition_init.spec(guide, ("elbo", {}), start)["guide"]["cfg"]
    assert cfg["transition_gate_bias"] == -4.0 and cfg["transition_std"] == 0.05
