"""A zoo export killed at a chosen rename, for the export kill tests (tests/test_zoo_exporting.py).

    python -m tests.zoo_export_worker ZOO RUN_FILE NAME SEED N before|after

Runs ``pyro_air.zoo.export(RUN_FILE, NAME, root=ZOO, seed=SEED)`` with ``os.replace`` wrapped: at its
N-th call (1: the weight file's rename, 2: the manifest's) the process ends with ``os._exit(137)``
either before the rename or right after it - no ``finally`` block, no clean-up, as under ``kill -9``.
``N = 0`` kills right after the manifest's rename, before the old file is removed (the same point as
``2 after``, reached through the removal function instead). Deterministic: no timing.
"""
import os
import sys

import torch

torch.set_num_threads(1)

from pyro_air.zoo import exporting  # noqa: E402


def main(argv):
    root, run, name, seed, target, when = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5]
    real_replace, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == target and when == "before":
            os._exit(137)
        real_replace(src, dst, *args, **kwargs)
        if len(calls) == target and when == "after":
            os._exit(137)

    os.replace = replace
    if target == 0:
        exporting.remove_unlisted_files = lambda *a, **k: os._exit(137)
    exporting.export(run, name, description="re-exported", command="tests/zoo_export_worker.py", budget={},
                     test_numbers={}, check_points=5, check_samples=10, seed=seed, root=root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
