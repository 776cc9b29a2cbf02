"""Columns that are not plain numbers: their types, inferred from the file, and the fitted transform that
turns raw cells (text categories, yes/no, dates, missing cells) into the model's numeric features.

The transform is plain data (Transform.to_dict), stored in the prepared meta and in every model file, and
applied the same way by `prepare` (to the table's rows) and `predict` (to a new CSV's rows). No torch,
no pandas: cells arrive as numpy arrays of str.

Rules (docs/pipeline.md "Column types"):
- a cell is missing when it is empty or one of MISSING_CELLS (the spellings pandas reads as missing);
- a column is numeric when every present cell is a number, boolean when every present cell is one of
  yes/no, true/false, y/n, t/f (any case), a date when every present cell is an ISO 8601 date or date-time,
  and categorical otherwise, except that a column of which at least NUMERIC_SHARE of the present cells
  are numbers is an error naming the first cell that is not (a stray `1,234` or `12%` is a typo to fix,
  not a category);
- data.columns overrides the inferred type of a column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from stages.errors import UserError

TYPES = ("numeric", "categorical", "boolean", "date")
# pandas' default missing-value spellings (pandas.read_csv's na_values), an empty cell among them
MISSING_CELLS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})  # fmt: skip
TRUE_CELLS = frozenset({"yes", "true", "y", "t"})
FALSE_CELLS = frozenset({"no", "false", "n", "f"})
NUMERIC_SHARE = 0.9  # a column this much numbers is numeric with typos in it, not categorical
# A categorical column with more distinct values than this is an identifier (names, ids), not a category
MAX_CATEGORIES = 100_000
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
DATE_PARTS = ("days", "year", "month", "weekday")  # days since 1970-01-01 (UTC), year, month 1-12, Monday = 0
MISSING, INFREQUENT = "(missing)", "(infrequent)"


def missing_mask(cells: np.ndarray) -> np.ndarray:
    """Which cells (str, already stripped of surrounding spaces) are missing."""
    return np.isin(cells, list(MISSING_CELLS))


def as_numbers(cells: np.ndarray) -> np.ndarray:
    """float64 of each cell, NaN where a cell is not a plain number (or is missing)."""
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except ValueError:
            continue
    out[np.isnan(out)] = np.nan  # 'nan' spelled out is missing, not a number (inf stays: it is refused later)
    return out


def _all_numbers(cells: np.ndarray) -> np.ndarray | None:
    """float64 of the cells when every one is a number (the fast, usual case), else None."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        return None
    return None if np.isnan(values).any() else values


def as_booleans(cells: np.ndarray) -> np.ndarray:
    """1.0 / 0.0 per cell, NaN where it is not a yes/no spelling."""
    lower = np.char.lower(cells.astype(str))
    return np.where(np.isin(lower, list(TRUE_CELLS)), 1.0, np.where(np.isin(lower, list(FALSE_CELLS)), 0.0, np.nan))


def as_dates(cells: np.ndarray) -> np.ndarray:
    """(cells, 4) float64 of DATE_PARTS, NaN rows where a cell is not an ISO 8601 date or date-time."""
    out = np.full((len(cells), len(DATE_PARTS)), np.nan)
    ok = np.array([bool(ISO_DATE.fullmatch(cell)) for cell in cells], dtype=bool)
    if not ok.any():
        return out
    import datetime as dt

    for i in np.flatnonzero(ok):
        text = cells[i].replace(" ", "T", 1).replace("Z", "+00:00")
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            continue
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        days = (when - dt.datetime(1970, 1, 1)).total_seconds() / 86400
        out[i] = (days, when.year, when.month, when.weekday())
    return out


def infer_type(cells: np.ndarray, missing: np.ndarray) -> tuple[str, int | None]:
    """(type, position of the first bad cell) of a column from its present cells: the bad cell is set for
    a column that is NUMERIC_SHARE numbers but not all (the caller names it and refuses the file)."""
    present = cells[~missing]
    if not len(present) or _all_numbers(present) is not None:
        return "numeric", None
    numbers = ~np.isnan(as_numbers(present))
    kind = type_of(len(present), int(numbers.sum()), not np.isnan(as_booleans(present)).any(),
                   not np.isnan(as_dates(present)[:, 0]).any())  # fmt: skip
    return kind, int(np.flatnonzero(~missing)[np.flatnonzero(~numbers)[0]]) if kind == "numeric" else None


def type_of(present: int, numbers: int, booleans: bool, dates: bool) -> str:
    """The rule: a column's type from how many of its cells are present and how many of those are numbers,
    and whether every present one is yes/no (booleans) or a date (dates). A numeric column with fewer
    numbers than present cells has a typo to name."""
    if numbers >= NUMERIC_SHARE * present:
        return "numeric"
    return "boolean" if booleans else "date" if dates else "categorical"


@dataclass
class ColumnTransform:
    """What the training split taught about one column. numeric/boolean/date: `medians` (one per output
    value) replace missing cells, and `indicator` adds a 0/1 feature where the training split had missing
    cells. categorical: `categories` kept (sorted), `infrequent` whether a group of rare ones exists."""

    name: str
    type: str
    medians: list[float] = field(default_factory=list)
    indicator: bool = False
    categories: list[str] = field(default_factory=list)
    infrequent: bool = False
    rare: list[str] = field(default_factory=list)  # seen in training, too rarely to keep: not "unseen" later

    def features(self) -> list[str]:
        """The names of the encoded features this column gives, in order."""
        if self.type == "categorical":
            kept = [f"{self.name}={c}" for c in self.categories]
            return kept + ([f"{self.name}={INFREQUENT}"] if self.infrequent else [])
        if self.type == "date":
            names = [f"{self.name} ({part})" for part in DATE_PARTS]
        else:
            names = [self.name]
        return names + ([f"{self.name} (missing)"] if self.indicator else [])

    def values(self, cells: np.ndarray, missing: np.ndarray, where: str) -> np.ndarray:
        """(rows, len(features())) float64 raw values of the column's present cells (NaN where missing),
        for numeric, boolean and date columns. `where` names the file for a cell that does not parse."""
        if self.type == "numeric":
            values = _all_numbers(np.where(missing, "nan", cells))
            values = as_numbers(cells) if values is None else values
            parsed = values[:, None]
        elif self.type == "boolean":
            parsed = as_booleans(cells)[:, None]
        else:
            parsed = as_dates(cells)
        bad = np.isnan(parsed[:, 0]) & ~missing
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise not_of_type(where, f"row {row + 1}", self.name, str(cells[row]), self.type)
        parsed[missing] = np.nan
        return parsed

    def encode(
        self, cells: np.ndarray, missing: np.ndarray, where: str, parsed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(rows, len(features())) float64, and for a categorical column which rows hold a category the
        training rows never had (they count as infrequent: the infrequent feature, or all zeros without one)."""
        if self.type == "categorical":
            keys = np.where(missing, MISSING, cells)
            distinct, inverse = np.unique(keys, return_inverse=True)
            index = {c: j for j, c in enumerate(self.categories)}
            infrequent = len(self.categories) if self.infrequent else -1
            rare = set(self.rare)
            slot = np.array([index.get(c, infrequent) for c in distinct.tolist()], dtype=np.int64)
            known = np.array([c in index or c in rare for c in distinct.tolist()], dtype=bool)
            out = np.zeros((len(cells), len(self.features())))
            columns = slot[inverse]
            hit = np.flatnonzero(columns >= 0)
            out[hit, columns[hit]] = 1.0
            return out, ~known[inverse]
        parsed = self.values(cells, missing, where) if parsed is None else parsed  # (values() of these cells)
        gaps = np.isnan(parsed)
        filled = np.where(gaps, np.asarray(self.medians), parsed)
        if self.indicator:
            filled = np.column_stack([filled, gaps[:, 0].astype(np.float64)])
        return filled, None

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "type": self.type}
        if self.type == "categorical":
            out.update(categories=self.categories, infrequent=self.infrequent, rare=self.rare)
        else:
            out.update(medians=self.medians, indicator=self.indicator)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> ColumnTransform:
        return cls(
            raw["name"], raw["type"], medians=[float(v) for v in raw.get("medians", [])],
            indicator=bool(raw.get("indicator", False)), categories=[str(c) for c in raw.get("categories", [])],
            infrequent=bool(raw.get("infrequent", False)), rare=[str(c) for c in raw.get("rare", [])],
        )  # fmt: skip


_TYPE_WORDS = {"numeric": "a number", "boolean": "yes/no, true/false, y/n or t/f", "date": "an ISO 8601 date"}


def not_of_type(where: str, row: str, name: str, cell: str, kind: str) -> UserError:
    """The error for a cell that the column's type (numeric, boolean, date) cannot read."""
    return UserError(
        f"{where}: {row}, column {name!r}: {cell!r} is not {_TYPE_WORDS[kind]} (the column is {kind}); fix the "
        f"cell, or set data.columns: {{{name}: categorical}}"
    )


def fit_column(name: str, kind: str, cells: np.ndarray, missing: np.ndarray, train: np.ndarray, min_frequency: int,
               where: str, parsed: np.ndarray | None = None) -> ColumnTransform:  # fmt: skip
    """The column's transform, fitted on the training rows `train` (indices). `parsed`: values() of all the
    cells, where the caller has them already (numeric, boolean and date columns)."""
    if kind == "categorical":
        names, counts = np.unique(np.where(missing[train], MISSING, cells[train]), return_counts=True)
        return categories_of(name, dict(zip(names.tolist(), counts.tolist(), strict=True)), min_frequency)
    column = ColumnTransform(name, kind)
    parsed = column.values(cells[train], missing[train], where) if parsed is None else parsed[train]
    gaps = np.isnan(parsed[:, 0])
    if gaps.all():
        raise UserError(
            f"{where}: column {name!r} has no value in any training row; drop it (data.drop: [{name}]) or fill it in"
        )
    column.medians = [float(np.median(parsed[~gaps, j])) for j in range(parsed.shape[1])]
    column.indicator = bool(gaps.any())
    return column


def categories_of(name: str, counts: dict[str, int], min_frequency: int) -> ColumnTransform:
    """A categorical column's transform from its training rows' count of each value (MISSING for the
    missing cells): kept in sorted order where seen min_frequency times, the rest grouped as infrequent."""
    seen = sorted(counts.items())
    column = ColumnTransform(name, "categorical")
    column.categories = [key for key, count in seen if count >= min_frequency]
    column.rare = [key for key, count in seen if count < min_frequency]
    column.infrequent = bool(column.rare)
    return column


@dataclass
class Transform:
    """Every feature column's transform, in data.features order. The model's inputs, features(), are the
    numeric, boolean and date columns' features (with their missing indicators) in column order, then each
    categorical column's one-hot block in column order: the prepared split keeps the first part as numbers
    and each block as one code per row (stages/prepared.py, Encoded)."""

    columns: list[ColumnTransform]

    def ordered(self) -> list[ColumnTransform]:
        """The columns in the order their features come: numbers first, then the categorical ones."""
        return [c for c in self.columns if c.type != "categorical"] + [
            c for c in self.columns if c.type == "categorical"
        ]

    def features(self) -> list[str]:
        return [name for column in self.ordered() for name in column.features()]

    def one_hot_widths(self) -> list[int]:
        """The width of each categorical column's one-hot block, in order (they end the features)."""
        return [len(column.features()) for column in self.columns if column.type == "categorical"]

    def encode(
        self, table: dict[str, np.ndarray], where: str, parsed: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, int]:
        """(rows, features) float64 of the raw cells in `table` (column name -> stripped str cells), and how
        many rows hold a category the training rows never had. `parsed`: values() of columns already read."""
        n_rows = len(next(iter(table.values()))) if table else 0
        parts, unseen = [], np.zeros(n_rows, dtype=bool)
        for column in self.ordered():
            cells = table[column.name]
            part, new = column.encode(cells, missing_mask(cells), where, (parsed or {}).get(column.name))
            parts.append(part)
            if new is not None:
                unseen |= new
        X = np.concatenate(parts, axis=1) if parts else np.zeros((n_rows, 0))
        return X, int(unseen.sum())

    def to_dict(self) -> dict:
        return {"columns": [column.to_dict() for column in self.columns]}

    @classmethod
    def from_dict(cls, raw: dict) -> Transform:
        return cls([ColumnTransform.from_dict(column) for column in raw["columns"]])


def describe(column: ColumnTransform, n_missing: int, dropped: str | None = None) -> str:
    """The prepare log's line for a column."""
    text = f"prepare: column {column.name!r}: {column.type}, {n_missing} missing"
    if dropped:
        return f"{text}; {dropped}"
    if column.type == "categorical":
        shown = ", ".join(column.categories[:10]) + (", ..." if len(column.categories) > 10 else "")
        rare = f", {len(column.rare)} rare grouped as {INFREQUENT}" if column.infrequent else ""
        return f"{text}, {len(column.categories)} categories kept ({shown}){rare}"
    if column.indicator:
        return f"{text} (imputed with the training median, plus a '{column.name} (missing)' indicator)"
    return text
