"""NIST StRD certified values: `solver: exact` through the real prepare and train stages."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from stages import prepare, train
from tests.conftest import default_params, write_params

NIST = Path(__file__).parent / "data" / "nist"
CERTIFIED = yaml.safe_load((NIST / "certified.yaml").read_text())


def significant_digits(got: float, want: float) -> float:
    return float("inf") if got == want else -__import__("math").log10(abs(got - want) / abs(want))


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
@pytest.mark.parametrize("name", sorted(CERTIFIED))
def test_exact_solver_reproduces_certified_coefficients(tmp_path, monkeypatch, name, standardize):
    case = CERTIFIED[name]
    (tmp_path / "data").mkdir()
    shutil.copy(NIST / f"{name}.csv", tmp_path / "data" / f"{name}.csv")
    params = default_params(path=f"data/{name}.csv", features=case["features"], target=case["target"],
                            standardize=standardize)
    params["models"] = {"ls": {"kind": "linear", "solver": "exact"}}
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    prepare.main([])
    train.main(["ls"])

    got = json.loads((tmp_path / "models" / "ls.json").read_text())["coefficients"]
    want = dict(zip(case["features"], case["coefficients"], strict=True), intercept=case["intercept"])
    digits = {key: significant_digits(got[key], value) for key, value in want.items()}
    print(name, "standardized" if standardize else "raw", f"min significant digits {min(digits.values()):.1f}")
    assert min(digits.values()) >= 7, digits
