"""The command line end to end at a tiny budget: train, checkpoint, evaluate, errors."""
import subprocess
import sys

from pyro_air.cli import main


def test_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--train-size", "200", "--epochs", "1", "--batch-size", "50", "--z-dim", "4",
                 "--hidden", "32", "--valid-size", "50", "--valid-num-samples", "5", "--no-progress",
                 "--run-dir", str(run)])
    assert code == 0
    assert (run / "checkpoint.pt").exists() and (run / "best.pt").exists() and (run / "metrics.jsonl").exists()
    code = main(["evaluate", str(run), "--num-samples", "20", "--max-points", "30", "--splits", "test", "train",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "-log p(x)" in out and "test (n=30)" in out and "train (n=30)" in out


def test_unknown_guide_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["train", "--guide", "nope", "--epochs", "1", "--run-dir", str(tmp_path)])
    assert code == 2
    assert "known guides are" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "pyro_air", "--help"], check=False, capture_output=True, text=True)
    assert out.returncode == 0 and "quickstart" in out.stdout


def _help(capsys, *argv) -> str:
    import pytest

    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_help_describes_the_command_and_every_option(capsys):
    from pyro_air import guides, infer
    from pyro_air.cli.main import build_parser

    top = _help(capsys)
    assert "The ``pyro-air`` command." not in top
    assert "amortized variational inference" in top and "pyro-air compare" in top
    train = " ".join(_help(capsys, "train").split())  # wrapped lines joined
    for name in guides.GUIDES.names() + infer.OBJECTIVES.names():
        assert f" {name}," in train or f" {name} " in train, name
    assert "--epochs EPOCHS passes over the training set (default: 10)" in train
    assert "(default: gaussian)" in train and "(default: elbo)" in train
    # issue 22: likelihoods, nets, torchvision data sets, image shapes with channels, TensorBoard
    assert "{bernoulli,continuous-bernoulli,gaussian}" in train and "{mlp,conv}" in train
    assert "torchvision:NAME (e.g. torchvision:MNIST" in train and "C H W for C channels" in train
    assert "--tensorboard also log each epoch's metrics" in train and "pip install tensorboard" in train
    assert "(the run of tutorial 01)" in " ".join(_help(capsys).split())
    parser = build_parser()
    for command, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            assert action.help, f"pyro-air {command} {action.option_strings} has no help text"


def test_threads_and_precision_options_reach_the_train_config():
    """issue 17: --threads / --precision; without --threads, threads.default_threads()."""
    from pyro_air.cli.main import build_parser
    from pyro_air.cli.options import config_from_args
    from pyro_air.backend.threads import default_threads
    args = build_parser().parse_args(["train", "--run-dir", "r", "--threads", "1", "--precision", "bf16"])
    config = config_from_args(args)
    assert (config.threads, config.precision) == (1, "bf16")
    config = config_from_args(build_parser().parse_args(["train", "--run-dir", "r"]))
    assert (config.threads, config.precision, config.flush_denormals) == (default_threads(), "float32", True)
    for command in (["compare"], ["evaluate", "runs/x"]):
        assert build_parser().parse_args([*command, "--threads", "1"]).threads == 1


def test_an_interrupted_compare_says_how_to_run_it_again_in_cli_terms():
    """issue 36: it suggested fit(..., resume=True), a Python hint from a command without --resume."""
    import signal

    from pyro_air.cli.commands import no_resume_hint
    from pyro_air.train.signals import TrainingInterrupted

    stop = TrainingInterrupted(signal.SIGINT, 12, 340, "runs/compare/dvae/checkpoint.pt")
    assert no_resume_hint("compare", stop, "DVAE ") == (
        "pyro-air: compare interrupted at DVAE epoch 12 step 340; `pyro-air compare` has no --resume: run the same "
        "command again with --overwrite (the partial runs are moved aside)")


def test_resume_help_names_every_option_a_resume_may_change():
    """issue 36: it omitted options the README allows (--threads, --compile, --tensorboard ...)."""
    import re

    from pyro_air.cli.main import build_parser
    from pyro_air.train import RESUME_MAY_CHANGE

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings}
    resume = next(a for a in train._actions if "--resume" in a.option_strings).help
    named = set(re.findall(r"--[a-z-]+", resume.split("only these may be changed:")[1]))
    expected = {("--no-progress" if k == "progress" else f"--{k.replace('_', '-')}")
                for k in (key.rsplit(".", 1)[-1] for key in RESUME_MAY_CHANGE)}
    assert named == expected & flags
