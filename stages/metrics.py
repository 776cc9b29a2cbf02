"""Regression metrics computed in float64 with numpy (no torch, so `evaluate` starts fast)."""

from __future__ import annotations

import numpy as np

from stages.prepared import release

PERFECT_FIT = 1e-20


METRIC_BLOCK = 1 << 20  # rows: longer arrays are scored block by block, so memory does not grow with them


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """mse, rmse, mae and r2; r2 is None (null in JSON) when the actual values are all equal."""
    if len(actual) > METRIC_BLOCK:
        return _metrics_by_block(actual, predicted)
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


def _metrics_by_block(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """regression_metrics in two passes of METRIC_BLOCK rows (sums of numpy's pairwise block sums), each
    block's pages of a mapped file released once read."""
    n_rows = len(actual)
    squares = absolutes = total = 0.0
    for start in range(0, n_rows, METRIC_BLOCK):
        block = np.asarray(actual[start : start + METRIC_BLOCK], dtype=np.float64)
        residual = block - np.asarray(predicted[start : start + METRIC_BLOCK], dtype=np.float64)
        squares += float(np.sum(residual**2))
        absolutes += float(np.sum(np.abs(residual)))
        total += float(np.sum(block))
        release(predicted[start : start + METRIC_BLOCK])
        release(actual[start : start + METRIC_BLOCK])
    mean, spread = total / n_rows, 0.0
    for start in range(0, n_rows, METRIC_BLOCK):
        spread += float(np.sum((np.asarray(actual[start : start + METRIC_BLOCK], dtype=np.float64) - mean) ** 2))
        release(actual[start : start + METRIC_BLOCK])
    mse = squares / n_rows
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": absolutes / n_rows,
        "r2": 1.0 - squares / spread if spread > 0 else None,
    }


def optimality_gap(train_mse: float, best_mse: float, y: np.ndarray) -> float | None:
    """(train MSE - least-squares MSE) / least-squares MSE; None when the least-squares fit is perfect
    (its MSE is at rounding level, below 1e-20 of the mean square of y), where the ratio means nothing."""
    if best_mse <= PERFECT_FIT * float(np.mean(np.square(y))):
        return None
    return (train_mse - best_mse) / best_mse
