"""evaluate's pure functions: scores per split, plot data, the warning when training stopped short."""

from __future__ import annotations

import numpy as np
import pytest

from stages.evaluate import PLOT_ROWS, fit_warning, metric_lines, score
from stages.params import ModelSpec
from stages.prepared import Split
from tests.unit.seed_models import X_SEED, Y_SEED, fit_quietly


def test_score_splits_the_predictions_into_train_and_test_and_carries_a_linear_card():
    y_train, y_test = np.array([1.0, 2.0, 3.0]), np.array([4.0, 6.0])
    card = {"architecture": {"kind": "linear"}, "coefficients": {"x": 2.0, "intercept": 0.0}, "least_squares_mse": 0.5}
    metrics, plot_data = score(y_train, y_test, np.array([1.0, 2.0, 4.0, 4.0, 4.0]), card)
    assert metrics["train"]["mse"] == pytest.approx(1 / 3) and metrics["test"]["mse"] == 2.0
    assert metrics["train"]["optimality_gap"] == pytest.approx((1 / 3 - 0.5) / 0.5)
    assert metrics["coefficients"] == card["coefficients"]
    assert plot_data.splitlines() == [
        "split,actual,predicted",
        "train,1.0,1.0",
        "train,2.0,2.0",
        "train,3.0,4.0",
        "test,4.0,4.0",
        "test,6.0,4.0",
    ]
    mlp, _ = score(y_train, y_test[:0], np.array([1.0, 2.0, 3.0]), {"architecture": {"kind": "mlp"}})
    assert set(mlp) == {"train"} and mlp["train"]["mse"] == 0.0


def test_plot_data_of_a_large_split_is_a_seeded_sample():
    y = np.arange(PLOT_ROWS * 3.0)
    card = {"architecture": {"kind": "mlp"}}
    _, first = score(y, y[:0], y + 1, card)
    assert len(first.splitlines()) == PLOT_ROWS + 1 and first == score(y, y[:0], y + 1, card)[1]


def test_metric_lines_name_each_split_with_its_rows():
    metrics = {
        "train": {"mse": 0.5, "rmse": 0.7, "mae": 0.4, "r2": None},
        "test": {"mse": 1, "rmse": 1, "mae": 1, "r2": 0.25},
    }
    assert metric_lines("m", metrics, {"train": 8, "test": 2}) == [
        "evaluate@m: train (8 rows): mse 0.5, rmse 0.7, mae 0.4, r2 n/a",
        "evaluate@m: test (2 rows): mse 1, rmse 1, mae 1, r2 0.2500",
    ]


def _gap(spec: ModelSpec) -> dict:
    """Training scores of one linear model on the seed data, as train fits it and evaluate scores it."""
    split = Split(("x",), "y", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], None)
    trained = fit_quietly(spec, split)
    return score(split.y_train, split.y_test, trained.predictions, trained.card)[0]["train"]


def test_optimality_gap_is_zero_for_exact_and_lbfgs():
    assert abs(_gap(ModelSpec(name="e", kind="linear", solver="exact"))["optimality_gap"]) < 1e-12
    lbfgs = ModelSpec(name="l", kind="linear", solver="lbfgs", lr=1.0, epochs=10)
    assert abs(_gap(lbfgs)["optimality_gap"]) < 1e-6


def test_optimality_gap_follows_its_formula_for_adam():
    scores = _gap(ModelSpec(name="a", kind="linear", solver="adam", lr=0.07, epochs=50))
    best = 1.56 / 11
    assert scores["optimality_gap"] == pytest.approx((scores["mse"] - best) / best, rel=1e-9)
    assert scores["optimality_gap"] > 0.01  # 50 steps are not enough to converge


@pytest.mark.parametrize(
    "standardize, train, expected",
    [
        (False, {"optimality_gap": 1e-7, "r2": 0.97}, None),
        (
            False,
            {"optimality_gap": 0.161, "r2": 0.5},
            "evaluate@m: warning: its training MSE is 1.16 times the "
            "least-squares optimum; set data.standardize: true, or tune models.m.lr and epochs, or use solver: exact",
        ),
        (
            True,
            {"optimality_gap": 3.0, "r2": 0.1},
            "evaluate@m: warning: its training MSE is 4 times the "
            "least-squares optimum; tune models.m.lr and epochs, or use solver: exact",
        ),
        (
            True,
            {"r2": -0.5},
            "evaluate@m: warning: train r2 is -0.5, worse than predicting the mean; tune models.m.lr and epochs",
        ),
        (False, {"r2": None}, None),  # a constant target: nothing to compare with
        (False, {"r2": -2.2e-15}, None),  # rounding, not a worse fit
        (False, {"optimality_gap": None, "r2": 1.0}, None),
    ],
)
def test_a_fit_that_stopped_short_gets_a_warning_with_what_to_change(standardize, train, expected):
    assert fit_warning("m", standardize, {"train": train}) == expected


def test_a_constant_feature_fitted_to_the_mean_raises_no_false_alarm():
    X = np.full((10, 1), 3.0)
    split = Split(("x",), "y", X, Y_SEED, X[:0], Y_SEED[:0], None)
    for spec in (
        ModelSpec(name="l", kind="linear", solver="lbfgs", lr=1.0, epochs=10),
        ModelSpec(name="a", kind="linear", lr=0.07, epochs=1000),
    ):
        trained = fit_quietly(spec, split)
        metrics, _ = score(split.y_train, split.y_test, trained.predictions, trained.card)
        assert metrics["train"]["r2"] == pytest.approx(0, abs=1e-12)  # the mean: least squares with no slope
        assert fit_warning(spec.name, False, metrics) is None


def test_an_early_stopped_model_is_scored_on_its_fitted_and_its_held_out_rows_apart():
    from stages.prepared import seeded_split

    y_train, y_test = np.arange(10.0), np.array([20.0, 30.0])
    predictions = np.concatenate([y_train + 1.0, y_test])
    card = {"architecture": {"kind": "mlp"}, "early_stopping": {"validation_fraction": 0.3, "seed": 7}}
    metrics, plot_data = score(y_train, y_test, predictions, card)
    fitted, held_out = seeded_split(10, 0.3, 7)
    assert set(metrics) == {"train", "validation", "test"} and len(held_out) == 3
    assert metrics["train"]["mse"] == metrics["validation"]["mse"] == 1.0 and metrics["test"]["mse"] == 0.0
    assert metrics["validation"]["r2"] == pytest.approx(
        1 - 3 / np.sum((y_train[held_out] - y_train[held_out].mean()) ** 2)
    )
    labels = [line.split(",")[0] for line in plot_data.splitlines()[1:]]
    assert labels == ["train"] * 7 + ["validation"] * 3 + ["test"] * 2
    assert [float(line.split(",")[1]) for line in plot_data.splitlines()[8:11]] == y_train[held_out].tolist()
    assert metric_lines("m", metrics, {"train": 7, "validation": 3, "test": 2})[1].startswith(
        "evaluate@m: validation (3 rows): mse 1,"
    )
