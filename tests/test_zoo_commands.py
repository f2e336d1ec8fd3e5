"""pyro_air.cli.zoo_commands: `zoo list` fits a terminal, `zoo show` summarizes, and `evaluate zoo:NAME`
without --num-samples is the manifest's quick check, followed by the full job's command and time."""
import argparse

import pytest

from pyro_air import zoo
from pyro_air.cli import main
from pyro_air.cli.zoo_commands import (
    FULL_NUM_SAMPLES,
    diagnose_plan,
    full_evaluation_estimate,
    quick_evaluation,
    show_entry,
    zoo_table,
)

SHIPPED = "air-vae-mnist"


def evaluate_args(checkpoint, **given):
    return argparse.Namespace(**{"checkpoint": checkpoint, "num_samples": None, "max_points": None, "splits": ["test"],
                                 "seed": None, "distributed": False, **given})


def test_evaluate_a_zoo_model_without_num_samples_is_the_manifest_check(capsys):
    args = evaluate_args(f"zoo:{SHIPPED}")
    check = quick_evaluation(args)
    assert check == zoo.entry(SHIPPED)["check"]
    assert (args.max_points, args.num_samples, args.seed, args.splits) == (100, 1000, 0, ["test"])
    line = capsys.readouterr().out
    assert f"recorded -log p(x) {check['neg_log_px']:.2f}" in line
    assert f"pyro-air evaluate zoo:{SHIPPED} --num-samples {FULL_NUM_SAMPLES}" in line


@pytest.mark.parametrize("checkpoint, given, samples", [
    ("runs/vae", {}, FULL_NUM_SAMPLES),                           # a run directory: IWAE-5000 as before
    (f"zoo:{SHIPPED}", {"num_samples": 200}, 200),                # asked for: as asked
    (f"zoo:{SHIPPED}", {"distributed": True}, FULL_NUM_SAMPLES),  # sharded: the full job
])
def test_anything_else_evaluates_as_asked(checkpoint, given, samples, capsys):
    args = evaluate_args(checkpoint, **given)
    assert quick_evaluation(args) is None
    assert args.num_samples == samples and args.max_points is None and capsys.readouterr().out == ""


def test_the_full_job_estimate_scales_the_checks_time_by_images_and_samples():
    args = evaluate_args(f"zoo:{SHIPPED}", max_points=100, num_samples=1000)
    line = full_evaluation_estimate(args, seconds=6.0)  # x 100 images x 5 samples = 3000 s
    assert "would take about 50 min at this speed" in line and line.endswith(f"--num-samples {FULL_NUM_SAMPLES}")


def test_diagnose_names_its_work_and_a_quick_command_for_zoo_models():
    args = argparse.Namespace(checkpoint=f"zoo:{SHIPPED}", max_points=1000, num_samples=1000, split="test")
    assert diagnose_plan(args).endswith(f"pyro-air diagnose zoo:{SHIPPED} --max-points 300")
    assert diagnose_plan(argparse.Namespace(checkpoint=f"zoo:{SHIPPED}", max_points=300, num_samples=1000,
                                            split="test")) is None  # already the quick look
    assert diagnose_plan(argparse.Namespace(checkpoint="runs/vae", max_points=1000, num_samples=1000, split="test")) is None


def test_zoo_list_fits_120_columns_and_show_is_a_summary():
    entries = [zoo.entry(name) for name in zoo.names()]
    table = zoo_table(entries)
    assert max(map(len, table.splitlines())) <= 120  # issue 36: about 230 wide
    lines = table.splitlines()
    assert lines[0] == "check: first 100 test images by IWAE-1000; test: all 10000 test images by IWAE-5000"
    row = next(line.split() for line in lines if line.startswith(SHIPPED + " "))
    assert row[-4:] == ["90.65", "7.65", "5.5", "MB"]  # air-vae-mnist's recorded test -log p(x), gap, MB
    avo = next(line for line in lines if line.startswith("avo-hvi-avo-mnist "))
    assert "hierarchical / kl-warmup(avo)" in avo and " 5.10 " in avo  # the wrapped objective; var gap as the gap
    shown = show_entry(zoo.entry(SHIPPED))
    assert len(shown.splitlines()) <= 16 and f"pyro-air evaluate zoo:{SHIPPED}" in shown
    assert "nll_iwsvi 88.38 ± 0.77 (test_images 1000" in shown  # a record's own image count stays with it


def test_a_model_measured_another_way_is_marked_and_the_way_noted_below_the_table():
    """The commonest check and test protocol is said once above the table; another one marks its cells."""
    entries = [zoo.entry(SHIPPED), zoo.entry("air-wni-mnist"), zoo.entry(SHIPPED)]
    entries[2] = {**entries[2], "name": "other", "check": {**entries[2]["check"], "num_samples": 100},
                  "test_numbers": {"test_images": 1000, "nll_iwae1000": {"mean": 87.25, "stderr": 0.67}}}
    lines = zoo_table(entries).splitlines()
    assert lines[0] == "check: first 100 test images by IWAE-1000; test: all 10000 test images by IWAE-5000"
    other = next(line for line in lines if line.startswith("other "))
    assert f"{entries[2]['check']['neg_log_px']:.2f} [a]" in other and "87.25 [b]" in other
    assert lines[-2:] == ["[a] check: first 100 test images by IWAE-100",
                          "[b] test: first 1000 test images by IWAE-1000"]
    assert not any("[" in line for line in lines if line.startswith(SHIPPED + " "))


@pytest.mark.slow
def test_evaluate_zoo_name_reproduces_the_manifest_check(capsys):
    """The quick default is the check: the recorded value to float rounding (tests/test_zoo.py: 0.05 nats)."""
    assert main(["evaluate", f"zoo:{SHIPPED}", "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("test (n=100)"))
    assert abs(float(row.split()[2]) - zoo.entry(SHIPPED)["check"]["neg_log_px"]) < 0.05
    assert "would take about" in out
