"""Stage `prepare`: read and check the CSV named in params.yaml, split it, and store the splits."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from stages.csv_input import read_table
from stages.errors import UserError, run_stage
from stages.io import atomic_dir
from stages.params import DataParams, load_params
from stages.paths import PREPARED_DIR
from stages.prepared import Scaling, SplitPlan, seeded_split, write_split

MIN_TRAIN_ROWS = 2


def split_rows(n_rows: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test splits, each in file order; test has ceil(test_size * n_rows) rows."""
    train_rows, test_rows = seeded_split(n_rows, test_size, seed)
    if len(train_rows) < MIN_TRAIN_ROWS:
        raise UserError(
            f"data: {n_rows} rows with data.test_size {test_size} leave {len(train_rows)} training rows; "
            f"training needs at least {MIN_TRAIN_ROWS}: lower data.test_size or add rows"
        )
    return train_rows, test_rows


def fit_scaling(X: np.ndarray, y: np.ndarray, rows: np.ndarray, names: tuple[str, ...]) -> Scaling:
    """Mean and population std of each column of X and of y over the given rows; `names` are X's columns
    then y's. A constant column is an error."""
    columns = [*(X[rows, j] for j in range(X.shape[1])), y[rows]]
    means, stds = [], []
    for name, values in zip(names, columns, strict=True):
        std = float(values.std())
        if not std > 0:
            raise UserError(
                f"data: column {name!r} is constant ({values[0]:g}) on the training split, so it cannot be scaled; "
                "set data.standardize: false or drop the column from data.features"
            )
        means.append(float(values.mean()))
        stds.append(std)
    return Scaling(tuple(means[:-1]), tuple(stds[:-1]), means[-1], stds[-1])


def plan_split(X: np.ndarray, y: np.ndarray, data: DataParams) -> SplitPlan:
    """The seeded train/test assignment of the rows and, with data.standardize, the training scaling."""
    train_rows, test_rows = split_rows(len(y), data.test_size, data.split_seed)
    scaling = fit_scaling(X, y, train_rows, (*data.features, data.target)) if data.standardize else None
    return SplitPlan(train_rows, test_rows, scaling)


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
    table = read_table(data.path, data.features, data.target)
    plan = plan_split(table.X, table.y, data)
    with atomic_dir(args.out) as folder:
        write_split(folder, table.X, table.y, table.features, table.target, plan)
    print(
        f"prepare: {data.path}: {len(table.y)} rows, {len(table.features)} feature(s) -> "
        f"{len(plan.train_rows)} train / {len(plan.test_rows)} test rows in {args.out}"
    )


if __name__ == "__main__":
    sys.exit(run_stage(main))
