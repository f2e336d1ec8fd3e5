"""Optional packages: TensorBoard and torchvision.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""

from tests.errors.table import Case, cli, raised

TITLE = "Optional packages"


def _without(mp, module):
    from pyro_air.support import extras

    real = extras.installed
    mp.setattr(extras, "installed", lambda name: name != module and real(name))


def _tensorboard_missing(tmp, mp):
    _without(mp, "tensorboard")
    return cli("train", "--tensorboard", "--run-dir", tmp / "run")


def _torchvision_missing(tmp, mp):
    from pyro_air import data

    _without(mp, "torchvision")
    return raised(data.load, "torchvision:MNIST", "train", data_dir=tmp)


def _torchvision_files_missing(tmp, mp):
    """torchvision installed (a stand-in with its MNIST's behaviour), its files not under the directory."""
    import types

    from pyro_air import data
    from pyro_air.support import extras
    from pyro_air.data import vision

    class MNIST:
        def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
            raise RuntimeError("Dataset not found. You can use download=True to download it")

    real = extras.installed
    mp.setattr(extras, "installed", lambda name: name == "torchvision" or real(name))
    mp.setattr(vision, "torchvision_datasets", lambda: types.SimpleNamespace(MNIST=MNIST))
    return raised(data.load, "torchvision:MNIST", "train", data_dir=tmp / "data")


def _torchvision_unknown_name(tmp, mp):
    """torchvision installed (a stand-in holding MNIST and CIFAR10), a name it does not hold, from the CLI."""
    import types

    from pyro_air.support import extras
    from pyro_air.data import vision

    class MNIST:
        pass

    class CIFAR10:
        pass

    real = extras.installed
    mp.setattr(extras, "installed", lambda name: name == "torchvision" or real(name))
    mp.setattr(vision, "torchvision_datasets", lambda: types.SimpleNamespace(MNIST=MNIST, CIFAR10=CIFAR10))
    return cli("train", "--data", "torchvision:mnist", "--data-dir", tmp, "--run-dir", tmp / "run")


def _tensorboard_linked(tmp, mp):
    from pyro_air.support import extras
    from pyro_air.train import tensorboard_log
    mp.setattr(extras, "installed", lambda module: True)
    mp.setattr(tensorboard_log, "summary_writer_class", lambda: lambda **kw: None)  # never reached
    (tmp / "run").mkdir()
    (tmp / "elsewhere").mkdir()
    (tmp / "run" / "tensorboard").symlink_to(tmp / "elsewhere")
    return raised(tensorboard_log.open_writer, tmp / "run")


CASES = [
    Case("tensorboard-missing", "`--tensorboard` (`TrainConfig(tensorboard=True)`) without the tensorboard package",
         "exit 2", "pyro-air: error: TensorBoard logging (--tensorboard, TrainConfig(tensorboard=True)) needs the "
         "optional package tensorboard, which is not installed; pip install tensorboard (or pip install -e "
         "'.[tensorboard]')", _tensorboard_missing),
    Case("tensorboard-dir-linked", "`--tensorboard` where `RUN_DIR/tensorboard` is a symbolic link (or a file)",
         "RunDirError", "…/run/tensorboard is a symbolic link (to …/elsewhere); pyro-air writes TensorBoard's event "
         "files only inside the run directory: remove the link (its target is not touched)", _tensorboard_linked),
    Case("torchvision-missing", "`--data torchvision:NAME` without torchvision", "MissingExtraError",
         "torchvision:MNIST (torchvision's MNIST data set) needs the optional package torchvision, which is not "
         "installed; pip install torch==… torchvision (naming torch's version keeps pip from replacing your torch "
         "…; or pip install torch==… -e '.[torchvision]')", _torchvision_missing),
    Case("torchvision-files-missing", "`--data torchvision:NAME` whose files are not under `--data-dir`",
         "DataFileError", "torchvision's MNIST found no usable files under …/data (Dataset not found. You can use "
         "download=True to download it). Nothing is downloaded at run time: put the files there first, e.g. run "
         "torchvision.datasets.MNIST(root='…/data', download=True) once on a machine with internet access and copy "
         "that directory here (MNIST's are …/data/MNIST/raw/train-images-idx3-ubyte and its three siblings), or "
         "pass --data-dir (data_dir=) where they are", _torchvision_files_missing),
    Case("torchvision-unknown-name", "`--data torchvision:NAME` with a name torchvision.datasets does not hold (names "
         "are case-sensitive)", "exit 2", "pyro-air: error: torchvision.datasets has no data set 'mnist' (names are "
         "case-sensitive); known: CIFAR10, MNIST", _torchvision_unknown_name),
    Case("torchvision-empty-name", "`--data torchvision:` (no name)", "exit 2",
         "pyro-air: error: 'torchvision:' names no dataset; write torchvision:NAME, e.g. torchvision:MNIST",
         lambda tmp, mp: cli("train", "--data", "torchvision:", "--run-dir", tmp / "run")),
]
