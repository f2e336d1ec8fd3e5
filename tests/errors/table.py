"""What a row of the error table is, and how a trigger's result is read: the machinery every surface's
cases (tests/errors/<surface>.py) use. The table itself and docs/errors.md: tests/errors/__init__.py."""
from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Case:
    id: str
    situation: str
    error: str     # the exception class a Python caller gets, or "exit 2" for a pyro-air command
    message: str   # as the user sees it; … = a part that depends on the call
    trigger: Callable


@dataclass
class CliFailure(Exception):
    code: int
    stderr: str


def raised(fn, *args, **kwargs) -> BaseException:
    try:
        fn(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - the exception is the result
        return err
    raise AssertionError(f"{getattr(fn, '__name__', fn)} raised nothing")


def cli(*argv) -> CliFailure:
    from pyro_air.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return CliFailure(code, err.getvalue())


def actual_message(err: BaseException) -> str:
    if isinstance(err, CliFailure):
        return err.stderr.strip()
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)


def matches(documented: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in documented.split("…"))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def expected_exit(case: Case) -> int | None:
    if case.error == "exit 2":
        return 2
    if case.error.startswith("exit 130"):
        return 130
    return None
