"""prepare for a table whose columns need typing (text categories, yes/no, dates, missing cells), streamed.

Three steps, none of which holds the table: memory is one block of the CSV or one chunk of encoded rows,
plus each text column's vocabulary (at most columns.MAX_CATEGORIES + 1 values), whatever the row count.
1. scan: the CSV read once, as text (pyarrow), each column kept on disk in compact form, numbers as
   float64 and text as int32 category codes, while counting what decides its type (stages/columns.py's
   rules: how many present cells are numbers, whether every one is yes/no or a date);
2. fit, on the training rows of those compact columns: the medians (exact order statistics, found in a
   few passes over the column), the categories kept and those grouped as infrequent;
3. encode: chunk by chunk, the transform applied and the rows appended to the split files by SplitWriter
   (the writer of the plain numeric path too), the training scaling gathered as they pass.
A column the scan did not keep in the form its type needs (text after a block of numbers, a type set in
data.columns, a date column of more distinct values than a vocabulary holds) is read once more, alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages import columns
from stages.csv_input import (
    LARGEST_VALUE,
    FastParseRefused,
    cell_as_written,
    cell_hint,
    check_spread,
    read_cells,
    read_columns,
    row_where,
    stream_text_columns,
)
from stages.errors import UserError
from stages.params import ALL_FEATURES, DataParams
from stages.prepared import SPLIT_GROUP_ROWS, ScalingFit, SplitWriter, held_out_in_group, write_meta

SCAN_BLOCK_BYTES = 1 << 20  # the CSV is parsed this many bytes a block (csv_input.STREAM_BLOCK_BYTES)
ENCODE_BYTES = 32 << 20  # encoded rows are built this many bytes of float64 at a time
CELLS_BLOCK_ROWS = 1 << 16  # rows per block when the cells come from pandas (a file pyarrow refused)
SELECT_GATHER = 1 << 21  # order statistics: candidates gathered and partitioned once this few are left
IDENTIFIER_MIN_ROWS = 20  # below this many rows, distinct integers are no sign of an identifier
IDENTIFIER_LINE = (
    "prepare: column {name!r}: a different whole number in every row, an identifier (row numbers, ids): left "
    "out; list it in data.features or data.columns to use it, or in data.drop to say so"
)

Blocks = Callable[[list[str]], Iterator[list]]  # column names -> blocks, each a list of pyarrow string arrays


def _dictionary(array) -> tuple[list[str | None], np.ndarray]:
    """(keys, index) of a block of cells: its distinct cells stripped of surrounding spaces (None: missing)
    and each row's position among them."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(array, null_encoding="encode")
    keys = []
    for entry in encoded.dictionary.to_pylist():
        key = None if entry is None else entry.strip()
        keys.append(None if key is None or key in columns.MISSING_CELLS else key)
    return keys, encoded.indices.to_numpy(zero_copy_only=False)


def _parse_block(array, want_keys: bool) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(values, missing, keys) of a block of cells: float64 (NaN where missing or not a number), which
    cells are missing, and _dictionary's (keys, index) where asked for or where a cell is not a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not want_keys:
        missing = array.is_null().to_numpy(zero_copy_only=False)
        try:
            values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # a word, a number with spaces around it: judged cell by cell below
            pass
        else:
            if not np.isnan(values[~missing]).any():  # 'NAN' (not a missing spelling) is a bad cell, not missing
                return np.array(values, dtype=np.float64), missing, None
    keys, index = _dictionary(array)
    key_missing = np.array([key is None for key in keys], dtype=bool)
    key_values = columns.as_numbers(np.array([key or "" for key in keys], dtype=str))
    return key_values[index], key_missing[index], (keys, index)


def _present_keys(keys: list[str | None]) -> np.ndarray:
    return np.array([key for key in keys if key is not None], dtype=str)


class _ColumnScan:
    """One column as the scan finds it: what decides its type, the first cells a message names (file rows,
    0-based), and its values on disk for the rows kept (those with a target): float64 while every present
    cell is a number, int32 codes (0: missing) from the first block with a cell that is not."""

    def __init__(self, name: str, folder: Path, index: int, store: bool = True) -> None:
        self.name = name
        self.floats_path, self.codes_path = folder / f"{index}.f8", folder / f"{index}.i4"
        self.floats = self.floats_path.open("wb") if store else None  # store=False: counts only
        self.codes = None
        self.vocabulary: dict[str, int] | None = None
        self.codes_from = 0  # rows kept before the first coded block: codes cover the column only from 0
        self.kept = self.present = self.numbers = self.missing = 0
        self.first_bad: tuple[int, str] | None = None  # (row, cell) of the first present cell not a number
        self.first_large: int | None = None
        self.first_missing: int | None = None
        self.whole = self.booleans = self.dates = True
        self.overflow = False  # more distinct values than columns.MAX_CATEGORIES: no codes kept

    def add(self, array, start: int, kept: np.ndarray) -> np.ndarray:
        """Take in a block whose first row is file row `start`; `kept`: its rows with a target. Returns the
        block's values (float64, NaN where missing or not a number)."""
        values, missing, keyed = _parse_block(array, self.codes is not None)
        present = ~missing
        bad = present & np.isnan(values)
        n_present, n_bad = int(present.sum()), int(bad.sum())
        self.present += n_present
        self.numbers += n_present - n_bad
        self.missing += int(missing[kept].sum())
        if self.first_missing is None and missing.any():
            self.first_missing = start + int(np.argmax(missing))
        if self.first_bad is None and n_bad:
            row = int(np.argmax(bad))
            self.first_bad = (start + row, keyed[0][keyed[1][row]])
        if self.first_large is None:
            large = np.abs(np.nan_to_num(values, nan=0.0)) > LARGEST_VALUE
            if large.any():
                self.first_large = start + int(np.argmax(large))
        if self.whole and n_present > n_bad:
            numbers = values[present & ~bad]
            self.whole = bool(np.all(numbers == np.floor(numbers)))
        if n_present and (self.booleans or self.dates):
            if keyed is None:  # every present cell a number: neither yes/no nor a date
                self.booleans = self.dates = False
            else:
                words = _present_keys(keyed[0])
                self.booleans = self.booleans and not np.isnan(columns.as_booleans(words)).any()
                self.dates = self.dates and not np.isnan(columns.as_dates(words)[:, 0]).any()
        if n_bad and self.codes is None and self.floats is not None:  # text from here on: codes, not floats
            self.floats.close()
            self.floats_path.unlink()
            self.floats, self.codes_from = None, self.kept
            self.codes, self.vocabulary = self.codes_path.open("wb"), {columns.MISSING: 0}
        if self.floats is not None:
            np.ascontiguousarray(values[kept]).tofile(self.floats)
        if self.codes is not None:
            self._add_codes(keyed if keyed is not None else _dictionary(array), kept)
        self.kept += int(kept.sum())
        return values

    def _add_codes(self, keyed: tuple, kept: np.ndarray) -> None:
        keys, index = keyed
        vocabulary = self.vocabulary
        lookup = [vocabulary.setdefault(columns.MISSING if key is None else key, len(vocabulary)) for key in keys]
        if len(vocabulary) > columns.MAX_CATEGORIES + 1:
            self.codes.close()
            self.codes_path.unlink()
            self.codes, self.vocabulary, self.overflow = None, None, True
            return
        np.asarray(lookup, dtype=np.int32)[index[kept]].tofile(self.codes)

    def close(self) -> None:
        for handle in (self.floats, self.codes):
            if handle is not None:
                handle.close()

    def kind(self) -> str:
        """The inferred type (columns.type_of); a numeric column may still have a bad cell."""
        return columns.type_of(self.present, self.numbers, self.booleans, self.dates)

    @property
    def coded(self) -> bool:
        """Whether codes cover every kept row."""
        return self.vocabulary is not None and self.codes_from == 0


@dataclass
class _Compact:
    """A feature column ready to fit and encode: numeric, boolean and date columns as float64 values
    (rows, parts; NaN where missing), categorical ones as codes into `keys` (0: missing)."""

    name: str
    kind: str
    n_missing: int
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    keys: list[str] | None = None


def _cells_blocks(path: Path, header: list[str]) -> Blocks:
    """Blocks of the cells pandas reads (read_cells), for a file pyarrow's reader refused."""
    import pyarrow as pa

    def blocks(names: list[str]) -> Iterator[list]:
        cells = read_cells(path, names, header)
        n_rows = len(cells[names[0]])
        for start in range(0, n_rows, CELLS_BLOCK_ROWS):
            yield [pa.array(cells[name][start : start + CELLS_BLOCK_ROWS].tolist(), type=pa.string()) for name in names]

    return blocks


def _arrow_blocks(path: Path) -> Blocks:
    return lambda names: stream_text_columns(path, names, SCAN_BLOCK_BYTES)


def _scan(blocks: Blocks, features: list[str], target: str, folder: Path):
    """Read the table once; (feature scans, target scan, rows read, rows with a target)."""
    scans = [_ColumnScan(name, folder, j) for j, name in enumerate(features)]
    aim = _ColumnScan(target, folder, len(features), store=False)
    start = n_kept = 0
    try:
        with (folder / "kept.u1").open("wb") as kept_file, (folder / "target.f8").open("wb") as target_file:
            for block in blocks([*features, target]):
                values = aim.add(block[-1], start, np.ones(len(block[-1]), dtype=bool))
                kept = ~np.isnan(values)
                kept_file.write(kept.astype(np.uint8).tobytes())
                values[kept].tofile(target_file)
                n_kept += int(kept.sum())
                for scan, array in zip(scans, block[:-1], strict=True):
                    scan.add(array, start, kept)
                start += len(block[-1])
    finally:
        for scan in (*scans, aim):
            scan.close()
    return scans, aim, start, n_kept


def _rescan(blocks: Blocks, name: str, kind: str, folder: Path, path: Path, index: int) -> _Compact:
    """Read one column again, as `kind` (data.columns, or text the scan met late); a cell the type cannot
    read is an error naming it."""
    kept_all = _mapped(folder / "kept.u1", np.uint8)
    parts = len(columns.DATE_PARTS) if kind == "date" else 1
    out = folder / f"{index}.again"
    vocabulary = {columns.MISSING: 0}
    n_missing, start, overflow = 0, 0, False
    with out.open("wb") as handle:
        for (array,) in blocks([name]):
            kept = kept_all[start : start + len(array)].astype(bool)
            keys, index = _dictionary(array)
            missing = np.array([key is None for key in keys], dtype=bool)[index]
            n_missing += int(missing[kept].sum())
            if kind == "categorical":
                if not overflow:
                    lookup = [vocabulary.setdefault(columns.MISSING if k is None else k, len(vocabulary)) for k in keys]
                    overflow = len(vocabulary) > columns.MAX_CATEGORIES + 1
                    np.asarray(lookup, dtype=np.int32)[index[kept]].tofile(handle)
            else:
                words = np.array([key or "" for key in keys], dtype=str)
                values = _read_as(kind, words)[index]
                bad = np.isnan(values[:, 0]) & ~missing
                if bad.any():
                    row = int(np.argmax(bad))
                    raise columns.not_of_type(str(path), row_where(path, start + row + 1), name, keys[index[row]], kind)
                values[missing] = np.nan
                np.ascontiguousarray(values[kept]).tofile(handle)
            start += len(array)
    if kind == "categorical":
        if overflow:
            return _Compact(name, kind, n_missing)
        keys = sorted(vocabulary, key=vocabulary.__getitem__)
        return _Compact(name, kind, n_missing, codes=_mapped(out, np.int32), keys=keys)
    return _Compact(name, kind, n_missing, values=_mapped(out, np.float64, parts))


def _read_as(kind: str, words: np.ndarray) -> np.ndarray:
    """(cells, parts) float64 of stripped cells read as `kind` (numeric, boolean, date); NaN: unreadable."""
    if kind == "numeric":
        return columns.as_numbers(words)[:, None]
    return columns.as_booleans(words)[:, None] if kind == "boolean" else columns.as_dates(words)


def _mapped(path: Path, dtype, parts: int | None = None) -> np.ndarray:
    """A compact column file as a read-only map (an empty file as an empty array: mmap cannot map it)."""
    shape = (-1,) if parts is None else (-1, parts)
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype).reshape(shape)
    return np.memmap(path, dtype=dtype, mode="r").reshape(shape)


MIN_TRAIN_ROWS = 2


def check_training_rows(n_rows: int, test_size: float, n_train: int) -> None:
    if n_train < MIN_TRAIN_ROWS:
        raise UserError(
            f"data: {n_rows} rows with data.test_size {test_size} leave {n_train} training rows; "
            f"training needs at least {MIN_TRAIN_ROWS}: lower data.test_size or add rows"
        )


class _SplitGroups:
    """Which kept rows train, group by group of SPLIT_GROUP_ROWS rows as seeded_split assigns them: drawn
    once, held as bits (an eighth of a byte a row)."""

    def __init__(self, n_rows: int, data: DataParams) -> None:
        self.parts, self.n_train = [], 0
        for group, start in enumerate(range(0, n_rows, SPLIT_GROUP_ROWS)):
            size = min(SPLIT_GROUP_ROWS, n_rows - start)
            train = np.ones(size, dtype=bool)
            train[held_out_in_group(group, size, data.test_size, data.split_seed)] = False
            self.parts.append((start, start + size, np.packbits(train)))
            self.n_train += int(train.sum())

    def __iter__(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, which of rows start:stop train) of each group."""
        for start, stop, bits in self.parts:
            yield start, stop, np.unpackbits(bits, count=stop - start).astype(bool)


_SIGN = np.uint64(1 << 63)


def _keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys of float64 values that sort as the values do (NaN excluded)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value(key: int) -> float:
    bits = key & ~(1 << 63) if key >> 63 else ~key & (2**64 - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _order_statistic(chunks: Callable[[], Iterator[np.ndarray]], rank: int) -> float:
    """The value at 0-based `rank` in sorted order of the values chunks() yields, without holding them:
    the range of sortable bit patterns (keys) holding it narrowed by 2^16 buckets a pass, until few enough
    values are left to sort (or the range is one key)."""
    low, high, below, inside = 0, 2**64 - 1, 0, None  # keys in [low, high]: `inside` values; `below` under
    while inside is None or inside > SELECT_GATHER:
        shift = max(0, (high - low + 1).bit_length() - 16)
        histogram = np.zeros(((high - low) >> shift) + 1, dtype=np.int64)
        for values in chunks():
            keys = _keys(values)
            keys = keys[(keys >= np.uint64(low)) & (keys <= np.uint64(high))]
            histogram += np.bincount(((keys - np.uint64(low)) >> np.uint64(shift)).astype(np.int64),
                                     minlength=len(histogram))  # fmt: skip
        total = np.cumsum(histogram)
        bucket = int(np.searchsorted(total, rank - below, side="right"))
        if shift == 0:  # buckets of one key each
            return _value(low + bucket)
        before = int(total[bucket - 1]) if bucket else 0
        low, high = low + (bucket << shift), min(high, low + ((bucket + 1) << shift) - 1)
        inside, below = int(total[bucket]) - before, below + before
    found = [values[(keys >= np.uint64(low)) & (keys <= np.uint64(high))]
             for values in chunks() for keys in (_keys(values),)]  # fmt: skip
    return float(np.sort(np.concatenate(found))[rank - below])


def median(chunks: Callable[[], Iterator[np.ndarray]], count: int) -> float:
    """np.median of the `count` (> 0) values that chunks() yields, found without holding them: the lower
    middle value by _order_statistic, the upper one in one more pass (the same value, or the least above)."""
    lower = _order_statistic(chunks, (count - 1) // 2)
    upper = lower
    if count % 2 == 0:
        at_most = sum(int(np.count_nonzero(values <= lower)) for values in chunks())
        if at_most < count // 2 + 1:
            upper = min(float(values[values > lower].min(initial=np.inf)) for values in chunks())
    return float(np.mean([lower, upper]))


def _name_bad_cell(path: Path, header: list[str], name: str, row: int, cell: str | None, has_missing: bool):
    """Raise the message for the cell in (1-based) `row` of a numeric column that is not a finite number
    within range: the checked reader's own, word for word, where the column has no missing cell."""
    if not has_missing:
        read_columns(path, [name], header)  # raises, naming the first bad cell of the column
    where, written = cell_as_written(path, row, name, header)
    cell = written if cell is None else cell
    if cell.lower().lstrip("+-") in ("inf", "infinity"):
        raise UserError(f"{path}: {where}, column {name!r}: {cell!r} is not a finite number")
    if not np.isnan(columns.as_numbers(np.array([cell]))[0]):
        raise UserError(
            f"{path}: {where}, column {name!r}: {cell!r} is too large to compute with (beyond "
            f"±{LARGEST_VALUE:g} its square overflows); rescale the column, e.g. divide it by a power of ten"
        )
    raise UserError(f"{path}: {where}, column {name!r}: {cell!r} is not a number{cell_hint(cell, name)}")


def _refuse_missing(path: Path, header: list[str], name: str, row: int) -> None:
    where, cell = cell_as_written(path, row, name, header)
    what = "the cell is empty" if not cell else f"{cell!r} marks a missing cell"
    raise UserError(f"{path}: {where}, column {name!r}: {what}; fill it in or drop the row, or set "
                    "data.missing: impute")  # fmt: skip


def _check_target(data: DataParams, header: list[str], aim: _ColumnScan, n_rows: int) -> None:
    """Refuse a target that is text, missing in every row, or has a bad cell (or, with data.missing:
    error, a missing one)."""
    path, name = Path(data.path), data.target
    if n_rows == 0:
        raise UserError(f"{path}: the file has a header but no data rows")
    if aim.first_bad is not None:
        n_bad = aim.present - aim.numbers
        row, cell = aim.first_bad
        if n_bad > 0.5 * aim.present and n_bad > 1:
            raise UserError(f"{path}: column {name!r}, data.target, is text ({cell!r} in row {row + 1}); "
                            "the target must be a number: set data.target to a numeric column")  # fmt: skip
        _name_bad_cell(path, header, name, row + 1, cell, aim.first_missing is not None)
    if aim.present == 0:
        raise UserError(f"{path}: column {name!r}, data.target, is missing in every row; set data.target to a "
                        "column with values")  # fmt: skip
    if aim.first_missing is not None and data.missing == "error":
        _refuse_missing(path, header, name, aim.first_missing + 1)
    if aim.first_large is not None:
        _name_bad_cell(path, header, name, aim.first_large + 1, None, aim.first_missing is not None)


def is_identifier(values: np.ndarray) -> bool:
    """Whether a complete column of whole numbers holds a different one in every row (row numbers, R's
    rownames, pandas' saved index, record ids): an identifier, whose order in the file, often sorted by
    the target, would leak into the model."""
    return len(values) >= IDENTIFIER_MIN_ROWS and len(np.unique(values)) == len(values)


def _from_vocabulary(scan: _ColumnScan, kind: str, folder: Path, index: int) -> np.ndarray:
    """A boolean or date column's values from its codes: each distinct cell read once."""
    keys = sorted(scan.vocabulary, key=scan.vocabulary.__getitem__)
    table = _read_as(kind, np.array(["" if key == columns.MISSING else key for key in keys], dtype=str))
    table[0] = np.nan  # code 0: missing
    codes = _mapped(scan.codes_path, np.int32)
    out = folder / f"{index}.values"
    with out.open("wb") as handle:
        for start in range(0, len(codes), CELLS_BLOCK_ROWS):
            np.ascontiguousarray(table[codes[start : start + CELLS_BLOCK_ROWS]]).tofile(handle)
    return _mapped(out, np.float64, table.shape[1])


def _compact_columns(data, header, scans, blocks, folder, lines) -> list[_Compact]:
    """Each feature column's type (data.columns, else inferred) and values, checked in data.features
    order; identifiers are left out with a line in `lines`."""
    path = Path(data.path)
    out = []
    for index, scan in enumerate(scans):
        name, inferred = scan.name, scan.kind()
        forced = data.columns.get(name)
        has_missing = scan.first_missing is not None
        if forced is None and inferred == "numeric" and scan.first_bad is not None:
            _name_bad_cell(path, header, name, scan.first_bad[0] + 1, scan.first_bad[1], has_missing)
        if has_missing and data.missing == "error":
            _refuse_missing(path, header, name, scan.first_missing + 1)
        kind = forced or inferred
        if kind == "numeric":
            if scan.first_bad is not None:  # data.columns says numeric
                row, cell = scan.first_bad
                raise columns.not_of_type(str(path), row_where(path, row + 1), name, cell, kind)
            values = _mapped(scan.floats_path, np.float64, 1)
            if forced is None and data.features == ALL_FEATURES and not has_missing and scan.whole:
                if is_identifier(np.asarray(values[:, 0])):
                    lines.append(IDENTIFIER_LINE.format(name=name))
                    continue
            if scan.first_large is not None:
                _name_bad_cell(path, header, name, scan.first_large + 1, None, has_missing)
            if scan.missing < len(values):  # differences that vanish when squared, as the numeric stream refuses
                check_spread(path, name, float(np.nanmin(values)), float(np.nanmax(values)))
            out.append(_Compact(name, kind, scan.missing, values=values))
        elif kind == inferred and scan.coded:
            if kind == "categorical":
                keys = sorted(scan.vocabulary, key=scan.vocabulary.__getitem__)
                out.append(_Compact(name, kind, scan.missing, codes=_mapped(scan.codes_path, np.int32), keys=keys))
            else:
                out.append(_Compact(name, kind, scan.missing, values=_from_vocabulary(scan, kind, folder, index)))
        elif kind == "categorical" and scan.overflow:
            out.append(_Compact(name, kind, scan.missing))  # too many values to be categories
        else:
            out.append(_rescan(blocks, name, kind, folder, path, index))
    return out


def _fit(column: _Compact, groups: _SplitGroups, data: DataParams, where: str) -> columns.ColumnTransform:
    """The column's transform, fitted on the training rows (columns.ColumnTransform)."""
    if column.kind == "categorical":
        counts = np.zeros(len(column.keys), dtype=np.int64)
        for start, stop, train in groups:
            counts += np.bincount(column.codes[start:stop][train], minlength=len(counts))
        seen = {column.keys[code]: int(counts[code]) for code in np.flatnonzero(counts)}
        return columns.categories_of(column.name, seen, data.min_frequency)
    fitted = columns.ColumnTransform(column.name, column.kind)
    for part in range(column.values.shape[1]):

        def chunks(part: int = part) -> Iterator[np.ndarray]:
            for start, stop, train in groups:
                values = column.values[start:stop, part][train]
                yield values[~np.isnan(values)]

        count = sum(len(values) for values in chunks())
        if count == 0:
            raise UserError(f"{where}: column {column.name!r} has no value in any training row; drop it "
                            f"(data.drop: [{column.name}]) or fill it in")  # fmt: skip
        fitted.medians.append(median(chunks, count))
        if part == 0:
            fitted.indicator = count < groups.n_train
    return fitted


def _encoder(column: _Compact, fitted: columns.ColumnTransform) -> Callable[[int, np.ndarray, np.ndarray], None]:
    """encode(start, rows, out): the rows start + rows of a numeric, boolean or date column encoded into
    `out` (len(rows), its features), as columns.ColumnTransform.encode encodes its cells."""
    medians, parts = np.asarray(fitted.medians), len(fitted.medians)

    def filled(start: int, rows: np.ndarray, out: np.ndarray) -> None:
        values = column.values[start + rows]
        gaps = np.isnan(values)
        out[:, :parts] = np.where(gaps, medians, values)
        if fitted.indicator:
            out[:, parts] = gaps[:, 0]

    return filled


def _slots(column: _Compact, fitted: columns.ColumnTransform) -> np.ndarray:
    """For each code of a categorical column, the position of its feature in the column's one-hot block
    (as columns.ColumnTransform.encode places it): a kept category's, the infrequent group's, or -1."""
    infrequent = len(fitted.categories) if fitted.infrequent else -1
    index = {key: j for j, key in enumerate(fitted.categories)}
    return np.array([index.get(key, infrequent) for key in column.keys], dtype=np.int32)


def _encode_rows(fitted: list, target: np.ndarray, groups: _SplitGroups, writer: SplitWriter,
                 scaling_fit: ScalingFit | None) -> None:  # fmt: skip
    """Every kept row encoded and appended to its split, ENCODE_BYTES at a time: the numeric, boolean and
    date columns' features as float64, each categorical column as one code (prepared.Encoded). A chunk is
    written by a second thread (file writes release the GIL) while the next is encoded."""
    dense = [(column, transform) for column, transform in fitted if transform.type != "categorical"]
    coded = [(column, _slots(column, transform)) for column, transform in fitted if transform.type == "categorical"]
    encoders = [_encoder(column, transform) for column, transform in dense]
    edges = np.cumsum([0, *(len(transform.features()) for _, transform in dense)])
    chunk = max(1, ENCODE_BYTES // (8 * int(edges[-1]) + 4 * len(coded) + 8))
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-write") as writes:
        for start, stop, train in groups:
            for low in range(start, stop, chunk):
                kept = train[low - start : min(stop, low + chunk) - start]
                parts = {}
                for split, rows in (("train", np.flatnonzero(kept)), ("test", np.flatnonzero(~kept))):
                    X = np.empty((len(rows), int(edges[-1])))
                    for encode, left, right in zip(encoders, edges[:-1], edges[1:], strict=True):
                        encode(low, rows, X[:, left:right])
                    codes = None
                    if coded:
                        codes = np.empty((len(rows), len(coded)), dtype=np.int32)
                        for j, (column, slot) in enumerate(coded):
                            codes[:, j] = slot[column.codes[low + rows]]
                    parts[split] = (X, np.asarray(target[low + rows]), codes)
                if scaling_fit is not None:
                    scaling_fit.add(*parts["train"][:2])
                if pending is not None:
                    pending.result()
                pending = writes.submit(
                    lambda parts=parts: [writer.append(split, *part) for split, part in parts.items()]
                )
        if pending is not None:
            pending.result()
    writer.close()


def prepare_typed(data: DataParams, header: list[str], features: list[str], folder: Path) -> tuple[int, int, int]:
    """prepare for a table that is not all plain, complete numbers (or data.features: all, or data.columns):
    see the module's docstring. Writes the split into `folder`; returns (rows, train rows, test rows)."""
    path = Path(data.path)
    work = folder / "columns.tmp"
    work.mkdir()
    blocks = _arrow_blocks(path)
    try:
        scans, aim, n_read, n_rows = _scan(blocks, features, data.target, work)
    except FastParseRefused:  # pandas reads what pyarrow's reader refused, or read_cells names the problem
        shutil.rmtree(work)
        work.mkdir()
        blocks = _cells_blocks(path, header)
        scans, aim, n_read, n_rows = _scan(blocks, features, data.target, work)
    _check_target(data, header, aim, n_read)
    target = _mapped(work / "target.f8", np.float64)
    check_spread(path, data.target, float(target.min()), float(target.max()))
    lines: list[str] = []
    compact = _compact_columns(data, header, scans, blocks, work, lines)
    groups = _SplitGroups(n_rows, data)
    n_train = groups.n_train
    check_training_rows(n_rows, data.test_size, n_train)
    fitted = []
    for column in compact:
        transform = columns.ColumnTransform(column.name, column.kind)
        if column.codes is None and column.values is None:
            lines.append(columns.describe(transform, column.n_missing, f"more than {columns.MAX_CATEGORIES} distinct "
                         "values, an identifier rather than a category: left out; add it to data.drop"))  # fmt: skip
            continue
        transform = _fit(column, groups, data, str(path))
        if column.kind == "categorical" and not transform.categories:
            lines.append(columns.describe(transform, column.n_missing, "every value is rare (fewer than "
                         f"data.min_frequency {data.min_frequency} training rows), as in an identifier or a name: "
                         f"it carries no information and is left out; add it to data.drop to say so"))  # fmt: skip
            continue
        if column.kind == "categorical" and len(transform.features()) == 1:
            lines.append(columns.describe(transform, column.n_missing, f"one value ({transform.categories[0]!r}) "
                         "in every training row: it carries no information and is left out; add it to data.drop "
                         "to say so"))  # fmt: skip
            continue
        fitted.append((column, transform))
        lines.append(columns.describe(transform, column.n_missing))
    transform = columns.Transform([column for _, column in fitted])
    names, widths = transform.features(), transform.one_hot_widths()
    n_dense = len(names) - sum(widths)
    if not names:
        raise UserError(f"data: no feature is left to train on in {path} (see the lines above); list usable "
                        "columns in data.features")  # fmt: skip
    for line in lines:
        print(line)
    scaling_fit = ScalingFit((*names[:n_dense], data.target)) if data.standardize else None
    writer = SplitWriter(folder, n_dense, len(widths))
    _encode_rows(fitted, _mapped(work / "target.f8", np.float64), groups, writer, scaling_fit)
    # one-hot features are left as 0/1 (as scikit-learn's OneHotEncoder leaves them): mean 0, std 1
    dates = frozenset(name for column in transform.columns if column.type == "date" for name in column.features())
    scaling = scaling_fit.scaling(sum(widths), dates) if scaling_fit is not None else None
    n_left_out = n_read - n_rows
    if n_left_out:
        print(f"prepare: {n_left_out} row(s) with no {data.target!r} (the target) left out of training and metrics")
    shutil.rmtree(work)
    sources = [column.name for column in transform.ordered() for _ in column.features()]
    sources = sources if sources != names else None  # written where a column gives other features than itself
    write_meta(folder, tuple(names), data.target, n_train, n_rows - n_train, scaling, transform.to_dict(), n_left_out,
               widths, sources)  # fmt: skip
    return n_rows, n_train, n_rows - n_train
