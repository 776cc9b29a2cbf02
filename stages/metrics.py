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


def least_squares_mse(X: np.ndarray, y: np.ndarray) -> float:
    """The smallest mean squared error any y = X w + b reaches, in float64 (SVD on centred, scaled columns)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    centred = X - X.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    norms[norms == 0] = 1.0
    yc = y - y.mean()
    w, *_ = np.linalg.lstsq(centred / norms, yc, rcond=None)
    return float(np.mean((centred / norms @ w - yc) ** 2))


def optimality_gap(train_mse: float, best_mse: float, y: np.ndarray) -> float | None:
    """(train MSE - least-squares MSE) / least-squares MSE; None when the least-squares fit is perfect
    (its MSE is at rounding level, below 1e-20 of the mean square of y), where the ratio means nothing."""
    if best_mse <= PERFECT_FIT * float(np.mean(np.square(y))):
        return None
    return (train_mse - best_mse) / best_mse
