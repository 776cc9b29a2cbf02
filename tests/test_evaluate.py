import json

import numpy as np
import pytest

from stages.evaluate import fit_warning
from tests.conftest import run_module


def _prepare_and_predict(workdir, predictions):
    """Prepared seed data plus a hand-made prediction file and model card, as train would leave them."""
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    np.save(workdir / "predictions" / "linear.npy", np.asarray(predictions, dtype=np.float64))
    (workdir / "models").mkdir()
    card = {"architecture": {"kind": "linear"}, "coefficients": {"x": 0.7, "intercept": 3.0},
            "least_squares_mse": 1.56 / 11}
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
    assert rows[0] == "split,actual,predicted" and rows[1] == "train,3.0,4.0" and len(rows) == 11


def test_predictions_that_do_not_match_the_split_are_rejected(workdir):
    _prepare_and_predict(workdir, [1.0, 2.0])
    result = run_module(workdir, "evaluate", "linear")
    assert result.returncode == 2
    assert "predictions/linear.npy: does not match" in result.stderr
    assert not (workdir / "metrics").exists()


def _gap(tmp_path, monkeypatch, spec: dict) -> dict:
    """Metrics of one linear model on the seed data, through the real stages in this process."""
    from stages import evaluate, prepare, train
    from tests.conftest import SEED_CSV, default_params, write_params

    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "seed.csv").write_text(SEED_CSV)
    params = default_params()
    params["models"] = {"m": spec}
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    prepare.main([])
    train.main(["m"])
    evaluate.main(["m"])
    return json.loads((tmp_path / "metrics" / "m.json").read_text())["train"]


def test_optimality_gap_is_zero_for_exact_and_lbfgs(tmp_path, monkeypatch):
    assert abs(_gap(tmp_path / "e", monkeypatch, {"kind": "linear", "solver": "exact"})["optimality_gap"]) < 1e-12
    lbfgs = {"kind": "linear", "solver": "lbfgs", "lr": 1.0, "epochs": 10}
    assert abs(_gap(tmp_path / "l", monkeypatch, lbfgs)["optimality_gap"]) < 1e-6


def test_optimality_gap_follows_its_formula_for_adam(tmp_path, monkeypatch):
    scores = _gap(tmp_path, monkeypatch, {"kind": "linear", "solver": "adam", "lr": 0.07, "epochs": 50})
    best = 1.56 / 11
    assert scores["optimality_gap"] == pytest.approx((scores["mse"] - best) / best, rel=1e-9)
    assert scores["optimality_gap"] > 0.01  # 50 steps are not enough to converge


@pytest.mark.parametrize(
    "standardize, train, expected",
    [
        (False, {"optimality_gap": 1e-7, "r2": 0.97}, None),
        (False, {"optimality_gap": 0.161, "r2": 0.5}, "evaluate@m: warning: its training MSE is 1.16 times the "
         "least-squares optimum; set data.standardize: true, or tune models.m.lr and epochs, or use solver: exact"),
        (True, {"optimality_gap": 3.0, "r2": 0.1}, "evaluate@m: warning: its training MSE is 4 times the "
         "least-squares optimum; tune models.m.lr and epochs, or use solver: exact"),
        (True, {"r2": -0.5}, "evaluate@m: warning: train r2 is -0.5, worse than predicting the mean; "
         "tune models.m.lr and epochs"),
        (False, {"r2": None}, None),  # a constant target: nothing to compare with
        (False, {"optimality_gap": None, "r2": 1.0}, None),
    ],
)
def test_a_fit_that_stopped_short_gets_a_warning_with_what_to_change(standardize, train, expected):
    assert fit_warning("m", standardize, {"train": train}) == expected


def test_evaluate_warns_on_stderr_and_still_succeeds(workdir):
    y = np.array([3, 5, 5, 6, 7, 7, 8, 9, 9, 10], dtype=float)
    _prepare_and_predict(workdir, y + np.array([1, -1] * 5))  # mse 1.0, least squares 1.56 / 11
    result = run_module(workdir, "evaluate", "linear")
    assert result.returncode == 0
    assert result.stderr == ("evaluate@linear: warning: its training MSE is 7.05 times the least-squares optimum; "
                             "set data.standardize: true, or tune models.linear.lr and epochs, or use solver: exact\n")
