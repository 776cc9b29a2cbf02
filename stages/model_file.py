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
import math
import pickle
import zipfile
from pathlib import Path

import numpy as np

from stages.errors import UserError
from stages.io import check_regular_file

STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64, "IntStorage": np.int32}
ARCH_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
# data.pkl holds the card's plain data: feature names, categories, scaling. Far larger is no file of ours.
MOST_PICKLE_BYTES = 64 << 20
MOST_ENTRIES = 10_000


class _Storage:
    """A storage as the pickle declares it, its bytes not read: for checking sizes before allocating them."""

    def __init__(self, dtype: np.dtype, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


class _Shape:
    """A tensor as the pickle declares it: its storage, offset and shape, nothing read or allocated."""

    def __init__(self, storage: _Storage, offset: int, size) -> None:
        self.storage, self.offset, self.shape = storage, offset, tuple(size)


def _rebuild_tensor(storage, offset: int, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2's array: `size` elements of the storage from `offset`, by `stride`."""
    if isinstance(storage, _Storage):
        return _Shape(storage, offset, size)
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=[s * item for s in stride])
    return np.array(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, folder: str, order: str, data: bytes, shapes_only: bool) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.folder, self.order, self.shapes_only = archive, folder, order, shapes_only

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
        if kind != "storage" or not isinstance(dtype, np.dtype) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"unknown storage {pid!r}")
        if self.shapes_only:
            return _Storage(dtype, str(key), numel)
        return np.frombuffer(self.archive.read(f"{self.folder}/data/{key}"), dtype=dtype, count=numel)


class _Misfit(ValueError):
    """The file's parts do not fit together (said in the message)."""


def expected_shapes(arch: dict) -> dict[str, tuple[int, ...]]:
    """The state_dict's tensor shapes that architecture `arch` (models.architecture) has."""
    n = arch.get("n_features")
    if not isinstance(n, int) or n < 1:
        raise _Misfit(f"n_features {n!r} is not a count")
    if arch.get("kind") == "linear":
        return {"weight": (n,), "bias": (1,)}
    hidden = arch.get("hidden")
    if not (isinstance(hidden, list) and hidden and all(isinstance(h, int) and h >= 1 for h in hidden)):
        raise _Misfit(f"hidden {hidden!r} is not a list of layer sizes")
    shapes, width = {}, n
    for position, size in enumerate([*hidden, 1]):
        shapes[f"layers.{2 * position}.weight"], shapes[f"layers.{2 * position}.bias"] = (size, width), (size,)
        width = size
    return shapes


def _check_sizes(archive: zipfile.ZipFile, folder: str, saved) -> int:
    """That the declared tensors are the ones the declared architecture has, each storage exactly its tensor
    and each stored as that many bytes; returns the weights' bytes. Nothing large is read or allocated."""
    if not isinstance(saved, dict) or not isinstance(saved.get("architecture"), dict):
        raise _Misfit("it has no architecture")
    arch, state = saved["architecture"], saved.get("state_dict")
    if not isinstance(state, dict):
        raise _Misfit("it has no state_dict")
    wanted = expected_shapes(arch)
    if set(state) != set(wanted):
        raise _Misfit(f"its weights are {', '.join(sorted(state))}; the architecture has {', '.join(sorted(wanted))}")
    total = 0
    for name, shape in wanted.items():
        tensor = state[name]
        if not isinstance(tensor, _Shape):
            raise _Misfit(f"{name} is not a tensor")
        if tensor.shape != shape:
            raise _Misfit(
                f"{name} is {' x '.join(map(str, tensor.shape))}, the architecture says {' x '.join(map(str, shape))}"
            )
        storage = tensor.storage
        if storage.dtype.newbyteorder("=") != ARCH_DTYPES.get(arch.get("dtype", "float32")):
            raise _Misfit(f"{name} is {storage.dtype.name}, the architecture says {arch.get('dtype', 'float32')}")
        numel = math.prod(shape)
        stored = archive.getinfo(f"{folder}/data/{storage.key}").file_size
        if tensor.offset != 0 or storage.numel != numel or stored != numel * storage.dtype.itemsize:
            raise _Misfit(f"{name}'s storage holds {stored} bytes for {numel} values")
        total += stored
    return total


def _open_archive(archive: zipfile.ZipFile) -> tuple[str, str, bytes]:
    """(folder, byte order, data.pkl's bytes) of torch.save's archive, after the checks that keep a small file
    from standing for a large one: torch.save stores its entries uncompressed, so a compressed one is not
    ours (3.9 MB deflated can inflate to 4.2 GB), and data.pkl is small."""
    entries = archive.infolist()
    if len(entries) > MOST_ENTRIES or any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise _Misfit("its entries are compressed or too many; torch.save stores them as they are")
    pickled = next(entry for entry in entries if entry.filename.endswith("/data.pkl"))
    if pickled.file_size > MOST_PICKLE_BYTES:
        raise _Misfit(f"its data.pkl is {pickled.file_size:,} bytes")
    folder = pickled.filename[: -len("/data.pkl")]
    names = archive.namelist()
    order = archive.read(f"{folder}/byteorder").decode() if f"{folder}/byteorder" in names else "little"
    return folder, order, archive.read(pickled)


def _read(path: str | Path, shapes_only: bool):
    check_regular_file(path, "run `dvc repro` first, or name a model file written by this pipeline")
    not_ours = f"{path}: not a model file written by this pipeline"
    try:
        with zipfile.ZipFile(path) as archive:
            folder, order, data = _open_archive(archive)
            declared = _Unpickler(archive, folder, order, data, shapes_only=True).load()
            size = _check_sizes(archive, folder, declared)
            if shapes_only:
                return size
            return _Unpickler(archive, folder, order, data, shapes_only=False).load()
    except _Misfit as err:
        raise UserError(f"{not_ours} (its parts do not fit together: {err})") from None
    except (zipfile.BadZipFile, StopIteration, KeyError, pickle.UnpicklingError, ValueError, EOFError, TypeError,
            AttributeError) as err:  # fmt: skip
        raise UserError(f"{not_ours} ({type(err).__name__})") from None


def check_model_file(path: str | Path) -> int:
    """The bytes of a model file's weights, after checking, without reading them, that its tensors are the
    ones its architecture declares (torch.load would allocate what the file declares, then fail)."""
    return _read(path, shapes_only=True)


def read_model_file(path: str | Path) -> dict:
    """What train saved in a model file, its tensors as numpy arrays; a file this pipeline did not write is a
    UserError naming it."""
    return _read(path, shapes_only=False)
