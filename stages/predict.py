"""Apply a trained model to a CSV: `python -m stages.predict MODEL CSV -o OUT.csv`.

Reads any model the pipeline wrote (models/<name>.pt), checks that the CSV has the model's feature
columns, applies the stored scaling, and writes the input rows with a `prediction` column appended
(in the target's original units). Not a DVC stage: a tool for users.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import itertools
import os
import stat
import sys
from pathlib import Path

import numpy as np

from stages.csv_input import is_blank_record, normalization_hint, read_cells, read_columns, read_header
from stages.errors import UserError, os_error_message, run_stage
from stages.io import atomic_open, file_kind
from stages.memory import available_bytes, gib
from stages.model_file import check_model_file

PREDICTION_COLUMN = "prediction"
PREDICTION_BLOCK = 65536  # predictions turned into Python floats this many at a time


def prediction_texts(predictions: np.ndarray, dtype: str) -> np.ndarray:
    """Each prediction with the digits the model's dtype carries: the shortest text that reads back as the
    same float32 (or float64) value, so a float32 model's 3.0000005 is not written as 3.000000476837158."""
    return predictions.astype(np.float32 if dtype == "float32" else np.float64).astype(str)


def write_with_predictions(source: Path, predictions: np.ndarray, output: Path, dtype: str = "float64") -> None:
    """The input's records with a prediction column appended, streamed record by record (memory does not
    grow with the row count), written atomically. Records are what read_columns counted as rows: blank
    and whitespace-only lines are skipped, leading spaces in fields dropped."""
    values = itertools.chain.from_iterable(
        prediction_texts(predictions[start : start + PREDICTION_BLOCK], dtype).tolist()
        for start in range(0, len(predictions), PREDICTION_BLOCK)
    )
    csv.field_size_limit(sys.maxsize)  # pandas read fields of any length; so must the copy
    written = 0
    with source.open(encoding="utf-8-sig", newline="") as handle, atomic_open(output) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(out, lineterminator="\n")
        records = csv.reader(handle, skipinitialspace=True)
        try:
            writer.writerow([*next(records), PREDICTION_COLUMN])
            for record in records:
                if not is_blank_record(record):
                    writer.writerow([*record, next(values, None)])
                    written += 1
        except csv.Error as err:
            raise UserError(f"{source}: line {records.line_num} cannot be copied to the output ({err})") from None
        finally:
            out.detach()  # flushes into the temporary file, which atomic_open closes (and removes on error)
        if written != len(predictions):  # never write rows and predictions out of step
            raise UserError(
                f"{source}: {written} records now but {len(predictions)} rows read before; "
                "did the file change while predicting?"
            )


def output_target(output: str, inputs: dict[str, str]) -> Path:
    """The file `-o` names, resolved through symbolic links (the link stays, its target is replaced), after
    refusing what writing there would destroy: one of the `inputs` (by role: the input CSV, the model), a
    folder, or anything but a regular file (a device such as /dev/null, a FIFO)."""
    target = Path(os.path.realpath(output)) if os.path.islink(output) else Path(output)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as err:
        raise UserError(f"-o {os_error_message(err, output)}") from None
    for role, path in inputs.items():
        with contextlib.suppress(OSError):
            if os.path.samefile(target, path):
                raise UserError(f"-o {output}: is {role}; write the predictions to another file")
    if not stat.S_ISREG(mode):
        raise UserError(f"-o {output}: is {file_kind(mode)}, not a regular file; name a file to write")
    return target


def _transform(saved: dict, path: str):
    """The model's column transform (stages/columns.py), or None for a model of plain numeric columns."""
    if saved.get("transform") is None:
        return None
    from stages.columns import Transform

    try:
        transform = Transform.from_dict(saved["transform"])
        if sorted(transform.features()) != sorted(saved["features"]):  # a file of 2026-12-03 has another order
            raise ValueError("its transform gives other features than it names")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(
            f"{path}: not a model file written by this pipeline (its transform does not fit: {err})"
        ) from None
    return transform


def range_warning(X: np.ndarray, saved: dict, csv_path: str) -> str | None:
    """One line when rows hold a number beyond what the training rows held (a model extrapolates there):
    how many rows, and which columns with their training range; None when every row is inside, or for a
    model file that records no ranges."""
    ranges = saved.get("ranges")
    if not ranges:
        return None
    low, high = np.asarray(ranges["low"]), np.asarray(ranges["high"])
    dense = X[:, : len(low)]
    outside = (dense < low) | (dense > high)
    rows = int(outside.any(axis=1).sum())
    if not rows:
        return None
    columns = [f"{saved['features'][j]!r} ({low[j]:g} to {high[j]:g})" for j in np.flatnonzero(outside.any(axis=0))]
    return (f"predict: warning: {rows} row(s) of {csv_path} lie beyond the training rows' range in "
            f"{', '.join(columns)}; the model extrapolates there")  # fmt: skip


# Loading a model holds its weights about three times: the freshly built model, the file's tensors, and the
# layers' outputs for a block of rows (a wide layer's are as large as its weights).
LOAD_FACTOR = 3


def check_room(path: str, weight_bytes: int) -> None:
    """Refuse a model whose weights cannot be loaded in the memory left, before any is allocated."""
    need, room = LOAD_FACTOR * weight_bytes, available_bytes()
    if room is not None and need > room:
        raise UserError(
            f"{path}: its weights take {gib(weight_bytes)}, and loading them needs about {gib(need)}; "
            f"{gib(room)} is available here: predict on a machine with more memory"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a model file written by the pipeline, e.g. models/mlp.pt")
    parser.add_argument("csv", help="CSV with the model's feature columns (other columns are kept)")
    parser.add_argument("-o", "--output", required=True, help="where to write the rows with predictions")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warning lines (unseen categories, ranges)")
    args = parser.parse_args(argv)
    warn = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))

    header = read_header(args.csv, named_by="the CSV argument")
    output = output_target(args.output, {"the input CSV": args.csv, "the model file": args.model})
    if PREDICTION_COLUMN in header:
        raise UserError(f"{args.csv}: already has a column {PREDICTION_COLUMN!r}; rename or drop it first")

    check_room(args.model, check_model_file(args.model))  # before torch.load allocates what the file declares
    import torch

    from stages import models
    from stages.prepared import Scaling

    torch.set_num_threads(1)
    model, saved = models.load_model(args.model)
    transform = _transform(saved, args.model)
    features = saved["features"] if transform is None else [column.name for column in transform.columns]
    missing = [name for name in features if name not in header]
    if missing:
        twin = next(filter(None, (normalization_hint(name, header) for name in missing)), None)
        raise UserError(
            f"{args.csv}: missing the model's feature column(s) {', '.join(map(repr, missing))} "
            f"({args.model} was trained on {', '.join(map(repr, features))}); "
            + (twin or f"the columns are {', '.join(map(repr, header))}")
        )
    if transform is None:
        X = read_columns(args.csv, features, header)
    else:  # raw columns: imputed, categories one-hot, booleans and dates as numbers, as prepare did
        X, unseen = transform.encode(read_cells(args.csv, features, header), args.csv)
        position = {name: j for j, name in enumerate(transform.features())}
        X = X[:, [position[name] for name in saved["features"]]]  # in the model's order
        if unseen:
            warn(f"predict: warning: {unseen} row(s) of {args.csv} hold a category the training rows never had; "
                 "they count as infrequent")  # fmt: skip
    outside = range_warning(X, saved, args.csv)
    if outside:
        warn(outside)
    scaling = Scaling.from_dict(saved["scaling"]) if saved["scaling"] else None
    predictions = models.predict(model, X, scaling)

    write_with_predictions(Path(args.csv), predictions, output, saved["architecture"].get("dtype", "float32"))
    print(f"predict: {len(predictions)} rows from {args.csv} through {args.model} -> {args.output}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
