"""Which columns a trained model uses (train): permutation importance and partial dependence, per raw column
of the CSV (a text column's one-hot block, or a number with its missing indicator, moved as one).

Both are measured on a seeded sample of the test rows (the training rows when there is no test split), in
the target's original units, through models.predict: the same for a linear model and an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages import models
from stages.prepared import Encoded, Split, sample_rows

IMPORTANCE_ROWS = 20_000  # rows sampled for the importance: its noise falls as 1/sqrt(rows), its cost grows
REPEATS = 5  # permutations per column, averaged
DEPENDENCE_COLUMNS = 10  # partial dependence of this many of the most important columns
DEPENDENCE_ROWS = 500  # rows averaged at each point of a dependence curve
GRID_POINTS = 20  # points of a numeric column's curve: its 5% to 95% quantiles
GRID_CATEGORIES = 30  # a text column's curve: its first categories, in the order of its one-hot block


@dataclass(frozen=True)
class RawColumn:
    """A column of the CSV as the model sees it: its kind (numeric, boolean, date, categorical), the
    positions of its encoded features, and for a compact split's text column the index of its codes."""

    name: str
    kind: str
    positions: tuple[int, ...]
    code: int | None = None


def raw_columns(split: Split) -> list[RawColumn]:
    """The raw columns behind the split's features, in the features' order."""
    kinds = {column["name"]: column["type"] for column in (split.transform or {}).get("columns", [])}
    positions: dict[str, list[int]] = {}
    for j, name in enumerate(split.columns_of_features()):
        positions.setdefault(name, []).append(j)
    coded = isinstance(split.X_train, Encoded)
    codes = iter(range(len(split.X_train.widths) if coded else 0))
    out = []
    for name, where in positions.items():
        kind = kinds.get(name, "numeric")
        out.append(RawColumn(name, kind, tuple(where), next(codes) if coded and kind == "categorical" else None))
    return out


def _rows(X: np.ndarray | Encoded, rows: np.ndarray) -> np.ndarray | Encoded:
    """A writable copy of the rows."""
    if isinstance(X, Encoded):
        return Encoded(np.array(X.dense[rows]), np.array(X.codes[rows]), X.widths)
    return np.array(X[rows])


def _holder(X: np.ndarray | Encoded, column: RawColumn) -> tuple[np.ndarray, list[int]]:
    """(the array that holds the column's values in X, which of its columns): the codes of a compact
    split's text column, else the numbers at the column's positions."""
    if column.code is not None:
        return X.codes, [column.code]
    return (X.dense if isinstance(X, Encoded) else X), list(column.positions)


def evaluation_rows(split: Split, seed: int, limit: int = IMPORTANCE_ROWS):
    """(which split, X, y) of a seeded sample of at most `limit` test rows (training rows without a test
    split), as a writable copy."""
    name, X, y = ("test", split.X_test, split.y_test) if len(split.y_test) else ("train", split.X_train, split.y_train)
    rows = sample_rows(len(y), limit, seed)
    return name, _rows(X, rows), np.asarray(y[rows], dtype=np.float64)


def permutation_importance(model, X, y: np.ndarray, scaling, columns: list[RawColumn], seed: int) -> dict:
    """How much each column's rows, shuffled among themselves (its encoded features together), raise the
    mean squared error: the mean over REPEATS seeded permutations, and their standard deviation."""
    base = float(np.mean((models.predict(model, X, scaling) - y) ** 2))
    rng = np.random.default_rng(seed)
    increase, spread = {}, {}
    for column in columns:
        target, where = _holder(X, column)
        original = target[:, where].copy()
        scores = []
        for _ in range(REPEATS):
            target[:, where] = original[rng.permutation(len(y))]
            scores.append(float(np.mean((models.predict(model, X, scaling) - y) ** 2)) - base)
        target[:, where] = original
        increase[column.name], spread[column.name] = float(np.mean(scores)), float(np.std(scores))
    return {"mse": base, "mse_increase": increase, "mse_increase_std": spread, "repeats": REPEATS}


def _grid(column: RawColumn, values: np.ndarray, transform: dict | None) -> tuple[list, list]:
    """(labels, values to set) of a column's dependence curve."""
    if column.kind == "categorical":
        found = next(c for c in transform["columns"] if c["name"] == column.name)
        labels = [*found["categories"], *(["(infrequent)"] if found["infrequent"] else [])][:GRID_CATEGORIES]
        return labels, list(range(len(labels)))
    if column.kind == "boolean":
        return [0.0, 1.0], [0.0, 1.0]
    grid = np.unique(np.quantile(values[:, 0], np.linspace(0.05, 0.95, GRID_POINTS))).tolist()
    return grid, grid


def partial_dependence(model, X, scaling, columns: list[RawColumn], importance: dict, transform: dict | None) -> dict:
    """The model's mean prediction over DEPENDENCE_ROWS rows with one column set to each point of its grid
    (a number's missing indicator set to 0), for the DEPENDENCE_COLUMNS most important columns (dates
    aside: their parts move together). {column: {"kind", "grid", "mean"}}, most important first."""
    rows = _rows(X, np.arange(min(DEPENDENCE_ROWS, len(X))))
    ranked = sorted((c for c in columns if c.kind != "date"), key=lambda c: -importance["mse_increase"][c.name])
    curves = {}
    for column in ranked[:DEPENDENCE_COLUMNS]:
        target, where = _holder(rows, column)
        saved = target[:, where].copy()
        labels, settings = _grid(column, saved, transform)
        means = []
        for setting in settings:
            target[:, where[0]] = setting
            if len(where) > 1:  # a number's missing indicator: present
                target[:, where[1:]] = 0.0
            means.append(float(np.mean(models.predict(model, rows, scaling))))
        target[:, where] = saved
        curves[column.name] = {"kind": column.kind, "grid": labels, "mean": means}
    return curves


def standardized_coefficients(coefficients: dict, stds: np.ndarray, y: np.ndarray, features) -> dict:
    """A linear model's weights in standard deviations of the target per standard deviation of each feature
    (`stds`, over the training rows: prepared.feature_stats): comparable across features of any units."""
    y_std = float(np.std(y))
    return {name: float(coefficients[name] * std / y_std) if y_std else 0.0
            for name, std in zip(features, stds, strict=True)}  # fmt: skip
