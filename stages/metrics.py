"""Regression metrics computed in float64 with numpy (no torch, so `evaluate` starts fast)."""

from __future__ import annotations

import numpy as np

PERFECT_FIT = 1e-20


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """mse, rmse, mae and r2; r2 is None (null in JSON) when the actual values are all equal."""
    actual = np.asarray(actual, dtype=np.float64)
    residual = actual - np.asarray(predicted, dtype=np.float64)
    mse = float(np.mean(residual**2))
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(residual))),
        "r2": 1.0 - float(np.sum(residual**2)) / total if total > 0 else None,
    }


def optimality_gap(train_mse: float, best_mse: float, y: np.ndarray) -> float | None:
    """(train MSE - least-squares MSE) / least-squares MSE; None when the least-squares fit is perfect
    (its MSE is at rounding level, below 1e-20 of the mean square of y), where the ratio means nothing."""
    if best_mse <= PERFECT_FIT * float(np.mean(np.square(y))):
        return None
    return (train_mse - best_mse) / best_mse
