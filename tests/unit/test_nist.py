"""NIST StRD certified values: `solver: exact` on the data as prepare splits it, as train fits it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from stages.params import DataParams, ModelSpec
from tests.unit.seed_models import fit_quietly, split_from_csv

NIST = Path(__file__).parents[1] / "data" / "nist"
CERTIFIED = yaml.safe_load((NIST / "certified.yaml").read_text())


def significant_digits(got: float, want: float) -> float:
    return float("inf") if got == want else -math.log10(abs(got - want) / abs(want))


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
@pytest.mark.parametrize("name", sorted(CERTIFIED))
def test_exact_solver_reproduces_certified_coefficients(name, standardize):
    case = CERTIFIED[name]
    data = DataParams(
        path=str(NIST / f"{name}.csv"), features=tuple(case["features"]), target=case["target"], standardize=standardize
    )
    trained = fit_quietly(ModelSpec(name="ls", kind="linear", solver="exact"), split_from_csv(data))

    got = trained.card["coefficients"]
    want = dict(zip(case["features"], case["coefficients"], strict=True), intercept=case["intercept"])
    digits = {key: significant_digits(got[key], value) for key, value in want.items()}
    print(name, "standardized" if standardize else "raw", f"min significant digits {min(digits.values()):.1f}")
    assert min(digits.values()) >= 7, digits


@pytest.mark.parametrize("name", sorted(CERTIFIED))
def test_the_streaming_statistics_of_a_long_table_keep_the_certified_digits(name):
    """Past one block the exact solver takes means and column norms in one pass (squares about the first
    row, corrected to the mean): blocks of 4 rows here, on NIST's hardest small tables."""
    import numpy as np

    from stages import least_squares

    case = CERTIFIED[name]
    table = np.genfromtxt(NIST / f"{name}.csv", delimiter=",", names=True)
    X = np.column_stack([table[column] for column in case["features"]])
    y = np.asarray(table[case["target"]], dtype=np.float64)
    solution = least_squares.solve_least_squares(X, y, block_rows=4)
    got = dict(zip(case["features"], solution.weight.tolist(), strict=True), intercept=float(solution.bias[0]))
    want = dict(zip(case["features"], case["coefficients"], strict=True), intercept=case["intercept"])
    digits = {key: significant_digits(got[key], value) for key, value in want.items()}
    assert min(digits.values()) >= 7, digits
