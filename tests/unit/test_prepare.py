"""prepare's pure functions: the seeded split and the training scaling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stages.errors import UserError
from stages.params import DataParams
from stages.prepare import fit_scaling, plan_split, split_rows
from stages.prepared import Scaling


def test_split_is_deterministic_disjoint_and_in_file_order():
    train, test = split_rows(10, 0.25, seed=3)
    again = split_rows(10, 0.25, seed=3)
    assert train.tolist() == again[0].tolist() and test.tolist() == again[1].tolist()
    assert len(test) == 3 and len(train) == 7
    assert sorted([*train, *test]) == list(range(10))
    assert list(train) == sorted(train) and list(test) == sorted(test)
    assert split_rows(10, 0.25, seed=4)[1].tolist() != test.tolist()


def test_zero_test_size_keeps_every_row_for_training():
    train, test = split_rows(5, 0.0, seed=0)
    assert train.tolist() == [0, 1, 2, 3, 4] and test.tolist() == []


def test_too_few_training_rows_is_an_error():
    with pytest.raises(UserError, match="leave 1 training rows; training needs at least 2"):
        split_rows(3, 0.5, seed=0)


def test_scaling_uses_only_training_rows_and_rejects_constant_columns():
    scaling = fit_scaling(np.array([[1.0], [3.0], [100.0]]), np.array([10.0, 30.0, 0.0]), np.array([0, 1]), ("x", "y"))
    assert scaling == Scaling((2.0,), (1.0,), 20.0, 10.0)
    with pytest.raises(UserError, match="column 'x' is constant"):
        fit_scaling(np.array([[1.0], [1.0]]), np.array([1.0, 2.0]), np.array([0, 1]), ("x", "y"))


def test_plan_split_holds_out_seeded_rows_and_scales_by_the_training_rows_only():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0) * 3
    data = DataParams(path="t.csv", features=("a", "b"), target="t", test_size=0.3, split_seed=5, standardize=True)
    plan = plan_split(X, y, data)
    assert (plan.train_rows.tolist(), plan.test_rows.tolist()) == tuple(r.tolist() for r in split_rows(10, 0.3, 5))
    assert plan.scaling.y_mean == float(y[plan.train_rows].mean())
    assert plan.scaling.x_std == tuple(float(s) for s in X[plan.train_rows].std(axis=0))
    assert plan_split(X, y, replace(data, standardize=False)).scaling is None
