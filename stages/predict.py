"""Apply a trained model to a CSV: `python -m stages.predict MODEL CSV -o OUT.csv`.

Reads any model the pipeline wrote (models/<name>.pt), checks that the CSV has the model's feature
columns, applies the stored scaling, and writes the input rows with a `prediction` column appended
(in the target's original units). Not a DVC stage: a tool for users.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from stages.data import read_columns, read_header
from stages.errors import UserError, run_stage
from stages.io import write_text

PREDICTION_COLUMN = "prediction"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model file written by the pipeline, e.g. models/mlp.pt")
    parser.add_argument("csv", help="CSV with the model's feature columns (other columns are kept)")
    parser.add_argument("-o", "--output", required=True, help="where to write the rows with predictions")
    args = parser.parse_args(argv)

    header = read_header(args.csv)
    if PREDICTION_COLUMN in header:
        raise UserError(f"{args.csv}: already has a column {PREDICTION_COLUMN!r}; rename or drop it first")

    import pandas as pd
    import torch

    from stages import models
    from stages.data import Scaling

    torch.set_num_threads(1)
    model, saved = models.load_model(args.model)
    features = saved["features"]
    missing = [name for name in features if name not in header]
    if missing:
        raise UserError(
            f"{args.csv}: missing the model's feature column(s) {', '.join(map(repr, missing))} "
            f"({args.model} was trained on {', '.join(map(repr, features))}); the columns are "
            f"{', '.join(map(repr, header))}"
        )
    X = read_columns(args.csv, features)
    scaling = Scaling.from_dict(saved["scaling"]) if saved["scaling"] else None
    predictions = models.predict(model, X, scaling)

    rows = pd.read_csv(args.csv, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    rows[PREDICTION_COLUMN] = [repr(value) for value in predictions.tolist()]
    text = io.StringIO()
    rows.to_csv(text, index=False, lineterminator="\n")
    write_text(Path(args.output), text.getvalue())
    print(f"predict: {len(predictions)} rows from {args.csv} through {args.model} -> {args.output}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
