"""stages/importance.py: permutation importance and partial dependence per raw column of the CSV."""

from __future__ import annotations

import numpy as np
import torch

from stages import importance, models
from stages.prepared import Encoded, Split

TRANSFORM = {"columns": [{"name": "n", "type": "numeric", "medians": [0.0], "indicator": True},
                         {"name": "c", "type": "categorical", "categories": ["a", "b", "d"], "infrequent": False,
                          "rare": []}]}  # fmt: skip
FEATURES = ("n", "n (missing)", "c=a", "c=b", "c=d")


def compact_split(rows: int = 400) -> tuple[Split, torch.nn.Module]:
    """y = 2 n + (c == b) * 5: a number with its missing indicator, a text column of 3 categories as codes."""
    rng = np.random.default_rng(1)
    dense = np.column_stack([rng.normal(size=rows), np.zeros(rows)])
    codes = rng.integers(0, 3, (rows, 1)).astype(np.int32)
    X = Encoded(dense, codes, (3,))
    y = 2 * dense[:, 0] + 5 * (codes[:, 0] == 1)
    split = Split(FEATURES, "y", X, y, X[:0], y[:0], None, TRANSFORM, ("n", "n", "c", "c", "c"))
    model = models.build_model({"kind": "linear", "n_features": 5, "dtype": "float64"})
    models.set_linear_coefficients(model, np.array([2.0, 0.0, 0.0, 5.0, 0.0]), 0.0, None)
    return split, model


def test_a_text_column_is_shuffled_as_one_column_and_a_number_with_its_indicator():
    split, model = compact_split()
    columns = importance.raw_columns(split)
    assert [(c.name, c.kind, c.positions, c.code) for c in columns] == [
        ("n", "numeric", (0, 1), None), ("c", "categorical", (2, 3, 4), 0)
    ]  # fmt: skip
    which, X, y = importance.evaluation_rows(split, seed=0)
    found = importance.permutation_importance(model, X, y, None, columns, seed=0)
    assert which == "train" and found["mse"] < 1e-20 and set(found["mse_increase"]) == {"n", "c"}
    # shuffling n adds 4 var(n) + ..., shuffling c adds 2 * 25 p (1 - p) = 50 * 1/3 * 2/3 = 11.1 on average
    assert 6 < found["mse_increase"]["n"] < 10 and 9 < found["mse_increase"]["c"] < 13.5
    assert np.array_equal(np.asarray(X), np.asarray(split.X_train[np.arange(400)]))  # left as it was
    again = importance.permutation_importance(model, X, y, None, columns, seed=0)
    assert again == found  # seeded


def test_partial_dependence_of_a_line_is_the_line_and_a_category_its_weight():
    split, model = compact_split()
    columns = importance.raw_columns(split)
    _, X, y = importance.evaluation_rows(split, seed=0)
    found = importance.permutation_importance(model, X, y, None, columns, seed=0)
    curves = importance.partial_dependence(model, X, None, columns, found, TRANSFORM)
    numbers = curves["n"]
    assert numbers["kind"] == "numeric" and len(numbers["grid"]) == 20
    slopes = np.diff(numbers["mean"]) / np.diff(numbers["grid"])
    assert np.allclose(slopes, 2.0)
    categories = curves["c"]
    assert categories["grid"] == ["a", "b", "d"]
    assert np.allclose(np.diff(categories["mean"]), [5.0, -5.0])
