"""Stage `prepare`: read and check the CSV named in params.yaml, split it, and store the splits."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from stages.csv_input import FastParseRefused, check_header, check_spread, column_hint, stream_columns
from stages.errors import UserError, run_stage
from stages.io import atomic_dir
from stages.params import ALL_FEATURES, DataParams, load_params
from stages.paths import PREPARED_DIR
from stages.prepared import SPLIT_GROUP_ROWS, ScalingFit, SplitWriter, held_out_in_group, write_meta
from stages.typed_split import IDENTIFIER_LINE, check_training_rows, is_identifier, prepare_typed

# A group buffer starts at this many bytes and doubles as rows arrive, up to a whole group: a short, wide
# table (50 rows of 4,000 columns) takes what its rows need, not 2^20 rows of its width.
GROUP_BUFFER_START_BYTES = 16 << 20


class _GroupBuffer:
    """Rows gathered from the parser's blocks into groups of SPLIT_GROUP_ROWS, the unit of the split: the
    features row-major, as the split files store them, and the target."""

    def __init__(self, n_features: int, group_rows: int) -> None:
        self.group_rows = group_rows
        rows = min(group_rows, max(1, GROUP_BUFFER_START_BYTES // (8 * (n_features + 1))))
        self.X = np.empty((rows, n_features), dtype=np.float64)
        self.y = np.empty(rows, dtype=np.float64)
        self.filled = 0

    def _grow(self) -> None:
        rows = min(self.group_rows, 2 * len(self.y))
        X, y = np.empty((rows, self.X.shape[1]), dtype=np.float64), np.empty(rows, dtype=np.float64)
        X[: self.filled], y[: self.filled] = self.X[: self.filled], self.y[: self.filled]
        self.X, self.y = X, y

    def fill(self, block: np.ndarray) -> np.ndarray:
        """Copy in as much of `block` (features, then the target) as the group holds; return the rest."""
        if self.filled + len(block) > len(self.y) and len(self.y) < self.group_rows:
            self._grow()
        take = min(len(block), len(self.y) - self.filled)
        self.X[self.filled : self.filled + take] = block[:take, :-1]
        self.y[self.filled : self.filled + take] = block[:take, -1]
        self.filled += take
        return block[take:]

    @property
    def full(self) -> bool:
        return self.filled == self.group_rows


def stream_split(
    data: DataParams, folder: Path, group_rows: int = SPLIT_GROUP_ROWS, whole: np.ndarray | None = None
) -> tuple[int, int]:
    """prepare for a table of plain, complete numbers, of any length: parse the CSV with pyarrow block by
    block, assign each group of rows to the splits as it completes (seeded_split's rows), and append them
    to the split files, so memory holds one group, never the table. Returns (train rows, test rows).
    Raises FastParseRefused at any cell that is not a plain number (the typed path reads the table then,
    and names a problem) and at every other condition it would refuse (it names them).

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
        raise FastParseRefused("no data rows")  # prepare_typed says so
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


class _Identifiers(Exception):
    """Columns found to be identifiers after streaming: the written split is dropped and made again."""


def file_state(path: str | Path) -> tuple[int, int, int]:
    """What changes when a file is written to: its size, modification time and inode (a file replaced)."""
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns, status.st_ino


@contextmanager
def split_folder(out: Path, data: DataParams, state: tuple[int, int, int]) -> Iterator[Path]:
    """atomic_dir(out), swapped into place only if data.path is still the file that was read (`state`, taken
    before reading): DVC hashes the file after the stage, and must hash what the splits were made of."""
    with atomic_dir(out) as folder:
        yield folder
        if file_state(data.path) != state:
            raise UserError(f"{data.path} changed while it was read; run dvc repro again")


def _stream_prepare(data: DataParams, features: list[str], out: Path, state: tuple[int, int, int]) -> tuple[int, int]:
    """stream_split into `out`; with data.features: all, a column of distinct whole numbers is an
    identifier, as on the typed path: it is named and the table streamed again without it."""
    whole = np.ones(len(features) + 1, dtype=bool)
    try:
        with split_folder(out, data, state) as folder:
            counts = stream_split(replace(data, features=tuple(features)), folder, whole=whole)
            if data.features == ALL_FEATURES:
                ids = [features[j] for j in np.flatnonzero(whole[:-1]) if _distinct(folder, j)]
                if ids:
                    raise _Identifiers(ids)  # nothing of this attempt is kept
        return counts
    except _Identifiers as found:
        ids = found.args[0]
    for name in ids:
        print(IDENTIFIER_LINE.format(name=name))
    kept = [name for name in features if name not in ids]
    if not kept:
        raise UserError(f"data: no feature is left to train on in {data.path} (see the lines above); list usable "
                        "columns in data.features")  # fmt: skip
    with split_folder(out, data, state) as folder:
        return stream_split(replace(data, features=tuple(kept)), folder)


def _distinct(folder: Path, j: int) -> bool:
    """Whether feature j of the written split holds a different value in every row (and enough rows)."""
    return is_identifier(
        np.concatenate([np.load(folder / f"X_{part}.npy", mmap_mode="r")[:, j] for part in ("train", "test")])
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
    state = file_state(data.path)  # before the rows are read
    features = resolve_features(data, header)
    try:
        if data.columns:
            raise FastParseRefused("typed columns")
        n_train, n_test = _stream_prepare(data, features, Path(args.out), state)
        n_rows = n_train + n_test
    except FastParseRefused:  # a cell that is not a plain number: text, a missing cell, a typo (named there)
        with split_folder(Path(args.out), data, state) as folder:
            n_rows, n_train, n_test = prepare_typed(data, header, features, folder)
    n_features = len(json.loads((Path(args.out) / "meta.json").read_text())["features"])
    print(
        f"prepare: {data.path}: {n_rows} rows, {n_features} feature(s) -> "
        f"{n_train} train / {n_test} test rows in {args.out}"
    )


if __name__ == "__main__":
    sys.exit(run_stage(main))
