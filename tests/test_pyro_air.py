"""The package's entry point (pyro_air/__init__.py, ``console_main``): a Ctrl-C while the command is still
importing torch and pyro ends with one line and status 130, not a traceback of the import."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INTERRUPTED_IMPORT = """
import sys

class CtrlCAtImport:  # the user presses Ctrl-C while pyro is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "pyro":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlCAtImport())
import pyro_air
sys.exit(pyro_air.console_main())
"""


def test_ctrl_c_during_start_up_is_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # a command that computes imports pyro (``zoo list`` and the help no longer do)
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_IMPORT, "evaluate", "zoo:air-vae-mnist", "--max-points",
                           "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130
    # torch and pyro are imported by the command itself (the parser needs neither): one line either way
    assert proc.stderr in ("pyro-air: interrupted while starting; nothing was done\n", "pyro-air: interrupted\n")


def test_the_console_script_is_the_entry_point():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options.entry_points"]["console_scripts"].strip() == "pyro-air = pyro_air:console_main"
