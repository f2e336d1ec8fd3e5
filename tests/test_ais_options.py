"""pyro_air.cli.ais_options: the AIS / BDMC / gap options of `pyro-air evaluate` are all checked
before any work: an option that would be ignored, a gap decomposition that is 0 by construction, a
schedule larger than memory, a gap plot without a plot suffix; the plot's printed path is the file
written."""
from pathlib import Path

import pytest

from pyro_air.cli import build_parser, main
from pyro_air.cli import ais_options


def parsed(*options):
    return build_parser().parse_args(["evaluate", "runs/x", *options])


@pytest.mark.parametrize("options,message", [
    (["--ais-chains", "4"], "--ais-chains applies only with --ais-steps, which is not given, so it would be ignored; "
                            "add --ais-steps N (e.g. --ais-steps 500) or drop it"),
    (["--ais-from", "prior"], "--ais-from applies only with --ais-steps"),
    (["--ais-steps", "5", "--gap-steps", "20"], "--gap-steps applies only with --gaps, which is not given"),
    (["--ais-steps", "5", "--bdmc-points", "9"], "--bdmc-points applies only with --bdmc"),
    (["--ais-steps", "5", "--gap-plot", "g.png"], "--gap-plot applies only with --gaps"),
    (["--ais-steps", "5", "--gaps", "--gap-steps", "0"], "--gap-steps 0 leaves each q* at the encoder's q(z | x), so "
                                                          "the amortization gap would be 0 by construction; give "
                                                          "--gap-steps >= 1 (default 500)"),
    (["--ais-steps", str(10 ** 12)], "--ais-steps 1000000000000 needs about 4.8e+04 GB for its annealing schedule "
                                     "alone, more than half of this machine's"),
    (["--ais-steps", "5", "--gaps", "--gap-plot", "plots/gaps"], "--gap-plot plots/gaps: name the plot file with its "
                                                                 "format's suffix, one of .png, .pdf"),
])
def test_a_bad_combination_is_refused_before_any_work(options, message):
    with pytest.raises(ValueError) as info:
        ais_options.check_ais_arguments(parsed(*options), Path("runs/x"))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_defaults_and_good_combinations_pass():
    ais_options.check_ais_arguments(parsed())
    ais_options.check_ais_arguments(parsed("--ais-steps", "5", "--ais-chains", "4", "--bdmc", "--bdmc-points", "3",
                                           "--gaps", "--gap-steps", "5", "--gap-plot", "out.pdf"), Path("runs/x"))


def test_the_gap_plot_path_is_the_file_written(tmp_path):
    assert ais_options.gap_plot_path(parsed("--gap-plot", str(tmp_path))) == tmp_path / "gaps.png"  # a directory
    assert ais_options.gap_plot_path(parsed("--gap-plot", str(tmp_path / "g.svg"))) == tmp_path / "g.svg"
    assert ais_options.gap_plot_path(parsed(), tmp_path / "run") == tmp_path / "run" / "gaps.png"
    (tmp_path / "link.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(ValueError, match="link.png is a symbolic link"):
        ais_options.gap_plot_path(parsed("--gap-plot", str(tmp_path / "link.png")))


def test_the_cli_refuses_a_bad_plot_name_before_loading_anything(tmp_path, capsys):
    missing = tmp_path / "no-such-run"  # nothing is loaded: the refusal comes first
    assert main(["evaluate", str(missing), "--ais-steps", "5", "--gaps", "--gap-plot", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name the plot file with its format's suffix" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_options_need_no_torch_to_be_declared():
    """The one declaration of these options is importable before torch (``pyro-air evaluate --help``)."""
    import subprocess
    import sys

    code = ("import sys, argparse; from pyro_air.cli.ais_options import add_ais_arguments; "
            "p = argparse.ArgumentParser(); add_ais_arguments(p); print(len(p._actions), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["10", "False"]   # -h and the nine options
