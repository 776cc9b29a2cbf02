"""Which columns matter, as train measures it and evaluate reports it: permutation importance per column of
the CSV, standardized coefficients, and the figures plot draws from them."""

import json

import numpy as np

from tests.helpers import default_params, run_module, write_params


def test_both_models_rank_first_the_two_columns_the_target_depends_on(workdir):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 10)) * rng.uniform(0.5, 20, 10)  # ten columns of other units
    y = 3 * X[:, 2] / X[:, 2].std() - 2 * X[:, 7] / X[:, 7].std() + 0.1 * rng.normal(size=600)
    names = [f"c{j}" for j in range(10)]
    lines = [",".join([*names, "y"])] + [
        ",".join(map(repr, [*row, target])) for row, target in zip(X.tolist(), y.tolist(), strict=True)
    ]
    (workdir / "data" / "t.csv").write_text("\n".join(lines) + "\n")
    params = default_params(path="data/t.csv", target="y", features="all", test_size=0.25, standardize=True)
    params["models"] = {"linear": {"kind": "linear", "solver": "exact"},
                        "mlp": {"kind": "mlp", "hidden": [16], "activation": "tanh", "lr": 0.01, "epochs": 60,
                                "batch_size": 32}}  # fmt: skip
    write_params(workdir, params)
    for stage in (["prepare"], *(["train", m] for m in params["models"]), *(["evaluate", m] for m in params["models"])):
        result = run_module(workdir, *stage)
        assert result.returncode == 0, result.stderr
    for model in params["models"]:
        importance = json.loads((workdir / "metrics" / f"{model}.json").read_text())["importance"]
        assert (
            importance["split"] == "test"
            and importance["rows"] == 150
            and set(importance["mse_increase"]) == set(names)
        )
        ranked = sorted(names, key=lambda c: -importance["mse_increase"][c])
        assert ranked[:2] == ["c2", "c7"], importance["mse_increase"]
        assert max(importance["mse_increase"][c] for c in ranked[2:]) < 0.05 * importance["mse_increase"]["c7"]
    linear = json.loads((workdir / "metrics" / "linear.json").read_text())
    standardized = linear["coefficients_standardized"]  # in target sds per feature sd: 3 and -2 over y's sd
    assert np.isclose(standardized["c2"] / standardized["c7"], -1.5, rtol=0.02)
    assert abs(linear["coefficients"]["c2"]) != abs(standardized["c2"])
    assert run_module(workdir, "plot").returncode == 0
    assert (workdir / "plots" / "importance.png").read_bytes() != (workdir / "plots" / "fit.png").read_bytes()
