"""Reading and checking the user's CSV, splitting rows, and the prepared-split files stages share.

No torch here: `prepare`, `evaluate` and `plot` import this module and must start fast.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import UserError

PREPARED_DIR = Path("data/prepared")
MIN_TRAIN_ROWS = 2


@dataclass(frozen=True)
class Table:
    """Numeric columns of the CSV in file order: X is (rows, features), y is (rows,)."""

    features: tuple[str, ...]
    target: str
    X: np.ndarray
    y: np.ndarray


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

    @classmethod
    def identity(cls, n_features: int) -> Scaling:
        return cls((0.0,) * n_features, (1.0,) * n_features, 0.0, 1.0)


@dataclass(frozen=True)
class Split:
    """Train and test rows of a table (test may be empty), with the scaling the models must use."""

    features: tuple[str, ...]
    target: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scaling: Scaling | None


def _read_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; point data.path in params.yaml at an existing CSV") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a CSV file; point data.path at a file") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: byte {err.start} of the header is not UTF-8 text; is this really a CSV?") from None
    if not first.strip():
        raise UserError(f"{path}: the file is empty or its first line is blank; it needs a header row like x,y")
    return next(csv.reader([first], skipinitialspace=True))


def _check_columns(path: Path, header: list[str], wanted: list[str]) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(f"{path}: header names column {', '.join(map(repr, repeated))} more than once; rename the duplicates")
    for name in wanted:
        if name not in header:
            hint = ""
            if len(header) == 1 and any(sep in header[0] for sep in (";", "\t")):
                hint = "; the header is a single column, so the file looks like it uses ';' or tabs instead of commas"
            raise UserError(
                f"{path}: column {name!r} not found; the columns are {', '.join(map(repr, header))}{hint}"
            )


def _numeric_column(path: Path, frame, name: str) -> np.ndarray:
    import pandas as pd

    column = frame[name]
    if column.dtype.kind not in "iuf":
        as_number = pd.to_numeric(column, errors="coerce")
        bad = as_number.isna() & column.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"{path}: row {row + 1}, column {name!r}: {column.iloc[row]!r} is not a number"
            )
        column = as_number
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise UserError(f"{path}: row {row + 1}, column {name!r}: the cell is empty; fill it in or drop the row")
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise UserError(f"{path}: row {row + 1}, column {name!r}: {values[row]} is not a finite number")
    return values


def read_table(path: str | Path, features: tuple[str, ...], target: str) -> Table:
    """Read the feature and target columns of a CSV as float64, or raise UserError naming the bad cell.

    Rows are numbered from 1 for the first line after the header.
    """
    import pandas as pd

    path = Path(path)
    header = _read_header(path)
    wanted = [*features, target]
    _check_columns(path, header, wanted)
    try:
        # No usecols: with it, pandas silently drops the extra fields of a too-long row.
        frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: byte {err.start} is not UTF-8 text; is this really a CSV?") from None
    except pd.errors.ParserError as err:
        raise UserError(f"{path}: {str(err).strip()}; every row needs one field per header column") from None
    if len(frame) == 0:
        raise UserError(f"{path}: the file has a header but no data rows")
    X = np.column_stack([_numeric_column(path, frame, name) for name in features])
    y = _numeric_column(path, frame, target)
    return Table(features=tuple(features), target=target, X=X, y=y)


def split_rows(n_rows: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test splits, each in file order; test has ceil(test_size * n_rows) rows."""
    n_test = math.ceil(test_size * n_rows) if test_size > 0 else 0
    n_train = n_rows - n_test
    if n_train < MIN_TRAIN_ROWS:
        raise UserError(
            f"data: {n_rows} rows with data.test_size {test_size} leave {n_train} training rows; "
            f"training needs at least {MIN_TRAIN_ROWS}: lower data.test_size or add rows"
        )
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit_scaling(table: Table, rows: np.ndarray) -> Scaling:
    """Mean and population std of each column over the given rows; a constant column is an error."""
    columns = [*(table.X[rows, j] for j in range(len(table.features))), table.y[rows]]
    names = [*table.features, table.target]
    means, stds = [], []
    for name, values in zip(names, columns):
        std = float(values.std())
        if not std > 0:
            raise UserError(
                f"data: column {name!r} is constant ({values[0]:g}) on the training split, so it cannot be scaled; "
                "set data.standardize: false or drop the column from data.features"
            )
        means.append(float(values.mean()))
        stds.append(std)
    return Scaling(tuple(means[:-1]), tuple(stds[:-1]), means[-1], stds[-1])


def write_split(folder: Path, split: Split) -> None:
    """Write the split as .npy arrays plus meta.json into an (empty, temporary) folder."""
    for name in ("X_train", "y_train", "X_test", "y_test"):
        with (folder / f"{name}.npy").open("wb") as handle:
            np.save(handle, np.ascontiguousarray(getattr(split, name), dtype=np.float64))
    meta = {
        "features": list(split.features),
        "target": split.target,
        "n_train": int(len(split.y_train)),
        "n_test": int(len(split.y_test)),
        "scaling": split.scaling.to_dict() if split.scaling else None,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_split(folder: str | Path = PREPARED_DIR) -> Split:
    """Load what `prepare` wrote."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy") for name in ("X_train", "y_train", "X_test", "y_test")}
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: missing; run `dvc repro prepare` first") from None
    scaling = Scaling.from_dict(meta["scaling"]) if meta["scaling"] else None
    return Split(features=tuple(meta["features"]), target=meta["target"], scaling=scaling, **arrays)
