"""A restricted unpickler that accepts numpy arrays and nothing else.

``pickle.load`` on a file from a package can run arbitrary code; this unpickler refuses every
global except the three that a pickled numpy array needs.
"""
from __future__ import annotations

import io
import pickle

import numpy as np

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store an array's raw bytes
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that is not a numpy array type."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from a pickle: only numpy arrays are allowed. "
                "The file is not the expected dataset; reinstall it from its published source."
            )
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.empty(0))[0]  # numpy's own _reconstruct
        return getattr(np, name)


def load_numpy_pickle(data: bytes, encoding: str = "latin1"):
    """Unpickle ``data`` allowing only numpy arrays (and tuples/lists of them)."""
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
