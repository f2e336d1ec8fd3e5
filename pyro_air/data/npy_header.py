"""What a .npy / .npz file declares, checked before it is read.

A .npy file (and each array of a .npz archive) starts with a header that declares the array's shape
and dtype; ``numpy.load`` allocates that many bytes before it reads the data. A 4 KiB file whose
header declares (10^9, 784) therefore makes ``numpy.load`` ask for 6 TB and fail with a multi-line
``_ArrayMemoryError``. ``check_declared_sizes(path)`` reads only the headers and refuses, in one
line, an array that declares more bytes than the file holds (truncated, or a wrong header) or more
than the machine's memory.
"""
from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from pyro_air.core.validation import physical_memory
from pyro_air.data.errors import DataFileError


def read_header(f) -> tuple:
    """(shape, dtype) from the header of an open .npy stream (its data are not read)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return shape, dtype


def declared_arrays(path: Path) -> list:
    """[(name, shape, dtype, declared bytes, bytes the file holds for it)] for a .npy or .npz file."""
    if path.suffix == ".npy":
        with open(path, "rb") as f:
            shape, dtype = read_header(f)
            held = path.stat().st_size - f.tell()
        return [("x", shape, dtype, math.prod(shape) * dtype.itemsize, held)]
    arrays = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as f:
                shape, dtype = read_header(f)
                held = info.file_size - f.tell()
            arrays.append((info.filename[:-4], shape, dtype, math.prod(shape) * dtype.itemsize, held))
    return arrays


def check_declared_sizes(path) -> None:
    """Refuse (DataFileError, one line) a .npy / .npz file with an array that declares more bytes than the
    file holds for it, or than this machine's memory; any other file, or one whose header numpy cannot
    read, is left to the loader (which says what is wrong with it)."""
    path = Path(path)
    if path.suffix not in (".npy", ".npz") or not path.is_file():
        return
    try:
        arrays = declared_arrays(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        return
    memory = physical_memory()
    for name, shape, dtype, declared, held in arrays:
        what = f"{path}: array {name!r} declares shape {tuple(shape)} of {dtype} ({declared / 1e9:.3g} GB)"
        if declared > held:
            raise DataFileError(f"{what} but the file holds {held} bytes of it: it is truncated or its header is "
                                "wrong; save the array again with numpy.save / numpy.savez")
        if memory is not None and declared > memory:
            raise DataFileError(f"{what}, more than this machine's {memory / 1e9:.3g} GB of memory; train on a subset "
                                "(e.g. numpy.save(path, x[:100000]))")
