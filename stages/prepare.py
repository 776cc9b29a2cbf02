"""Stage `prepare`: read and check the CSV named in params.yaml, split it, and store the splits."""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from stages import columns
from stages.csv_input import (
    LARGEST_VALUE,
    FastParseRefused,
    cell_hint,
    check_header,
    check_spread,
    column_hint,
    read_cells,
    read_columns,
    read_table,
    row_where,
    stream_columns,
)
from stages.errors import UserError, run_stage
from stages.io import atomic_dir
from stages.params import ALL_FEATURES, DataParams, load_params
from stages.paths import PREPARED_DIR
from stages.prepared import (
    SPLIT_GROUP_ROWS,
    Moments,
    Scaling,
    SplitPlan,
    SplitWriter,
    held_out_in_group,
    seeded_split,
    write_meta,
    write_split,
)

MIN_TRAIN_ROWS = 2


def check_training_rows(n_rows: int, test_size: float, n_train: int) -> None:
    if n_train < MIN_TRAIN_ROWS:
        raise UserError(
            f"data: {n_rows} rows with data.test_size {test_size} leave {n_train} training rows; "
            f"training needs at least {MIN_TRAIN_ROWS}: lower data.test_size or add rows"
        )


def split_rows(
    n_rows: int, test_size: float, seed: int, group_rows: int = SPLIT_GROUP_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test splits, each in file order; test has ceil(test_size * n_rows) rows."""
    train_rows, test_rows = seeded_split(n_rows, test_size, seed, group_rows)
    check_training_rows(n_rows, test_size, len(train_rows))
    return train_rows, test_rows


class ScalingFit:
    """The training split's mean and population std of every column (features, then the target), taken
    group by group of the table's rows (SPLIT_GROUP_ROWS) and merged, so that the streaming and the
    in-memory prepare agree to the last bit; one group gives numpy's mean() and std() exactly."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.moments: list[Moments] | None = None
        self.first: np.ndarray | None = None  # the first training row, for the message about a constant column

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Add a group's training rows: features (rows, columns) and target (rows,)."""
        if not len(y):
            return
        group = [*(Moments(np.ascontiguousarray(X[:, j])) for j in range(X.shape[1])), Moments(y)]
        if self.moments is None:
            self.moments, self.first = group, np.append(X[0], y[0])
            return
        for total, part in zip(self.moments, group, strict=True):
            total.merge(part)

    def scaling(self) -> Scaling:
        """The Scaling; a constant column is an error."""
        for name, part, first in zip(self.names, self.moments, self.first, strict=True):
            if not part.std > 0:
                raise UserError(
                    f"data: column {name!r} is constant ({first:g}) on the training split, so it cannot be scaled; "
                    "set data.standardize: false or drop the column from data.features"
                )
        means, stds = [part.mean for part in self.moments], [part.std for part in self.moments]
        return Scaling(tuple(means[:-1]), tuple(stds[:-1]), means[-1], stds[-1])


def fit_scaling(
    X: np.ndarray, y: np.ndarray, rows: np.ndarray, names: tuple[str, ...], group_rows: int = SPLIT_GROUP_ROWS
) -> Scaling:
    """Mean and population std of each column of X and of y over the given rows (sorted); `names` are X's
    columns then y's. A constant column is an error."""
    fit = ScalingFit(names)
    for start in range(0, len(y), group_rows):
        group = rows[np.searchsorted(rows, start) : np.searchsorted(rows, start + group_rows)]
        fit.add(X[group], y[group])
    return fit.scaling()


def plan_split(X: np.ndarray, y: np.ndarray, data: DataParams, group_rows: int = SPLIT_GROUP_ROWS) -> SplitPlan:
    """The seeded train/test assignment of the rows and, with data.standardize, the training scaling."""
    train_rows, test_rows = split_rows(len(y), data.test_size, data.split_seed, group_rows)
    names = (*data.features, data.target)
    scaling = fit_scaling(X, y, train_rows, names, group_rows) if data.standardize else None
    return SplitPlan(train_rows, test_rows, scaling)


class _GroupBuffer:
    """Rows gathered from the parser's blocks into groups of SPLIT_GROUP_ROWS, the unit of the split: the
    features row-major, as the split files store them, and the target."""

    def __init__(self, n_features: int, group_rows: int) -> None:
        self.X = np.empty((group_rows, n_features), dtype=np.float64)
        self.y = np.empty(group_rows, dtype=np.float64)
        self.filled = 0

    def fill(self, block: np.ndarray) -> np.ndarray:
        """Copy in as much of `block` (features, then the target) as fits; return the rest."""
        take = min(len(block), len(self.y) - self.filled)
        self.X[self.filled : self.filled + take] = block[:take, :-1]
        self.y[self.filled : self.filled + take] = block[:take, -1]
        self.filled += take
        return block[take:]

    @property
    def full(self) -> bool:
        return self.filled == len(self.y)


def stream_split(
    data: DataParams, folder: Path, group_rows: int = SPLIT_GROUP_ROWS, whole: np.ndarray | None = None
) -> tuple[int, int]:
    """prepare for a table of any length: parse the CSV with pyarrow block by block, assign each group of
    rows to the splits as it completes (the same rows as plan_split), and append them to the split files,
    so memory holds one group, never the table. Writes what write_split would, byte for byte. Returns
    (train rows, test rows). Raises FastParseRefused where the checked path must read the file instead:
    any problem in a cell, and every condition plan_split or read_table would refuse (they name it).

    A complete group is split and written by a second thread (numpy's gathers and file writes release
    the GIL) while the parser fills the other of two group buffers."""
    names = [*data.features, data.target]
    writer = SplitWriter(folder, len(data.features))
    buffers = [_GroupBuffer(len(data.features), group_rows) for _ in range(2)]
    low = np.full(len(names), np.inf)
    high = np.full(len(names), -np.inf)
    fit = ScalingFit(tuple(names)) if data.standardize else None
    counts = {"groups": 0, "train": 0, "test": 0}
    pending: Future | None = None

    def split_group(buffer: _GroupBuffer, group: int) -> None:  # in the writing thread, one group at a time
        size = buffer.filled
        held = held_out_in_group(group, size, data.test_size, data.split_seed, group_rows)
        kept = np.ones(size, dtype=bool)
        kept[held] = False
        kept = np.flatnonzero(kept)
        X_train, y_train = np.take(buffer.X[:size], kept, axis=0), np.take(buffer.y[:size], kept)
        writer.append("train", X_train, y_train)
        writer.append("test", np.take(buffer.X[:size], held, axis=0), np.take(buffer.y[:size], held))
        if fit is not None:
            fit.add(X_train, y_train)
        counts["train"] += len(kept)
        counts["test"] += len(held)
        buffer.filled = 0

    def hand_over(buffer: _GroupBuffer) -> _GroupBuffer:
        """Queue `buffer` for splitting; return the other one, free once the previous group is done."""
        nonlocal pending
        if pending is not None:
            pending.result()
        pending = writes.submit(split_group, buffer, counts["groups"])
        counts["groups"] += 1
        return buffers[1] if buffer is buffers[0] else buffers[0]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-write") as writes:
        buffer = buffers[0]
        for block, block_low, block_high in stream_columns(data.path, names):
            if whole is not None:  # which columns hold whole numbers only (identifier candidates)
                whole &= np.all(block == np.floor(block), axis=0)
            np.minimum(low, block_low, out=low)
            np.maximum(high, block_high, out=high)
            while len(block):
                block = buffer.fill(block)
                if buffer.full:
                    buffer = hand_over(buffer)
        if buffer.filled or counts["groups"] == 0:
            hand_over(buffer)
        pending.result()
    n_train, n_test = counts["train"], counts["test"]
    writer.close()
    if n_train + n_test == 0:
        raise FastParseRefused("no data rows")  # read_table says so
    for name, column_low, column_high in zip(names, low, high, strict=True):
        check_spread(data.path, name, float(column_low), float(column_high))
    check_training_rows(n_train + n_test, data.test_size, n_train)
    scaling = fit.scaling() if fit is not None else None
    write_meta(folder, data.features, data.target, n_train, n_test, scaling)
    return n_train, n_test


def resolve_features(data: DataParams, header: list[str]) -> list[str]:
    """The feature columns: data.features as listed, or with `all` every named column of the header but
    the target and data.drop. Columns named in data.drop or data.columns must exist."""
    for key, names in (("data.drop", data.drop), ("data.columns", list(data.columns))):
        for name in names:
            if name not in header:
                raise UserError(f"{key} names column {name!r}, which {data.path} does not have; "
                                f"{column_hint(name, header)}")  # fmt: skip
    if data.features != ALL_FEATURES:
        return list(data.features)
    features = [name for name in header if name != data.target and name not in data.drop and name.strip()]
    if not features:
        raise UserError(
            f"data.features: all leaves no feature column in {data.path} (its columns are "
            f"{', '.join(map(repr, header))}, minus the target and data.drop); add columns or list them"
        )
    return features


IDENTIFIER_MIN_ROWS = 20  # below this many rows, distinct integers are no sign of an identifier


def _is_identifier(cells: np.ndarray) -> bool:
    """Whether a complete numeric column holds a different whole number in every row (row numbers, R's
    rownames, pandas' saved index, record ids): an identifier, whose order in the file, often sorted by
    the target, would leak into the model."""
    if len(cells) < IDENTIFIER_MIN_ROWS:
        return False
    try:
        values = cells.astype(np.float64)
    except ValueError:
        return False
    return bool(np.all(values == np.round(values))) and len(np.unique(values)) == len(values)


def _target_values(data: DataParams, header: list[str], cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of the target column; text, or missing in every row, is an error."""
    path, name = Path(data.path), data.target
    missing = columns.missing_mask(cells)
    values = columns.as_numbers(cells)
    bad = np.isnan(values) & ~missing
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        if bad.sum() > 0.5 * (~missing).sum() and bad.sum() > 1:
            raise UserError(f"{path}: column {name!r}, data.target, is text ({str(cells[row - 1])!r} in row {row}); "
                            "the target must be a number: set data.target to a numeric column")  # fmt: skip
        _name_bad_cell(path, header, name, cells, missing, row)
    if missing.all():
        raise UserError(f"{path}: column {name!r}, data.target, is missing in every row; set data.target to a "
                        "column with values")  # fmt: skip
    if missing.any() and data.missing == "error":
        _refuse_missing(data, name, cells, missing)
    large = np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0)) > LARGEST_VALUE)
    if len(large):
        _name_bad_cell(path, header, name, cells, missing, int(large[0]) + 1)
    return values, ~missing


def _name_bad_cell(path: Path, header: list[str], name: str, cells: np.ndarray, missing: np.ndarray, row: int):
    """Raise the message for the cell in (1-based) `row` of a numeric column that is not a finite number
    within range: the checked reader's own, word for word, where the column has no missing cell."""
    if not missing.any():
        read_columns(path, [name], header)  # raises, naming the first bad cell of the column
    cell = str(cells[row - 1])
    if cell.lower().lstrip("+-") in ("inf", "infinity"):
        raise UserError(f"{path}: {row_where(path, row)}, column {name!r}: {cell!r} is not a finite number")
    if not np.isnan(columns.as_numbers(np.array([cell]))[0]):
        raise UserError(
            f"{path}: {row_where(path, row)}, column {name!r}: {cell!r} is too large to compute with (beyond "
            f"±{LARGEST_VALUE:g} its square overflows); rescale the column, e.g. divide it by a power of ten"
        )
    raise UserError(f"{path}: {row_where(path, row)}, column {name!r}: {cell!r} is not a number{cell_hint(cell, name)}")


def _refuse_missing(data: DataParams, name: str, cells: np.ndarray, missing: np.ndarray) -> None:
    path = Path(data.path)
    row = int(np.flatnonzero(missing)[0]) + 1
    what = "the cell is empty" if not cells[row - 1] else f"{str(cells[row - 1])!r} marks a missing cell"
    raise UserError(f"{path}: {row_where(path, row)}, column {name!r}: {what}; fill it in or drop the row, or set "
                    "data.missing: impute")  # fmt: skip


def prepare_typed(data: DataParams, header: list[str], features: list[str], folder: Path) -> tuple[int, int, int]:
    """prepare for a table that is not all plain, complete numbers (or data.features: all, or data.columns):
    every column read as text, typed (stages/columns.py), rows without a target left out, the transform
    fitted on the training split, and the encoded features written as the split. Returns (rows, train, test)."""
    path = Path(data.path)
    table = read_cells(path, [*features, data.target], header)
    y, kept = _target_values(data, header, table.pop(data.target))
    where = str(path)
    fitted, lines = [], []
    kinds, parsed = {}, {}  # parsed: each numeric, boolean and date column's values, read once
    for name in features:
        cells = table[name]
        missing = columns.missing_mask(cells)
        kind, bad = columns.infer_type(cells, missing)
        if name in data.columns:
            kind, bad = data.columns[name], None
        if bad is not None:  # the same message as for a table of numbers: the cell, its hint
            _name_bad_cell(path, header, name, cells, missing, bad + 1)
        if missing.any() and data.missing == "error":
            _refuse_missing(data, name, cells, missing)
        if data.features == ALL_FEATURES and name not in data.columns and kind == "numeric" and not missing.any():
            if _is_identifier(cells):
                lines.append(_IDENTIFIER_LINE.format(name=name))
                continue
        if kind != "categorical":  # a cell the type cannot read, or too large, named by its row in the file
            parsed[name] = columns.ColumnTransform(name, kind).values(cells, missing, where)
            large = np.flatnonzero(np.abs(np.nan_to_num(parsed[name][:, 0], nan=0.0)) > LARGEST_VALUE)
            if len(large):
                _name_bad_cell(path, header, name, cells, missing, int(large[0]) + 1)
        kinds[name] = kind
    rows = np.flatnonzero(kept)
    n_left_out = len(y) - len(rows)
    parsed = {name: values[rows] for name, values in parsed.items()}
    train_rows, test_rows = split_rows(len(rows), data.test_size, data.split_seed)
    for name, kind in kinds.items():
        cells = table[name][rows]
        missing = columns.missing_mask(cells)
        column = columns.fit_column(name, kind, cells, missing, train_rows, data.min_frequency, where,
                                    parsed.get(name))  # fmt: skip
        if kind == "categorical" and not column.categories:
            lines.append(columns.describe(column, int(missing.sum()), "every value is rare (fewer than "
                         f"data.min_frequency {data.min_frequency} training rows), as in an identifier or a name: "
                         f"it carries no information and is left out; add it to data.drop to say so"))  # fmt: skip
            continue
        if kind == "categorical" and len(column.categories) + len(column.rare) > columns.MAX_CATEGORIES:
            lines.append(columns.describe(column, int(missing.sum()), f"more than {columns.MAX_CATEGORIES} distinct "
                         "values, an identifier rather than a category: left out; add it to data.drop"))  # fmt: skip
            continue
        fitted.append(column)
        lines.append(columns.describe(column, int(missing.sum())))
    transform = columns.Transform(fitted)
    names = transform.features()
    if not names:
        raise UserError(f"data: no feature is left to train on in {path} (see the lines above); list usable "
                        "columns in data.features")  # fmt: skip
    for line in lines:
        print(line)
    X, _ = transform.encode({column.name: table[column.name][rows] for column in fitted}, where, parsed)
    y = y[rows]
    feature_names = (*names, data.target)
    scaling = fit_scaling(X, y, train_rows, feature_names) if data.standardize else None
    plan = SplitPlan(train_rows, test_rows, scaling)
    if n_left_out:
        print(f"prepare: {n_left_out} row(s) with no {data.target!r} (the target) left out of training and metrics")
    write_split(folder, X, y, tuple(names), data.target, plan, transform.to_dict(), n_left_out)
    return len(rows), len(train_rows), len(test_rows)


class _Identifiers(Exception):
    """Columns found to be identifiers after streaming: the written split is dropped and made again."""


def _stream_prepare(data: DataParams, features: list[str], out: Path) -> tuple[int, int]:
    """stream_split into `out`; with data.features: all, a column of distinct whole numbers is an
    identifier, as on the typed path: it is named and the table streamed again without it."""
    whole = np.ones(len(features) + 1, dtype=bool)
    try:
        with atomic_dir(out) as folder:
            counts = stream_split(replace(data, features=tuple(features)), folder, whole=whole)
            if data.features == ALL_FEATURES:
                ids = [features[j] for j in np.flatnonzero(whole[:-1]) if _distinct(folder, j)]
                if ids:
                    raise _Identifiers(ids)  # nothing of this attempt is kept
        return counts
    except _Identifiers as found:
        ids = found.args[0]
    for name in ids:
        print(_IDENTIFIER_LINE.format(name=name))
    kept = [name for name in features if name not in ids]
    if not kept:
        raise UserError(f"data: no feature is left to train on in {data.path} (see the lines above); list usable "
                        "columns in data.features")  # fmt: skip
    with atomic_dir(out) as folder:
        return stream_split(replace(data, features=tuple(kept)), folder)


def _distinct(folder: Path, j: int) -> bool:
    """Whether feature j of the written split holds a different value in every row (and enough rows)."""
    column = np.concatenate([np.load(folder / f"X_{part}.npy", mmap_mode="r")[:, j] for part in ("train", "test")])
    return len(column) >= IDENTIFIER_MIN_ROWS and len(np.unique(column)) == len(column)


_IDENTIFIER_LINE = (
    "prepare: column {name!r}: a different whole number in every row, an identifier (row numbers, ids): left "
    "out; list it in data.features or data.columns to use it, or in data.drop to say so"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.prepare", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--out", default=str(PREPARED_DIR), help=f"output folder (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    data = load_params(args.params).data
    if not Path(os.path.abspath(data.path)).is_relative_to(Path.cwd()):  # as written: `..` counts, links do not
        print(
            f"prepare: warning: data.path {data.path} is outside the project, so a clone of it elsewhere (CI, "
            "a colleague) will not find the file; copy it into data/ (and `dvc add` it if it is large)",
            file=sys.stderr,
        )
    listed = [] if data.features == ALL_FEATURES else list(data.features)
    header = check_header(data.path, [*listed, data.target])  # not a text file, a missing column: said first
    features = resolve_features(data, header)
    typed = bool(data.columns)
    n_features = len(features)
    try:
        if typed:
            raise FastParseRefused("typed columns")
        n_train, n_test = _stream_prepare(data, features, Path(args.out))
        n_rows = n_train + n_test
        n_features = len(json.loads((Path(args.out) / "meta.json").read_text())["features"])
    except FastParseRefused:
        # The checked path: pandas, every cell judged: a table of numbers with a problem in a cell that
        # data.missing: impute does not cover names it (or, where pandas reads what pyarrow refused, such as
        # spaces before numbers, gives the same split from its values); any other table is typed.
        try:
            table = (
                None if typed or data.features == ALL_FEATURES else read_table(data.path, tuple(features), data.target)
            )
        except UserError:
            table = None
        if table is not None:
            plan = plan_split(table.X, table.y, replace(data, features=tuple(features)))
            with atomic_dir(args.out) as folder:
                write_split(folder, table.X, table.y, table.features, table.target, plan)
            n_rows, n_train, n_test = len(table.y), len(plan.train_rows), len(plan.test_rows)
        else:
            with atomic_dir(args.out) as folder:
                n_rows, n_train, n_test = prepare_typed(data, header, features, folder)
            n_features = len(json.loads((Path(args.out) / "meta.json").read_text())["features"])
    print(
        f"prepare: {data.path}: {n_rows} rows, {n_features} feature(s) -> "
        f"{n_train} train / {n_test} test rows in {args.out}"
    )


if __name__ == "__main__":
    sys.exit(run_stage(main))
