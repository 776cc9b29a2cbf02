from __future__ import annotations

import numpy as np
import pytest
import torch

from stages import models
from stages.errors import UserError
from stages.prepared import Scaling
from tests.unit.seed_models import MLP, X_SEED, train_on


def test_coefficients_are_reported_in_original_units_when_scaled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)) * [10.0, 0.1] + [100.0, -3.0]
    y = X @ np.array([0.5, 20.0]) + 7.0
    scaling = Scaling(tuple(X.mean(0)), tuple(X.std(0)), float(y.mean()), float(y.std()))
    torch.manual_seed(0)
    model = models.LinearRegressor(2)
    with torch.no_grad():  # the exact solution in scaled units
        model.weight.copy_(torch.tensor(np.array([0.5, 20.0]) * X.std(0) / y.std()))
        model.bias.zero_()
    coefficients = models.linear_coefficients(model, ("a", "b"), scaling)
    assert coefficients["a"] == pytest.approx(0.5, rel=1e-5)
    assert coefficients["b"] == pytest.approx(20.0, rel=1e-5)
    assert coefficients["intercept"] == pytest.approx(7.0, rel=1e-4)
    np.testing.assert_allclose(models.predict(model, X, scaling), y, rtol=1e-5)


def test_summary_lists_layers_shapes_and_parameter_counts():
    arch = models.architecture(MLP, 1, "float32")
    rows = models.layer_summary(models.build_model(arch), 1)
    assert [(r["layer"], r["output_shape"], r["params"]) for r in rows] == [
        ("Linear-1", [-1, 10], 20),
        ("Tanh-2", [-1, 10], 0),
        ("Linear-3", [-1, 1], 11),
    ]
    summary = models.format_summary("mlp", arch, rows)
    assert summary.startswith("Model mlp: mlp, activation tanh, float32\n") and "Total params: 31" in summary


def test_saved_model_loads_with_weights_only_and_predicts_the_same(tmp_path):
    model, _ = train_on(MLP)
    path = tmp_path / "mlp.pt"
    arch = models.architecture(MLP, 1, "float32")
    meta = {"name": "mlp", "architecture": arch, "features": ["x"], "target": "y", "scaling": None}
    path.write_bytes(models.model_bytes(model, meta))
    raw = torch.load(path, weights_only=True)
    assert raw["features"] == ["x"] and raw["architecture"]["hidden"] == [10]
    loaded, saved = models.load_model(str(path))
    np.testing.assert_array_equal(models.predict(loaded, X_SEED, None), models.predict(model, X_SEED, None))
    assert models.model_bytes(model, meta) == path.read_bytes()


def test_loading_a_file_that_is_not_a_model_is_a_user_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a model file written by this pipeline"):
        models.load_model(str(path))
