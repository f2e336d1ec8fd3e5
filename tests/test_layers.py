"""The layering of docs/design.md holds: the import-linter contract in .importlinter is kept, and
no module imports another module's private (leading-underscore) name."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pyro_air"


def test_the_layer_contract_is_kept():
    importlinter = pytest.importorskip("importlinter.cli")
    # lint_imports returns 0 when every contract is kept (it prints the report either way)
    assert importlinter.lint_imports(config_filename=str(ROOT / ".importlinter")) == 0


def _private_imports(path: Path, name: str):
    tree = ast.parse(path.read_text(), filename=name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyro_air"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield f"{name}:{node.lineno} imports {alias.name} from {node.module}"


def test_no_private_name_is_imported_across_modules():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in _private_imports(path, str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


def test_a_private_import_would_be_found(tmp_path):
    """The scan itself can fail: a file that imports a private name is reported."""
    bad = tmp_path / "probe.py"
    bad.write_text("import torch\nfrom pyro_air.core.scoring import _SPECIALIZED, owner\n")
    assert list(_private_imports(bad, "probe.py")) == ["probe.py:2 imports _SPECIALIZED from pyro_air.core.scoring"]


# Test files named for what they check across modules (docs/design.md, "Tests"); every other
# tests/test_<name>.py tests the module pyro_air/**/<name>.py, the package <name>, or (where a
# module name is ambiguous) pyro_air/<package>/<module>.py as tests/test_<package>_<module>.py.
CROSS_CUTTING = {
    "air_export_recipe_zoo": "experiments/air/export_recipe_zoo.py: a tiny recipe run enters a zoo with the worker's numbers",
    "air_fidelity": "experiments/air/fidelity.py (AIR issue 32's worker): its plan, specs, stage-2 choices, a tiny run",
    "avo_export_zoo": "experiments/avo/export_zoo.py: tiny Table 1a runs enter a zoo with the worker's numbers",
    "avo_transition_init": "experiments/avo/transition_init.py: a tiny run of every transition start, and its specs",
    "avo_table1a": "experiments/avo/table1a.py (AVO Table 1a's worker) at --tiny, and its resume after SIGTERM",
    "benchmarks": "the benchmark cases run and agree with each other (no timing)",
    "cuda": "the CUDA paths (skipped without a GPU; benchmarks/gpu_check.sh runs them where one exists)",
    "distributed_cli": "`torchrun ... -m pyro_air train/evaluate --distributed` end to end",
    "errors": "every row of docs/errors.md (the tables of tests/errors/)",
    "experiments": "the experiments/ layout: outputs in <topic>/results/<run>/, no log in git, "
                   "every path a RESULTS.md names exists",
    "model_matrix": "outside-style Pyro models (tests/outside_models.py) x every objective and evaluator: "
                    "stock Pyro's numbers, a closed form, or a one-line refusal",
    "carry_state": "experiments/carry_state.py (a plan worker's --carry): commits only unfinished tasks' resume files",
    "guide_matrix": "every registered guide x model x objective; direct scoring where claimed",
    "infovae_export_zoo": "experiments/infovae/export_zoo.py: tiny PixelCNN runs enter a zoo with the worker's numbers",
    "infovae_two_point": "pyro_air/toys/infovae_two_point.py (used by experiments/infovae/two_point.py) at a tiny "
                         "budget",
    "infovae_pixelcnn_table": "experiments/infovae/pixelcnn_table.py (InfoVAE Table 1's worker) at --tiny, and its resume",
    "layers": "this file: the layer contract, private imports, the test layout",
    "objectives": "every objective's loss, loss_and_grads and differentiable_loss agree; the bounds' order",
    "peers": "the benchmark's pythae peer wraps the same weights (skipped without pythae)",
    "plan_worker": "experiments/plan_worker.py (the resumable plan worker of experiments/): skip-if-done, --only, locks",
    "properties": "orderings the papers prove (ELBO <= IWAE-k <= log p(x), ...)",
    "pyro_idioms": "ordinary Pyro models: plate subsampling, plain functions",
    "readme": "the README's commands and claims",
    "reproducible": "same command, same numbers",
    "resume": "interrupted and resumed runs end bit-identical",
    "tutorials": "the notebooks run at a tiny budget",
}

# Modules without a test file of their own, each with the reason (docs/design.md, "Tests").
WITHOUT_TEST_FILE = {
    "pyro_air/__main__.py": "`python -m pyro_air`: calls console_main (tests/test_pyro_air.py), run by "
                            "tests/test_distributed_cli.py",
}


def _test_names() -> set:
    return {t.stem[len("test_"):] for t in (ROOT / "tests").glob("test_*.py")}


def test_every_test_file_is_named_for_a_module_or_listed_as_cross_cutting():
    modules = {p.stem for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    packages = {p.parent.name for p in PACKAGE.rglob("__init__.py")}
    qualified = {f"{p.parent.name}_{p.stem}" for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    unplaced = [t.name for t in sorted((ROOT / "tests").glob("test_*.py"))
                if t.stem[len("test_"):] not in modules | packages | qualified | set(CROSS_CUTTING)]
    assert unplaced == [], (f"{unplaced}: name each test file for the module it tests (tests/test_<module>.py) "
                            "or add it to CROSS_CUTTING in tests/test_layers.py with what it checks")
    stale = sorted(name for name in CROSS_CUTTING if not (ROOT / "tests" / f"test_{name}.py").exists())
    assert stale == [], f"CROSS_CUTTING lists test files that do not exist: {stale}"


def _test_files_for(module: Path, tests: set) -> list:
    """The test files that may hold ``module``'s tests: tests/test_<module>.py, tests/test_<package>_<module>.py,
    or, for a module of a subpackage whose tests are one suite, tests/test_<package>.py. Keyed by the file's
    stem and its folder's name only, so a module moved to another package keeps its tests' name."""
    package = module.parent.name
    names = [module.stem, f"{package}_{module.stem}"] + ([package] if module.parent != PACKAGE else [])
    return [f"tests/test_{name}.py" for name in names if name in tests]


def test_every_module_has_a_test_file():
    """The other direction: each pyro_air/**/<module>.py is tested in a file named for it (or its
    package's one suite), unless WITHOUT_TEST_FILE says why not."""
    tests = _test_names()
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    untested = [str(p.relative_to(ROOT)) for p in modules
                if not _test_files_for(p, tests) and str(p.relative_to(ROOT)) not in WITHOUT_TEST_FILE]
    assert untested == [], (f"{untested}: add tests/test_<module>.py (tests/test_<package>_<module>.py where the "
                            "name is ambiguous) with the module's own tests, or say in WITHOUT_TEST_FILE of "
                            "tests/test_layers.py why it has none")
    stale = sorted(path for path in WITHOUT_TEST_FILE
                   if not (ROOT / path).exists() or _test_files_for(ROOT / path, tests))
    assert stale == [], f"WITHOUT_TEST_FILE lists modules that are gone or have a test file now: {stale}"


def test_the_module_to_test_file_mapping_follows_a_module_that_moves():
    """Keyed by the file's stem (and its folder's name): a module moved to another package keeps its
    test file; a module of a name no test file has is reported."""
    tests = {"parallel", "diagnostics_report", "backend"}
    assert _test_files_for(PACKAGE / "elsewhere" / "parallel.py", tests) == ["tests/test_parallel.py"]
    assert _test_files_for(PACKAGE / "diagnostics" / "report.py", tests) == ["tests/test_diagnostics_report.py"]
    assert _test_files_for(PACKAGE / "backend" / "report.py", tests) == ["tests/test_backend.py"]
    assert _test_files_for(PACKAGE / "evaluate" / "report.py", tests) == []
    assert _test_files_for(PACKAGE / "runs.py", {"pyro_air"}) == []  # the library's own suite covers no module


# Packages whose __init__ only imports (docs/design.md, contract 4: a thing registers where it is
# defined). pyro_air/__init__.py (a warning filter) and zoo (lazy names without torch) are not on the list.
IMPORT_ONLY_INITS = ("backend", "core", "support", "data", "models", "guides", "infer", "train", "evaluate",
                     "diagnostics", "cli", "toys", "compare")


def _not_an_import(node) -> bool:
    docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    exports = isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
    return not (isinstance(node, (ast.Import, ast.ImportFrom)) or docstring or exports)


def test_these_package_init_files_only_import():
    found = [f"pyro_air/{package}/__init__.py:{node.lineno}" for package in IMPORT_ONLY_INITS
             for node in ast.parse((PACKAGE / package / "__init__.py").read_text()).body if _not_an_import(node)]
    assert found == [], f"register where you define (docs/design.md, contract 4); not an import: {found}"


OLD_PATHS = ("pyro_air.cli.compare", "pyro_air.cli.tutorial")  # re-exports for old code


def test_notebooks_experiments_and_tests_import_no_library_code_from_the_command_line():
    """The command line parses and calls (docs/design.md, "Layout"): what a notebook, an experiment or a
    test uses lives in the library (``pyro_air.compare``), not behind the old paths kept for old code.
    (Calling the command itself, ``pyro_air.cli.main``, is what tutorial 06 shows.)"""
    found = []
    for folder, pattern in (("tutorials", "*.ipynb"), ("experiments", "*.py"), ("benchmarks", "*.py"), ("tests", "*.py")):
        for path in sorted((ROOT / folder).rglob(pattern)):
            text = path.read_text()
            found += [f"{path.relative_to(ROOT)} imports {old}" for old in OLD_PATHS
                      if f"from {old} import" in text or f"import {old}" in text
                      or f"from {old.rsplit('.', 1)[0]} import {old.rsplit('.', 1)[1]}" in text]
    assert found == [], "\n".join(found)
