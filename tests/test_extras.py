"""Optional packages (pyro_air/core/extras.py): found without importing them, and an error that is
both an ImportError and a one-line CLI error, naming the feature and the install command."""
import sys

import pytest
import torch

from pyro_air.support import extras


def test_installed_looks_without_importing():
    assert extras.installed("json")
    assert not extras.installed("pyro_air_no_such_package")
    assert not extras.installed("pyro_air_no_such_package.sub")  # a missing parent is "not installed" too
    assert "pyro_air_no_such_package" not in sys.modules


def test_require_names_the_feature_and_the_install_command():
    extras.require("json", "reading JSON", "pip install json")  # installed: nothing happens
    with pytest.raises(extras.MissingExtraError) as err:
        extras.require("pyro_air_no_such_package", "the feature F", "pip install it")
    assert str(err.value) == ("the feature F needs the optional package pyro_air_no_such_package, which is not "
                              "installed; pip install it")
    assert isinstance(err.value, ImportError) and isinstance(err.value, RuntimeError)


def test_torchvision_advice_keeps_this_torch():
    version = torch.__version__.split("+")[0]
    assert extras.torchvision_install_advice().startswith(f"pip install torch=={version} torchvision")
