import math

import numpy as np

from stages.metrics import regression_metrics


def test_metrics_match_their_definitions():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.0, 3.0, 2.0, 4.0])
    scores = regression_metrics(actual, predicted)
    assert scores["mse"] == 0.5
    assert scores["rmse"] == math.sqrt(0.5)
    assert scores["mae"] == 0.5
    assert scores["r2"] == 1 - 2.0 / 5.0


def test_r2_is_none_for_a_constant_target():
    assert regression_metrics(np.array([2.0, 2.0]), np.array([1.0, 3.0]))["r2"] is None
