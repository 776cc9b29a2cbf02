"""The prepared split: what `prepare` writes into data/prepared and every later stage maps from disk.

No CSV reading here (that is stages/csv_input.py, prepare's alone) and no torch: `evaluate` and `plot`
import this module and must start fast.
"""

from __future__ import annotations

import io
import json
import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import UserError
from stages.paths import PREPARED_DIR

SPLIT_ARRAYS = ("X_train", "y_train", "X_test", "y_test")
CODE_ARRAYS = ("C_train", "C_test")  # with one-hot blocks: one int32 code per categorical column a row


@dataclass(frozen=True)
class Scaling:
    """Training-split mean and standard deviation of each feature and of the target."""

    x_mean: tuple[float, ...]
    x_std: tuple[float, ...]
    y_mean: float
    y_std: float

    def to_dict(self) -> dict:
        return {"x_mean": list(self.x_mean), "x_std": list(self.x_std), "y_mean": self.y_mean, "y_std": self.y_std}

    @classmethod
    def from_dict(cls, raw: dict) -> Scaling:
        return cls(tuple(raw["x_mean"]), tuple(raw["x_std"]), raw["y_mean"], raw["y_std"])


class Encoded:
    """Rows of encoded features held compactly, as prepare writes a table with categorical columns: `dense`
    (rows, d) float64, the features that are numbers (with their missing indicators), then one one-hot
    block per categorical column, of `widths`, each held as one int32 code per row in `codes` (rows, k):
    which feature of the block is 1 (its position in the block), -1 for none (a category that the
    training rows neither had nor grouped as infrequent). The blocks of 200 categories cost 4 bytes a row
    instead of 1,600.

    Indexing rows (a slice, indices, a mask) gives Encoded rows, a view where numpy gives one; X[i] and
    X[rows, columns] give dense values; np.asarray(X) the dense (rows, d + sum(widths)) float64 matrix."""

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, dense: np.ndarray, codes: np.ndarray, widths) -> None:
        self.dense, self.codes, self.widths = dense, codes, tuple(int(w) for w in widths)
        self.offsets = tuple(int(dense.shape[1] + sum(self.widths[:j])) for j in range(len(self.widths)))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dense), self.dense.shape[1] + sum(self.widths)

    def __len__(self) -> int:
        return len(self.dense)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            rows, columns = index
            return np.asarray(self[rows])[..., columns]
        if isinstance(index, (int, np.integer)):
            return np.asarray(Encoded(self.dense[index][None], self.codes[index][None], self.widths))[0]
        return Encoded(self.dense[index], self.codes[index], self.widths)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        n_rows, n_features = self.shape
        out = np.zeros((n_rows, n_features), dtype=np.float64)
        out[:, : self.dense.shape[1]] = self.dense
        flat = out.reshape(-1)
        for j, offset in enumerate(self.offsets):
            codes = np.asarray(self.codes[:, j], dtype=np.int64)
            rows = np.flatnonzero(codes >= 0)
            flat[rows * n_features + offset + codes[rows]] = 1.0
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclass(frozen=True)
class Split:
    """Train and test rows of a table (test may be empty), with the scaling the models must use."""

    features: tuple[str, ...]
    target: str
    X_train: np.ndarray | Encoded
    y_train: np.ndarray
    X_test: np.ndarray | Encoded
    y_test: np.ndarray
    scaling: Scaling | None
    transform: dict | None = None  # stages/columns.py's Transform.to_dict(), where the table needed one
    feature_columns: tuple[str, ...] | None = None  # the raw column each feature comes from (None: itself)

    def columns_of_features(self) -> tuple[str, ...]:
        """The raw column each encoded feature comes from, in the features' order."""
        return self.feature_columns or self.features


# Rows are assigned to the splits in groups of this many consecutive rows, each group drawing its own
# seeded random sample, so that `prepare` can split a table as it streams by, holding one group at a time.
# A table of at most this many rows is one group: a plain seeded permutation of its rows.
SPLIT_GROUP_ROWS = 1 << 20


def held_out_count(fraction: float, n_rows: int) -> int:
    """How many of n_rows rows a split holds out: ceil(fraction * n_rows)."""
    return math.ceil(fraction * n_rows) if fraction > 0 else 0


def held_out_in_group(
    group: int, size: int, fraction: float, seed: int, group_rows: int = SPLIT_GROUP_ROWS
) -> np.ndarray:
    """Positions (sorted, 0-based within the group) of the held-out rows of group `group`, which holds the
    table's rows group * group_rows onwards, `size` of them (group_rows, or fewer for the last). The groups'
    counts add up to held_out_count(fraction, n_rows) for the whole table, whatever its length."""
    start = group * group_rows
    n_held = min(size, held_out_count(fraction, start + size) - held_out_count(fraction, start))
    rng = np.random.default_rng(seed if group == 0 else [seed, group])
    return np.sort(rng.permutation(size)[:n_held])


def seeded_split(
    n_rows: int, fraction: float, seed: int, group_rows: int = SPLIT_GROUP_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): row indices, each in order; ceil(fraction * n_rows) rows held out at random, seeded,
    group by group (see SPLIT_GROUP_ROWS). prepare holds out the test split this way; train the validation
    rows of early stopping, from the training split (evaluate finds them again from the same fraction and
    seed)."""
    held = np.zeros(n_rows, dtype=bool)
    for group, start in enumerate(range(0, n_rows, group_rows)):
        size = min(group_rows, n_rows - start)
        held[start + held_out_in_group(group, size, fraction, seed, group_rows)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


class Moments:
    """Count, mean and population variance of a non-empty column, merged group by group (Chan et al.); one
    group gives exactly numpy's mean() and var() of it."""

    def __init__(self, values: np.ndarray) -> None:
        self.count, self.mean, self.var = len(values), float(values.mean()), float(values.var())

    def merge(self, other: Moments) -> None:
        count = self.count + other.count
        delta = other.mean - self.mean
        m2 = self.var * self.count + other.var * other.count + delta * delta * self.count * other.count / count
        self.count, self.mean, self.var = count, self.mean + delta * other.count / count, m2 / count

    @property
    def std(self) -> float:
        return math.sqrt(self.var)


def column_moments(block: np.ndarray) -> list[Moments]:
    """The Moments of each column of a block of rows."""
    return [Moments(np.ascontiguousarray(block[:, j])) for j in range(block.shape[1])]


class ScalingFit:
    """prepare's training scaling: the mean and population std of every column (features, then the
    target) over the training rows, added block by block as they are written and merged (Moments); one
    block gives numpy's mean() and std() exactly."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.moments: list[Moments] | None = None
        self.first: np.ndarray | None = None  # the first training row, for the message about a constant column

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add a block of training rows: features (rows, columns) and target (rows,)."""
        if not len(y):
            return
        group = [*column_moments(X), Moments(y)]
        if self.moments is None:
            self.moments, self.first = group, np.append(X[0], y[0])
            return
        for total, part in zip(self.moments, group, strict=True):
            total.merge(part)

    def scaling(self, one_hot: int = 0, derived: frozenset[str] = frozenset()) -> Scaling:
        """The Scaling; a constant column is an error, except a `derived` one (a date's year in a table of one
        year), which gets std 1: scaled to 0, it is left out in effect. `one_hot` features follow the columns
        added, unscaled (mean 0, std 1)."""
        for name, part, first in zip(self.names, self.moments, self.first, strict=True):
            if not part.std > 0 and name in derived:
                part.var = 1.0
            elif not part.std > 0 and name == self.names[-1]:
                raise UserError(
                    f"data: the target {name!r} is constant ({first:g}) on the training split: there is nothing to "
                    "predict; check that data.target names the column to predict, or use rows where it varies"
                )
            elif not part.std > 0:
                raise UserError(
                    f"data: column {name!r} is constant ({first:g}) on the training split, so it cannot be scaled; "
                    "set data.standardize: false or drop the column from data.features"
                )
        means, stds = [part.mean for part in self.moments], [part.std for part in self.moments]
        return Scaling(tuple(means[:-1]) + (0.0,) * one_hot, tuple(stds[:-1]) + (1.0,) * one_hot, means[-1], stds[-1])


@dataclass(frozen=True)
class FeatureStats:
    """Of each feature over the training rows: the numeric ones' lowest and highest values (the dense part of
    Encoded rows; one-hot features have none), and, where asked, every feature's population std."""

    low: list[float]
    high: list[float]
    std: np.ndarray | None


def feature_stats(X: np.ndarray | Encoded, std: bool = False, block_rows: int = 1 << 16) -> FeatureStats:
    """FeatureStats in one pass over the rows, block by block (each block's pages of a mapped file released
    once read), the stds merged (Moments), the one-hot features' from their counts."""
    dense = X.dense if isinstance(X, Encoded) else X
    low, high = np.full(dense.shape[1], np.inf), np.full(dense.shape[1], -np.inf)
    moments: list[Moments] | None = None
    for start in range(0, len(dense), block_rows):
        block = np.asarray(dense[start : start + block_rows], dtype=np.float64)
        np.minimum(low, block.min(axis=0, initial=np.inf), out=low)
        np.maximum(high, block.max(axis=0, initial=-np.inf), out=high)
        if std:
            parts = column_moments(block)
            if moments is None:
                moments = parts
            else:
                for total, part in zip(moments, parts, strict=True):
                    total.merge(part)
        release(dense[start : start + block_rows])
    stds = None
    if std:
        stds = [part.std for part in moments or []]
        for j, width in enumerate(X.widths if isinstance(X, Encoded) else ()):
            codes = np.asarray(X.codes[:, j])
            p = np.bincount(codes[codes >= 0], minlength=width)[:width] / max(len(codes), 1)
            stds += np.sqrt(p * (1 - p)).tolist()
        stds = np.asarray(stds)
    return FeatureStats(low.tolist(), high.tolist(), stds)


def sample_rows(n_rows: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `limit` rows, in order: all of them, or a seeded random sample (for plots)."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=limit, replace=False))


class NpyAppender:
    """A .npy file (float64, or `dtype`) written block by block as rows arrive, byte for byte what np.save
    writes for the whole array: the header, which holds the row count, is reserved first and filled in by
    close()."""

    RESERVE_ROWS = 10**15  # a header for this many rows is as long as any real one (numpy pads it to 64 bytes)

    def __init__(self, path: Path, n_columns: int | None, dtype: str = "<f8") -> None:
        self.path, self.n_columns, self.rows, self.dtype = path, n_columns, 0, dtype
        self.handle = path.open("wb")
        self.reserved = len(self._header(self.RESERVE_ROWS))
        self.handle.write(b"\0" * self.reserved)

    def _header(self, rows: int) -> bytes:
        shape = (rows,) if self.n_columns is None else (rows, self.n_columns)
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": self.dtype, "fortran_order": False, "shape": shape})
        return buffer.getvalue()

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.size:
            self.handle.write(memoryview(block).cast("B"))
        self.rows += len(block)

    def close(self) -> None:
        header = self._header(self.rows)
        if len(header) != self.reserved:  # cannot happen below 10^15 rows; say so rather than write a bad file
            raise ValueError(f"{self.path}: .npy header of {len(header)} bytes, {self.reserved} reserved")
        self.handle.seek(0)
        self.handle.write(header)
        self.handle.close()


class SplitWriter:
    """The four split arrays of a prepared folder, appended to group by group; with `n_codes` categorical
    columns, X holds the dense features and C_train/C_test their codes (Encoded)."""

    def __init__(self, folder: Path, n_features: int, n_codes: int = 0) -> None:
        self.files = {
            name: NpyAppender(folder / f"{name}.npy", n_features if name.startswith("X") else None)
            for name in SPLIT_ARRAYS
        }
        if n_codes:
            self.files.update({name: NpyAppender(folder / f"{name}.npy", n_codes, "<i4") for name in CODE_ARRAYS})

    def append(self, split: str, X: np.ndarray, y: np.ndarray, codes: np.ndarray | None = None) -> None:
        self.files[f"X_{split}"].append(X)
        self.files[f"y_{split}"].append(y)
        if codes is not None:
            self.files[f"C_{split}"].append(codes)

    def close(self) -> None:
        for appender in self.files.values():
            appender.close()


def write_meta(
    folder: Path,
    features: tuple[str, ...],
    target: str,
    n_train: int,
    n_test: int,
    scaling: Scaling | None,
    transform: dict | None = None,
    n_target_missing: int = 0,
    one_hot_widths: list[int] | None = None,
    feature_columns: list[str] | None = None,
) -> None:
    """meta.json; `transform` (stages/columns.py) and the count of rows left out for a missing target only
    where the table needed them, so a table of plain numbers keeps the bytes it always had; the widths of
    the one-hot blocks where the split holds codes (Encoded)."""
    meta = {
        "features": list(features),
        "target": target,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "scaling": scaling.to_dict() if scaling else None,
    }
    if transform is not None:
        meta.update(transform=transform, n_target_missing=int(n_target_missing))
    if feature_columns is not None:
        meta["feature_columns"] = list(feature_columns)
    if one_hot_widths:
        meta["one_hot_widths"] = [int(width) for width in one_hot_widths]
    text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n"
    (folder / "meta.json").write_text(text, encoding="utf-8")


_PAGE = mmap.PAGESIZE


def _file_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The mmap.mmap under `array` (np.load's mmap_mode arrays and their slices lead to it through .base),
    or None for memory that is not a file mapping. The array holds it, so it is still mapped."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release(block: np.ndarray) -> None:
    """Drop the pages under `block`, a contiguous slice of an array mapped from a file (read_split with
    mmap=True, map_array), from this process's resident memory once it is read: a pass over a mapped table
    then holds one block, not every page it touched (the page cache keeps them; reading them again maps
    them back). Does nothing for any other array (anonymous memory would lose its contents), so it is safe
    to call on whatever a caller holds."""
    if isinstance(block, Encoded):
        release(block.dense)
        release(block.codes)
        return
    if not hasattr(mmap, "MADV_DONTNEED") or not block.size or not block.flags.c_contiguous:
        return  # not Linux: pages are left to the kernel
    mapping = _file_mapping(block)
    if mapping is None or mapping.closed:
        return
    low = np.frombuffer(mapping, dtype=np.uint8).ctypes.data  # where the mapping starts (page-aligned)
    start = block.ctypes.data - low
    end = start + block.nbytes
    if 0 <= start and end <= len(mapping):
        first = start - start % _PAGE
        mapping.madvise(mmap.MADV_DONTNEED, first, -(-end // _PAGE) * _PAGE - first)  # clipped at the end


def map_array(path: str | Path) -> np.ndarray:
    """A .npy file as a read-only view of the file (np.load's mmap), whose blocks release() can drop."""
    return np.load(path, mmap_mode="r")


def read_split(folder: str | Path = PREPARED_DIR, mmap: bool = False) -> Split:
    """Load what `prepare` wrote; with mmap=True the arrays are read-only views of the files, paged in
    as used and released with the Split (so a stage can convert them without holding a second copy), or
    block by block with release()."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        load = map_array if mmap else np.load
        widths = meta.get("one_hot_widths")
        arrays = {name: load(folder / f"{name}.npy") for name in (*SPLIT_ARRAYS, *(CODE_ARRAYS if widths else ()))}
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: missing; run `dvc repro prepare` first") from None
    if widths:
        for part in ("train", "test"):
            arrays[f"X_{part}"] = Encoded(arrays[f"X_{part}"], arrays.pop(f"C_{part}"), widths)
    scaling = Scaling.from_dict(meta["scaling"]) if meta["scaling"] else None
    columns = meta.get("feature_columns")
    return Split(features=tuple(meta["features"]), target=meta["target"], scaling=scaling,
                 transform=meta.get("transform"), feature_columns=tuple(columns) if columns else None,
                 **arrays)  # fmt: skip
