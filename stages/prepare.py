"""Stage `prepare`: read and check the CSV named in params.yaml, split it, and store the splits."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stages.data import PREPARED_DIR, fit_scaling, read_table, split_rows, write_split
from stages.errors import run_stage
from stages.io import atomic_dir
from stages.params import load_params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.prepare", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--out", default=str(PREPARED_DIR), help=f"output folder (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    data = load_params(args.params).data
    if not Path(os.path.abspath(data.path)).is_relative_to(Path.cwd()):  # as written: `..` counts, links do not
        print(f"prepare: warning: data.path {data.path} is outside the project, so a clone of it elsewhere (CI, "
              "a colleague) will not find the file; copy it into data/ (and `dvc add` it if it is large)",
              file=sys.stderr)
    table = read_table(data.path, data.features, data.target)
    train_rows, test_rows = split_rows(len(table.y), data.test_size, data.split_seed)
    scaling = fit_scaling(table, train_rows) if data.standardize else None
    with atomic_dir(args.out) as folder:
        write_split(folder, table, train_rows, test_rows, scaling)
    print(
        f"prepare: {data.path}: {len(table.y)} rows, {len(table.features)} feature(s) -> "
        f"{len(train_rows)} train / {len(test_rows)} test rows in {args.out}"
    )


if __name__ == "__main__":
    sys.exit(run_stage(main))
