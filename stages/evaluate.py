"""Stage `evaluate@<model>`: score a model's predictions on the train (and test) split into
metrics/<model>.json, and write predicted-vs-actual data for `dvc plots`."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from stages import paths
from stages.errors import UserError, run_stage
from stages.io import write_json, write_text
from stages.metrics import optimality_gap, regression_metrics
from stages.params import load_params
from stages.paths import PREPARED_DIR
from stages.prepared import map_array, read_split, sample_rows, seeded_split

PLOT_ROWS = 2000  # per split: enough for a scatter in `dvc plots`, small enough for git and a browser


def predicted_csv(actual: dict[str, np.ndarray], predicted: dict[str, np.ndarray],
                  x: dict[str, np.ndarray] | None = None) -> str:  # fmt: skip
    """Plot data for `dvc plots` and the figures of `plot`: every row of small splits, a seeded sample of
    PLOT_ROWS from large ones; with `x` (a table of one feature), its value in a third column."""
    lines = ["split,actual,predicted" + (",x" if x is not None else "")]
    for split in actual:
        rows = sample_rows(len(actual[split]), PLOT_ROWS)
        columns = [actual[split][rows].tolist(), predicted[split][rows].tolist()]
        if x is not None:
            columns.append(np.asarray(x[split][rows], dtype=np.float64).tolist())
        lines += [",".join([split, *map(repr, values)]) for values in zip(*columns, strict=True)]
    return "\n".join(lines) + "\n"


GAP_WARNING = 0.01  # a linear model whose training MSE is this far (1%) above least squares gets a warning
# r2 below zero by less than this is rounding: a model that predicts the mean (a constant feature: least
# squares itself) scores -2.2e-15 in float64 from float32 predictions
R2_TOLERANCE = 1e-6


def fit_warning(model: str, standardize: bool, metrics: dict) -> str | None:
    """A line for the log when training plainly stopped short: a linear model well above the
    least-squares MSE, or any model worse on its training rows than predicting their mean (r2 < 0, beyond
    rounding).
    (Never the exact solver: it is the least-squares optimum, and least squares has r2 >= 0.)"""
    gap, r2 = metrics["train"].get("optimality_gap"), metrics["train"]["r2"]
    if gap is not None and gap > GAP_WARNING:
        problem = f"its training MSE is {1 + gap:.3g} times the least-squares optimum"
    elif r2 is not None and r2 < -R2_TOLERANCE:
        problem = f"train r2 is {r2:.3g}, worse than predicting the mean"
    else:
        return None
    advice = [] if standardize else ["set data.standardize: true"]
    advice.append(f"tune models.{model}.lr and epochs")
    if "optimality_gap" in metrics["train"]:  # a linear model
        advice.append("use solver: exact")
    return f"evaluate@{model}: warning: {problem}; {', or '.join(advice)}"


def score(y_train: np.ndarray, y_test: np.ndarray, predictions: np.ndarray, card: dict,
          x: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, str]:  # fmt: skip
    """Metrics per split (train; validation when the model was early-stopped on rows held out of the
    training split, which `train` then fitted without; test when there are test rows; a linear model's
    optimality gap and coefficients, and every model's importance and partial dependence, from its card)
    and the predicted-vs-actual plot data. `predictions` are the training rows' then the test rows', as
    `train` writes them; `x`: the one feature's training and test values, for the plot data."""
    n_train = len(y_train)
    actual = {"train": y_train}
    predicted = {"train": predictions[:n_train]}
    xs = None if x is None else {"train": x[0], "test": x[1]}
    stopping = card.get("early_stopping")
    if stopping:
        fit_rows, held_out = seeded_split(n_train, stopping["validation_fraction"], stopping["seed"])
        actual = {"train": y_train[fit_rows], "validation": y_train[held_out]}
        predicted = {"train": predictions[:n_train][fit_rows], "validation": predictions[:n_train][held_out]}
        if xs is not None:
            xs |= {"train": x[0][fit_rows], "validation": x[0][held_out]}
    if len(y_test):
        actual["test"], predicted["test"] = y_test, predictions[n_train:]
    metrics: dict = {name: regression_metrics(actual[name], predicted[name]) for name in actual}
    if card["architecture"]["kind"] == "linear":
        metrics["train"]["optimality_gap"] = optimality_gap(
            metrics["train"]["mse"], card["least_squares_mse"], actual["train"]
        )
        metrics["coefficients"] = card["coefficients"]
        if "coefficients_standardized" in card:  # per standard deviation of the feature, in the target's
            metrics["coefficients_standardized"] = card["coefficients_standardized"]
    if "importance" in card:  # permutation importance and partial dependence, per column of the CSV (train's)
        metrics["importance"] = card["importance"]
        # lists only, which `dvc metrics show` leaves out: the figures' data, not a column of numbers
        metrics["partial_dependence"] = {column: {"grid": curve["grid"], "mean": curve["mean"]}
                                         for column, curve in card["partial_dependence"].items()}  # fmt: skip
    return metrics, predicted_csv(actual, predicted, xs)


def metric_lines(model: str, metrics: dict, rows: dict[str, int]) -> list[str]:
    """The log's line per split scored; `rows`: the row count of each split."""
    lines = []
    for name in ("train", "validation", "test"):
        if name not in metrics:
            continue
        scores, n_rows = metrics[name], rows[name]
        r2 = "n/a" if scores["r2"] is None else f"{scores['r2']:.4f}"
        lines.append(
            f"evaluate@{model}: {name} ({n_rows} rows): mse {scores['mse']:.6g}, "
            f"rmse {scores['rmse']:.6g}, mae {scores['mae']:.6g}, r2 {r2}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__)
    parser.add_argument("model", help="name of the model under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)  # validate params.yaml
    params.model(args.model)  # and that the model is in it
    split = read_split(args.prepared, mmap=True)  # mapped: only y, and a one-feature table's x, are read
    predictions_path, card_path = paths.predictions_file(args.model), paths.model_card(args.model)
    try:
        predictions = map_array(predictions_path)  # scored block by block on large tables
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: missing; run `dvc repro train@{args.model}` first") from None
    if len(predictions) != len(split.y_train) + len(split.y_test):
        raise UserError(f"{predictions_path}: does not match {args.prepared}; run `dvc repro train@{args.model}`")

    one = (split.X_train[:, 0], split.X_test[:, 0]) if len(split.features) == 1 else None  # for fit.png
    metrics, plot_data = score(split.y_train, split.y_test, predictions, card, one)
    write_json(paths.metrics_file(args.model), metrics)
    write_text(paths.predicted_file(args.model), plot_data)
    n_validation = card.get("early_stopping", {}).get("validation_rows", 0)
    rows = {"train": len(split.y_train) - n_validation, "validation": n_validation, "test": len(split.y_test)}
    print("\n".join(metric_lines(args.model, metrics, rows)))
    warning = fit_warning(args.model, params.data.standardize, metrics)
    if warning:
        print(warning, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_stage(main))
