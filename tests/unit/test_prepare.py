"""prepare's pure functions: the seeded split and the training scaling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stages.errors import UserError
from stages.params import DataParams
from stages.prepared import Scaling, ScalingFit, seeded_split
from stages.typed_split import check_training_rows, median, prepare_typed


def split_rows(n_rows, test_size, seed):
    train, test = seeded_split(n_rows, test_size, seed)
    check_training_rows(n_rows, test_size, len(train))
    return train, test


def fit_scaling(X, y, rows, names):
    fit = ScalingFit(names)
    fit.add(X[rows], y[rows])
    return fit.scaling()


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


def test_the_typed_path_holds_out_seeded_rows_and_scales_by_the_training_rows_only(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10.0) * 3
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,t\n" + "".join(f"{a:g},{b:g},{t:g}\n" for (a, b), t in zip(X, y, strict=True)))
    data = DataParams(path=str(csv), features=("a", "b"), target="t", test_size=0.3, split_seed=5, standardize=True)
    (tmp_path / "out").mkdir()
    assert prepare_typed(data, ["a", "b", "t"], ["a", "b"], tmp_path / "out") == (10, 7, 3)
    train, test = split_rows(10, 0.3, 5)
    assert np.load(tmp_path / "out/y_test.npy").tolist() == y[test].tolist()
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    assert meta["scaling"]["y_mean"] == float(y[train].mean())
    assert meta["scaling"]["x_std"] == [float(s) for s in X[train].std(axis=0)]


@pytest.mark.parametrize("count", [1, 2, 7, 10, 5000, 5001])
def test_median_by_narrowing_is_numpys_median(count, monkeypatch):
    import stages.typed_split as typed_split

    monkeypatch.setattr(typed_split, "SELECT_GATHER", 3)  # narrow down to three values, not millions
    rng = np.random.default_rng(count)
    tables = [rng.standard_normal(count), np.round(rng.standard_normal(count)), rng.integers(0, 3, count) * 1.0]
    tables += [np.full(count, -0.5), rng.uniform(1.0, 1.0 + 1e-12, count), -rng.lognormal(0, 20, count)]
    for values in tables:
        chunks = lambda values=values: iter(np.array_split(values, 4))  # noqa: E731
        assert median(chunks, count) == np.median(values)
