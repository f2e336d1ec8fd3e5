"""Optional packages (setup.cfg's extras): whether one is installed, and the error that says what to
install when a feature needs it.

``require(module, feature, install)`` checks with ``importlib.util.find_spec`` - nothing is imported
or downloaded - and raises ``MissingExtraError`` naming the feature and the command that installs
the package. The error is an ``ImportError`` (what a Python caller expects) and a ``RuntimeError``
(so ``pyro-air`` reports it as a one-line error, exit 2).
"""
from __future__ import annotations

import importlib.util

import torch


class MissingExtraError(ImportError, RuntimeError):
    """An optional package a feature needs is not installed; the message says how to install it."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path), without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken module entry
        return False


def require(module: str, feature: str, install: str) -> None:
    """Raise ``MissingExtraError`` unless ``module`` is installed: "``feature`` needs ``module``,
    which is not installed; ``install``"."""
    if not installed(module):
        raise MissingExtraError(f"{feature} needs the optional package {module}, which is not installed; {install}")


def torchvision_install_advice() -> str:
    """How to install torchvision without replacing the installed torch: name torch's version in the
    same command, so pip picks the torchvision release built for it (each pins its torch exactly)."""
    version = torch.__version__.split("+")[0]
    return (f"pip install torch=={version} torchvision (naming torch's version keeps pip from replacing your "
            f"torch {version}; or pip install torch=={version} -e '.[torchvision]')")


TENSORBOARD_INSTALL = "pip install tensorboard (or pip install -e '.[tensorboard]')"
