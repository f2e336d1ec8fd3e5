"""Command-line options: options of `pyro-air train` that contradict each other.

Rows of the error table (docs/errors.md), run by tests/test_errors.py (tests/errors/__init__.py).
"""
import numpy as np

from tests.errors.table import Case, cli

TITLE = "Command-line options"


def _resume_and_overwrite(tmp, mp):
    return cli("train", "--resume", tmp, "--overwrite")


def _data_and_dataset(tmp, mp):
    np.save(tmp / "x.npy", np.zeros((10, 4)))
    return cli("train", "--data", tmp / "x.npy", "--dataset", "omniglot", "--run-dir", tmp / "run")


def _dynamic_binarization_of_grey_likelihood(tmp, mp):
    return cli("train", "--likelihood", "continuous-bernoulli", "--dynamic-binarization", "--run-dir", tmp / "run")


def _image_shape_numbers(tmp, mp):
    return cli("train", "--net", "conv", "--image-shape", "1", "3", "28", "28", "--run-dir", tmp / "run")


def _objective_without_particles(tmp, mp):
    return cli("train", "--objective", "miwae", "--num-particles", "8", "--run-dir", tmp / "run")


CASES = [
    Case("data-and-dataset", "`--data PATH` together with `--dataset NAME`", "exit 2",
         "pyro-air: error: --data …/x.npy and --dataset omniglot both name the data; give one", _data_and_dataset),
    Case("dynamic-binarization-grey-likelihood", "`--dynamic-binarization` with a Gaussian or continuous-Bernoulli "
         "likelihood", "exit 2", "pyro-air: error: --dynamic-binarization draws binary pixels, for --likelihood "
         "bernoulli; the continuous-bernoulli likelihood models the grey levels themselves: drop "
         "--dynamic-binarization", _dynamic_binarization_of_grey_likelihood),
    Case("image-shape-numbers", "`--image-shape` with other than 2 (H W) or 3 (C H W) numbers", "exit 2",
         "pyro-air: error: --image-shape takes H W or C H W, got 4 numbers: 1 3 28 28", _image_shape_numbers),
    Case("objective-without-particles", "`--num-particles` for MIWAE / PIWAE (their samples are groups x group "
         "size)", "exit 2", "pyro-air: error: objective 'miwae' takes no num_particles (got 8); its samples per "
         "datapoint are num_groups x group_size: give them in its config, e.g. --objective-cfg '{\"num_groups\": 2, "
         "\"group_size\": 4}'", _objective_without_particles),
    Case("resume-and-overwrite", "`--resume` and `--overwrite` together", "exit 2",
         "pyro-air: error: --resume continues a run and --overwrite moves it aside: give one of them",
         _resume_and_overwrite),
]
