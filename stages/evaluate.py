"""Stage `evaluate@<model>`: score a model's predictions on the train (and test) split into
metrics/<model>.json, and write predicted-vs-actual data for `dvc plots`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from stages.data import PREDICTIONS_DIR, PREPARED_DIR, read_split, sample_rows
from stages.errors import UserError, run_stage
from stages.io import write_json, write_text
from stages.metrics import optimality_gap, regression_metrics
from stages.params import load_params

METRICS_DIR = Path("metrics")
PREDICTED_DIR = Path("plots/predicted")
PLOT_ROWS = 2000  # per split: enough for a scatter in `dvc plots`, small enough for git and a browser


def predicted_csv(actual: dict[str, np.ndarray], predicted: dict[str, np.ndarray]) -> str:
    """Plot data for `dvc plots`: every row of small splits, a seeded sample of PLOT_ROWS from large ones."""
    lines = ["split,actual,predicted"]
    for split in actual:
        rows = sample_rows(len(actual[split]), PLOT_ROWS)
        pairs = zip(actual[split][rows].tolist(), predicted[split][rows].tolist(), strict=True)
        lines += [f"{split},{a!r},{p!r}" for a, p in pairs]
    return "\n".join(lines) + "\n"


GAP_WARNING = 0.01  # a linear model whose training MSE is this far (1%) above least squares gets a warning


def fit_warning(model: str, standardize: bool, metrics: dict) -> str | None:
    """A line for the log when training plainly stopped short: a linear model well above the
    least-squares MSE, or any model worse on its training rows than predicting their mean (r2 < 0).
    (Never the exact solver: it is the least-squares optimum, and least squares has r2 >= 0.)"""
    gap, r2 = metrics["train"].get("optimality_gap"), metrics["train"]["r2"]
    if gap is not None and gap > GAP_WARNING:
        problem = f"its training MSE is {1 + gap:.3g} times the least-squares optimum"
    elif r2 is not None and r2 < 0:
        problem = f"train r2 is {r2:.3g}, worse than predicting the mean"
    else:
        return None
    advice = [] if standardize else ["set data.standardize: true"]
    advice.append(f"tune models.{model}.lr and epochs")
    if "optimality_gap" in metrics["train"]:  # a linear model
        advice.append("use solver: exact")
    return f"evaluate@{model}: warning: {problem}; {', or '.join(advice)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__)
    parser.add_argument("model", help="name of the model under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)  # validate params.yaml
    params.model(args.model)  # and that the model is in it
    split = read_split(args.prepared, mmap=True)  # the features are never read here
    predictions_path = PREDICTIONS_DIR / f"{args.model}.npy"
    card_path = Path("models") / f"{args.model}.json"
    try:
        predicted_all = np.load(predictions_path)
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: missing; run `dvc repro train@{args.model}` first") from None
    n_train = len(split.y_train)
    if len(predicted_all) != n_train + len(split.y_test):
        raise UserError(f"{predictions_path}: does not match {args.prepared}; run `dvc repro train@{args.model}`")

    actual = {"train": split.y_train}
    predicted = {"train": predicted_all[:n_train]}
    if len(split.y_test):
        actual["test"], predicted["test"] = split.y_test, predicted_all[n_train:]
    metrics: dict = {name: regression_metrics(actual[name], predicted[name]) for name in actual}
    if card["architecture"]["kind"] == "linear":
        metrics["train"]["optimality_gap"] = optimality_gap(
            metrics["train"]["mse"], card["least_squares_mse"], split.y_train
        )
        metrics["coefficients"] = card["coefficients"]

    write_json(METRICS_DIR / f"{args.model}.json", metrics)
    write_text(PREDICTED_DIR / f"{args.model}.csv", predicted_csv(actual, predicted))
    for name, values in actual.items():
        scores = metrics[name]
        r2 = "n/a" if scores["r2"] is None else f"{scores['r2']:.4f}"
        print(f"evaluate@{args.model}: {name} ({len(values)} rows): mse {scores['mse']:.6g}, "
              f"rmse {scores['rmse']:.6g}, mae {scores['mae']:.6g}, r2 {r2}")
    warning = fit_warning(args.model, params.data.standardize, metrics)
    if warning:
        print(warning, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_stage(main))
