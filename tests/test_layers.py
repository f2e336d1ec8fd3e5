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
