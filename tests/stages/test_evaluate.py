"""The evaluate stage as dvc runs it: reading train's outputs, writing metrics and plot data, warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import run_module


def _prepare_and_predict(workdir, predictions):
    """Prepared seed data plus a hand-made prediction file and model card, as train would leave them."""
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    np.save(workdir / "predictions" / "linear.npy", np.asarray(predictions, dtype=np.float64))
    (workdir / "models").mkdir()
    card = {
        "architecture": {"kind": "linear"},
        "coefficients": {"x": 0.7, "intercept": 3.0},
        "least_squares_mse": 1.56 / 11,
    }
    (workdir / "models" / "linear.json").write_text(json.dumps(card))


def test_metrics_json_scores_the_train_split_and_carries_coefficients(workdir):
    y = np.array([3, 5, 5, 6, 7, 7, 8, 9, 9, 10], dtype=float)
    _prepare_and_predict(workdir, y + np.array([1, -1] * 5))
    result = run_module(workdir, "evaluate", "linear")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((workdir / "metrics" / "linear.json").read_text())
    assert set(metrics) == {"train", "coefficients"}
    assert metrics["train"]["mse"] == 1.0 and metrics["train"]["mae"] == 1.0
    best = 1.56 / 11  # least-squares MSE of the seed data
    assert metrics["train"]["optimality_gap"] == pytest.approx((1.0 - best) / best, rel=1e-12)
    assert metrics["coefficients"] == {"x": 0.7, "intercept": 3.0}
    rows = (workdir / "plots" / "predicted" / "linear.csv").read_text().splitlines()
    # one feature: its value too, for the plot of the fitted curves
    assert rows[0] == "split,actual,predicted,x" and rows[1] == "train,3.0,4.0,1.0" and len(rows) == 11


def test_predictions_that_do_not_match_the_split_are_rejected(workdir):
    _prepare_and_predict(workdir, [1.0, 2.0])
    result = run_module(workdir, "evaluate", "linear")
    assert result.returncode == 2
    assert "predictions/linear.npy: does not match" in result.stderr
    assert not (workdir / "metrics").exists()


def test_evaluate_warns_on_stderr_and_still_succeeds(workdir):
    y = np.array([3, 5, 5, 6, 7, 7, 8, 9, 9, 10], dtype=float)
    _prepare_and_predict(workdir, y + np.array([1, -1] * 5))  # mse 1.0, least squares 1.56 / 11
    result = run_module(workdir, "evaluate", "linear")
    assert result.returncode == 0
    assert result.stderr == (
        "evaluate@linear: warning: its training MSE is 7.05 times the least-squares optimum; "
        "set data.standardize: true, or tune models.linear.lr and epochs, or use solver: exact\n"
    )
