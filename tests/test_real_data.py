"""The diabetes data (442 patients, 10 features; shipped by scikit-learn, copied to data/diabetes.csv)
through the real stages in this process: Adam with the reference settings against least squares."""
from __future__ import annotations

import json
import shutil

from stages import evaluate, prepare, train
from tests.conftest import ROOT, default_params, write_params

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def optimality_gap(folder, monkeypatch, capsys, standardize: bool) -> tuple[float, str]:
    """The linear model's optimality_gap, and what evaluate wrote to stderr."""
    (folder / "data").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "diabetes.csv", folder / "data" / "diabetes.csv")
    params = default_params(path="data/diabetes.csv", features=FEATURES, target="progression",
                            standardize=standardize)
    params["models"] = {"linear": {"kind": "linear", "solver": "adam", "lr": 0.07, "epochs": 1000}}
    write_params(folder, params)
    monkeypatch.chdir(folder)
    prepare.main([])
    train.main(["linear"])
    capsys.readouterr()
    evaluate.main(["linear"])
    gap = json.loads((folder / "metrics" / "linear.json").read_text())["train"]["optimality_gap"]
    return gap, capsys.readouterr().err


def test_reference_adam_reaches_least_squares_on_standardized_diabetes_data(tmp_path, monkeypatch, capsys):
    gap, warned = optimality_gap(tmp_path, monkeypatch, capsys, standardize=True)
    assert 0 <= gap < 1e-3 and warned == ""


def test_without_standardize_reference_adam_stops_far_from_least_squares(tmp_path, monkeypatch, capsys):
    # Adam moves each weight by about lr per step, so 1000 steps of 0.07 cannot reach an intercept of
    # -334 on features in mixed units: the gap the metrics report is what tells the user.
    gap, warned = optimality_gap(tmp_path, monkeypatch, capsys, standardize=False)
    assert gap > 0.05  # and the log says so, with what to change
    assert warned == (f"evaluate@linear: warning: its training MSE is {1 + gap:.3g} times the least-squares optimum; "
                      "set data.standardize: true, or tune models.linear.lr and epochs, or use solver: exact\n")
