"""A model file (models/<name>.pt) read without torch: the stages that only need its numbers (`export`) must
not pay torch's import (seconds). Checked against torch 2.13 by tests/unit/test_model_file.py, which loads
the same files with torch.load and fails when torch's format moves.

torch.save writes a zip archive: `<folder>/data.pkl`, a pickle whose tensors are calls to
torch._utils._rebuild_tensor_v2 on storages named by persistent ids ('storage', <torch.FloatStorage>, key,
location, numel), each storage's bytes in `<folder>/data/<key>`, and `<folder>/byteorder`. Only the names
below are unpickled: anything else is refused, as torch.load(weights_only=True) refuses it.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from stages.errors import UserError
from stages.io import check_regular_file

STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64, "IntStorage": np.int32}


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_ignored) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2's array: `size` elements of the storage from `offset`, by `stride`."""
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=[s * item for s in stride])
    return np.array(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, folder: str, order: str, data: bytes) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.folder, self.order = archive, folder, order

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return np.dtype(STORAGES[name]).newbyteorder("<" if self.order == "little" else ">")
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unknown storage {pid!r}")
        return np.frombuffer(self.archive.read(f"{self.folder}/data/{key}"), dtype=dtype, count=numel)


def read_model_file(path: str | Path) -> dict:
    """What train saved in a model file, its tensors as numpy arrays; a file this pipeline did not write is a
    UserError naming it."""
    check_regular_file(path, "run `dvc repro` first, or name a model file written by this pipeline")
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
            folder = pickled[: -len("/data.pkl")]
            order = (
                archive.read(f"{folder}/byteorder").decode()
                if f"{folder}/byteorder" in archive.namelist()
                else "little"
            )
            return _Unpickler(archive, folder, order, archive.read(pickled)).load()
    except (zipfile.BadZipFile, StopIteration, KeyError, pickle.UnpicklingError, ValueError, EOFError) as err:
        raise UserError(f"{path}: not a model file written by this pipeline ({type(err).__name__})") from None
