"""A three-feature CSV with a test split and scaling, through every stage."""

import json

import numpy as np

from tests.helpers import default_params, run_module, write_params

TRUE_W = np.array([2.0, -0.5, 0.01])


def test_three_features_with_a_test_split_through_every_stage(workdir):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 1000.0] + [0.0, 50.0, 5000.0]
    y = X @ TRUE_W + 4.0 + rng.normal(scale=0.1, size=60)
    rows = "".join(",".join(map(repr, [*r, t])) + "\n" for r, t in zip(X.tolist(), y.tolist(), strict=True))
    (workdir / "data" / "wide.csv").write_text("a,b,c,target\n" + rows)
    params = default_params(
        path="data/wide.csv", features=["a", "b", "c"], target="target", test_size=0.25, standardize=True
    )
    params["models"]["linear"]["epochs"] = 600
    params["models"]["mlp"]["epochs"] = 300
    write_params(workdir, params)

    for args in (
        ["prepare"],
        ["train", "linear"],
        ["train", "mlp"],
        ["evaluate", "linear"],
        ["evaluate", "mlp"],
        ["plot"],
    ):
        result = run_module(workdir, *args)
        assert result.returncode == 0, (args, result.stderr)

    linear = json.loads((workdir / "metrics" / "linear.json").read_text())
    mlp = json.loads((workdir / "metrics" / "mlp.json").read_text())
    assert set(linear) == {"train", "test", "coefficients", "coefficients_standardized", "importance",
                           "partial_dependence"}  # fmt: skip
    assert set(mlp) == {"train", "test", "importance", "partial_dependence"} and set(
        mlp["importance"]["mse_increase"]
    ) == {"a", "b", "c"}
    assert set(linear["test"]) == {"mse", "rmse", "mae", "r2"}
    X_train = np.load(workdir / "data" / "prepared" / "X_train.npy")
    y_train = np.load(workdir / "data" / "prepared" / "y_train.npy")
    A = np.column_stack([X_train, np.ones(len(y_train))])
    best, *_ = np.linalg.lstsq(A, y_train, rcond=None)
    assert linear["train"]["mse"] <= 1.01 * float(np.mean((A @ best - y_train) ** 2))
    got = [linear["coefficients"][k] for k in ("a", "b", "c")]
    np.testing.assert_allclose(got, best[:3], rtol=2e-2)
    assert linear["test"]["r2"] > 0.99
    assert (workdir / "plots" / "fit.png").read_bytes().startswith(b"\x89PNG")
