"""``python -m tests.errors``: rewrite the tables of docs/errors.md from the cases (tests/errors/__init__.py)."""
from tests.errors import DOC, write_doc

print(f"{DOC}: {'rewritten' if write_doc() else 'already up to date'}")
