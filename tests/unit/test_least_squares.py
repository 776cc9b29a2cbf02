"""The exact solver on a compact split (one-hot blocks held as codes): the least-squares line of the
expanded matrix, found from counts and sums without ever making it."""

from __future__ import annotations

import numpy as np
import pytest

from stages.least_squares import solve_least_squares
from stages.prepared import Encoded


def design(seed: int, n_rows: int, n_dense: int, widths: tuple[int, ...]) -> tuple[Encoded, np.ndarray]:
    """Numbers of mixed scales and offsets, uniform categories, y linear in the expanded matrix plus noise."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n_rows, n_dense)) * rng.uniform(0.1, 100, n_dense) + rng.uniform(-50, 50, n_dense)
    codes = np.stack([rng.integers(0, width, n_rows) for width in widths], axis=1).astype(np.int32)
    X = Encoded(dense, codes, widths)
    return X, np.asarray(X) @ rng.normal(size=X.shape[1]) + rng.normal(size=n_rows) + 3.0


def numpy_line(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(w, b, mse) of numpy's minimum-norm lstsq on the centred matrix whose columns are scaled to unit
    norm (a constant column: weight 0), what the streaming QR of the whole matrix gives."""
    mean = X.mean(axis=0)
    norms = np.linalg.norm(X - mean, axis=0)
    norms[norms < 1e-9] = np.inf
    w = np.linalg.lstsq((X - mean) / norms, y - y.mean(), rcond=None)[0] / norms
    b = y.mean() - mean @ w
    return w, b, float(np.mean((y - X @ w - b) ** 2))


@pytest.mark.parametrize(
    ("n_rows", "n_dense", "widths", "block_rows"),
    [(500, 3, (4, 6), 65536), (5000, 3, (4, 6), 256), (2000, 0, (3, 7), 300), (4000, 4, (1, 3), 1000)],
)
def test_the_line_of_a_compact_split_is_numpys_on_the_expanded_matrix(n_rows, n_dense, widths, block_rows):
    X, y = design(1, n_rows, n_dense, widths)
    solution = solve_least_squares(X, y, block_rows=block_rows)
    expanded = np.asarray(X)
    w, b, mse = numpy_line(expanded, y)
    ours = expanded @ solution.weight.numpy() + float(solution.bias)
    assert np.allclose(ours, expanded @ w + b, rtol=0, atol=1e-9 * np.abs(y).max())
    assert solution.mse == pytest.approx(mse, rel=1e-10)
    # the same weights: one-hot blocks add up to the intercept, and of the lines that fit, the one of the
    # smallest norm in the centred, unit-norm columns
    assert np.allclose(solution.weight.numpy(), w, rtol=1e-8, atol=1e-10)
    assert float(solution.bias) == pytest.approx(b, rel=1e-8)


def test_a_number_that_is_one_of_the_categories_gets_weight_zero_not_noise():
    X, y = design(2, 3000, 2, (5,))
    X.dense[:, 0] = X.codes[:, 0] == 1  # a missing indicator that is exactly one category, say
    y = np.asarray(X) @ np.arange(1.0, 8.0) + 0.01 * np.random.default_rng(0).normal(size=3000)
    solution = solve_least_squares(X, y, block_rows=512)
    expanded = np.asarray(X)
    w, b, mse = numpy_line(expanded, y)
    assert solution.weight[0] == 0.0 and np.abs(solution.weight.numpy()).max() < 100
    assert solution.mse == pytest.approx(mse, rel=1e-9)
    assert np.allclose(expanded @ solution.weight.numpy() + float(solution.bias), expanded @ w + b, atol=1e-9)


def test_a_constant_number_gets_weight_zero_not_the_noise_of_its_projection():
    X, y = design(4, 3000, 3, (7, 3))
    X.dense[:, 1] = 1 / 3  # what is left of it after the categories are projected out is rounding alone
    solution = solve_least_squares(X, y, block_rows=256)
    w, b, mse = numpy_line(np.asarray(X), y)
    assert solution.weight[1] == 0.0 and np.allclose(solution.weight.numpy(), w, rtol=1e-8, atol=1e-10)
    assert float(solution.bias) == pytest.approx(b, rel=1e-8) and solution.mse == pytest.approx(mse, rel=1e-10)


def test_the_same_line_whatever_the_blocks():
    X, y = design(3, 3000, 3, (6, 2))
    whole = solve_least_squares(X, y, block_rows=4096)
    blocks = solve_least_squares(X, y, block_rows=128)
    assert np.allclose(whole.weight.numpy(), blocks.weight.numpy(), rtol=1e-9, atol=1e-12)
    assert whole.mse == pytest.approx(blocks.mse, rel=1e-12)
