from __future__ import annotations

import numpy as np
import pytest
import torch

from stages import models
from stages.data import Scaling
from stages.errors import UserError
from stages.params import ModelSpec

X_SEED = np.arange(1.0, 11.0).reshape(-1, 1)
Y_SEED = np.array([3, 5, 5, 6, 7, 7, 8, 9, 9, 10], dtype=np.float64)
LINEAR = ModelSpec(name="linear", kind="linear", lr=0.07, epochs=1000)
MLP = ModelSpec(name="mlp", kind="mlp", lr=0.01, epochs=1000, hidden=(10,), activation="tanh")


def least_squares_mse(X, y):
    A = np.column_stack([X, np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(np.mean((A @ coef - y) ** 2)), coef


def train(spec: ModelSpec, X=X_SEED, y=Y_SEED, seed=0, dtype="float32"):
    torch.manual_seed(seed)
    arch = models.architecture(spec, X.shape[1], dtype)
    model = models.build_model(arch)
    as_tensor = lambda a: torch.as_tensor(a, dtype=getattr(torch, arch["dtype"]))  # noqa: E731
    log = models.train_model(model, as_tensor(X), as_tensor(y), spec, seed)
    return model, log


def test_linear_adam_reaches_the_least_squares_line_on_the_seed_data():
    model, log = train(LINEAR)
    best_mse, (w, b) = least_squares_mse(X_SEED, Y_SEED)
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse == pytest.approx(best_mse, rel=1e-6)
    coefficients = models.linear_coefficients(model, ("x",), None)
    assert coefficients["x"] == pytest.approx(w, abs=1e-4) and coefficients["intercept"] == pytest.approx(b, abs=1e-3)
    assert len(log.losses) == 1000 and log.losses[-1] < log.losses[0]


def test_mlp_fits_below_the_best_line():
    model, _ = train(MLP)
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse < least_squares_mse(X_SEED, Y_SEED)[0]


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    first, _ = train(MLP, seed=1)
    second, _ = train(MLP, seed=1)
    other, _ = train(MLP, seed=2)
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[key])
    assert not torch.equal(first.state_dict()["layers.0.weight"], other.state_dict()["layers.0.weight"])


def test_minibatches_are_deterministic_and_cover_rows():
    spec = ModelSpec(name="mb", kind="mlp", lr=0.01, epochs=20, hidden=(4, 3), activation="relu", batch_size=3)
    a, log_a = train(spec)
    b, log_b = train(spec)
    assert log_a.losses == log_b.losses and len(log_a.losses) == 20
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)


def test_a_loss_that_blows_up_without_overflowing_is_divergence():
    spec = ModelSpec(name="mlp", kind="mlp", lr=1e12, epochs=200, hidden=(10,), activation="tanh")
    with pytest.raises(UserError, match=r"models.mlp: training diverged: the loss grew from .* lower models.mlp.lr"):
        train(spec)


def test_a_huge_lr_that_still_converges_is_not_divergence():
    model, log = train(ModelSpec(name="linear", kind="linear", lr=1e12, epochs=1000))
    assert log.losses[-1] < log.losses[0]


def test_divergence_stops_with_the_step_and_a_smaller_lr_hint():
    spec = ModelSpec(name="linear", kind="linear", lr=1e30, epochs=1000)
    with pytest.raises(UserError, match=r"models.linear: training diverged at step \d+, loss inf; lower models.linear.lr"):
        train(spec)


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
        ("Linear-1", [-1, 10], 20), ("Tanh-2", [-1, 10], 0), ("Linear-3", [-1, 1], 11)]
    summary = models.format_summary("mlp", arch, rows)
    assert summary.startswith("Model mlp: mlp, activation tanh, float32\n") and "Total params: 31" in summary


def test_saved_model_loads_with_weights_only_and_predicts_the_same(tmp_path):
    model, _ = train(MLP)
    path = tmp_path / "mlp.pt"
    meta = {"name": "mlp", "architecture": models.architecture(MLP, 1, "float32"), "features": ["x"], "target": "y", "scaling": None}
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


def test_exact_solver_equals_numpy_lstsq_on_well_conditioned_data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(200, 5)) * [1, 2, 3, 4, 5] + [0, 1, -1, 10, 3]
    y = X @ rng.normal(size=5) + 2.5 + rng.normal(scale=0.3, size=200)
    A = np.column_stack([X, np.ones(200)])
    expected, *_ = np.linalg.lstsq(A, y, rcond=None)
    for block_rows in (65536, 7):  # one block, and many blocks of the streaming QR
        solution = models.solve_least_squares(X, y, block_rows=block_rows)
        got = np.append(solution.weight.numpy(), solution.bias.numpy())
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
        assert solution.mse == pytest.approx(np.mean((A @ expected - y) ** 2), rel=1e-10)


def test_exact_model_is_float64_and_ignores_train_dtype():
    spec = ModelSpec(name="ls", kind="linear", solver="exact")
    model, log = train(spec, dtype="float32")
    assert model.weight.dtype == torch.float64 and len(log.losses) == 1
    best_mse, (w, b) = least_squares_mse(X_SEED, Y_SEED)
    assert model.weight.detach()[0].item() == pytest.approx(w, rel=1e-12)
    assert model.bias.detach()[0].item() == pytest.approx(b, rel=1e-12)


def test_lbfgs_reaches_the_least_squares_line():
    model, log = train(ModelSpec(name="lb", kind="linear", solver="lbfgs", lr=1.0, epochs=10))
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse == pytest.approx(least_squares_mse(X_SEED, Y_SEED)[0], rel=1e-6)
    assert len(log.losses) == 10


def test_float64_training_gives_float64_weights_and_a_closer_fit():
    model64, _ = train(LINEAR, dtype="float64")
    assert all(p.dtype == torch.float64 for p in model64.parameters())
    mse64 = float(np.mean((models.predict(model64, X_SEED, None) - Y_SEED) ** 2))
    assert mse64 == pytest.approx(least_squares_mse(X_SEED, Y_SEED)[0], rel=1e-10)


def test_minibatches_cover_every_row_exactly_once_per_epoch_in_a_seeded_order():
    generator = torch.Generator().manual_seed(3)
    epochs = [models.minibatches(1000, 64, generator) for _ in range(3)]
    for batches in epochs:
        assert [len(b) for b in batches] == [64] * 15 + [40]
        assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))  # reshuffled every epoch
    again = torch.Generator().manual_seed(3)
    assert torch.equal(torch.cat(models.minibatches(1000, 64, again)), torch.cat(epochs[0]))


def test_exact_on_a_hundred_thousand_rows_equals_numpy_lstsq():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100_000, 8)) * rng.uniform(0.1, 100, size=8) + rng.normal(size=8) * 50
    y = X @ rng.normal(size=8) + 3.0 + rng.normal(size=100_000)
    solution = models.solve_least_squares(X, y)  # two blocks of the streaming QR
    expected, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(y))]), y, rcond=None)
    got = np.append(solution.weight.numpy(), solution.bias.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=0)


def test_device_choice_follows_what_torch_sees():
    assert models.resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert models.resolve_device("auto").type == "cuda" and models.resolve_device("cuda").type == "cuda"
    else:
        assert models.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(UserError, match="train.device is cuda, but torch sees no CUDA device here"):
            models.resolve_device("cuda")
