"""pyro_air.cli.main: parsing needs no torch. `pyro-air --help`, `pyro-air COMMAND --help`, an
argument error and `pyro-air zoo list` answer before torch, Pyro or torch._dynamo are imported
(issue 36: they used to wait for a 2-65 s start-up). Checked on sys.modules after the command, in a
fresh interpreter, never on seconds."""
import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from pyro_air.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(m for m in ("torch", "pyro", "numpy", "torch._dynamo", "pyro_air.runs") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def probe(*argv):
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=False)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report["code"], report["heavy"], out.stdout, out.stderr


@pytest.mark.parametrize("argv", [
    ["--help"], ["train", "--help"], ["evaluate", "--help"], ["diagnose", "--help"], ["quickstart", "--help"],
    ["compare", "--help"], ["zoo", "--help"], ["zoo", "list"],
])
def test_help_and_zoo_list_answer_without_torch(argv):
    code, heavy, out, _ = probe(*argv)
    assert code == 0 and out.strip()
    assert heavy == [], f"pyro-air {' '.join(argv)} imported {heavy}"


@pytest.mark.parametrize("argv, says", [
    (["trian"], "invalid choice: 'trian'"),
    (["train", "--epochs", "ten"], "invalid int value: 'ten'"),
    (["compare", "--thread", "1", "--nope"], "unrecognized arguments: --nope"),
    (["evaluate"], "the following arguments are required: checkpoint"),
])
def test_an_argument_error_answers_without_torch(argv, says):
    code, heavy, _, err = probe(*argv)
    assert code == 2 and says in err
    assert heavy == []


def test_a_command_that_computes_imports_what_it_uses_and_no_dynamo(tmp_path):
    """`train` without --compile imports torch but not torch._dynamo (compilation only when asked for);
    here it fails early on a missing data file, after its modules are loaded."""
    code, heavy, _, err = probe("train", "--data", str(tmp_path / "missing.npz"), "--run-dir", str(tmp_path / "r"))
    assert code == 2 and "missing.npz" in err
    assert "torch" in heavy and "torch._dynamo" not in heavy


def test_every_command_resolves_to_a_function():
    from pyro_air.cli import commands, zoo_commands
    from pyro_air.cli.main import build_parser

    parser = build_parser()
    for argv in (["train"], ["evaluate", "x"], ["diagnose", "x"], ["quickstart"], ["compare"], ["zoo", "list"],
                 ["zoo", "show", "x"]):
        name = parser.parse_args(argv).func.__name__
        assert callable(getattr(commands, name, None) or getattr(zoo_commands, name)), argv
