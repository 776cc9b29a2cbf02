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
    assert (
        summary.startswith("Model mlp: mlp, activation tanh, init glorot, float32\n") and "Total params: 31" in summary
    )


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


def saved_mlp(tmp_path, change) -> str:
    """An MLP file as train writes it, with `change` applied to its dict first."""
    model, _ = train_on(MLP)
    arch = models.architecture(MLP, 1, "float32")
    saved = {"format": models.MODEL_FORMAT, "name": "mlp", "architecture": arch, "features": ["x"], "target": "y",
             "scaling": {"x_mean": [5.5], "x_std": [2.9], "y_mean": 6.9, "y_std": 2.1},
             "state_dict": model.state_dict()}  # fmt: skip
    change(saved)
    path = tmp_path / "changed.pt"
    torch.save(saved, path)
    return str(path)


@pytest.mark.parametrize(
    "change, detail",
    [
        (lambda s: s["architecture"].update(hidden=[20]), "size mismatch for layers.0.weight"),
        (lambda s: s["architecture"].update(kind="forest"), "unknown kind or dtype 'forest'"),
        (lambda s: s["architecture"].update(dtype="bogus"), "unknown kind or dtype 'mlp', 'bogus'"),
        (lambda s: s["architecture"].update(activation="gelu"), "unknown activation 'gelu'"),
        (lambda s: s["architecture"].pop("n_features"), "no 'n_features'"),
        (lambda s: s.pop("features"), "it has no features"),
        (lambda s: s.pop("state_dict"), "it has no state_dict"),
        (lambda s: s.update(features=["a", "b"]), "it names 2 features for 1 inputs"),
        (lambda s: s.update(features="x"), "its features are not a list of column names"),
        (lambda s: s.update(scaling={"x_mean": [1.0]}), "no 'x_std'"),
        (lambda s: s["scaling"].update(x_mean=[1.0, 2.0]), "its scaling does not have one mean and std per feature"),
        (lambda s: s.update(format=2), "format 1 expected"),
    ],
)
def test_a_model_file_that_is_not_quite_ours_is_named_as_such(tmp_path, change, detail):
    path = saved_mlp(tmp_path, change)
    with pytest.raises(UserError) as caught:
        models.load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a model file written by this pipeline (") and detail in message
    assert "\n" not in message


def test_the_unchanged_file_loads(tmp_path):
    model, saved = models.load_model(saved_mlp(tmp_path, lambda s: None))
    assert saved["features"] == ["x"] and isinstance(model, models.MLPRegressor)


def test_blocks_on_several_threads_give_the_bytes_of_one_thread(monkeypatch):
    """Converting, predicting and the range check run block by block on BLOCK_THREADS threads: the same
    bytes as on one, over several blocks and a short last one."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3 * models.BLOCK_ROWS + 17, 3)) * [1.0, 1e3, 1e-3]
    scaling = Scaling(tuple(X.mean(0)), tuple(X.std(0)), 0.5, 2.0)
    torch.manual_seed(0)
    model = models.build_model({"kind": "mlp", "n_features": 3, "hidden": [4], "activation": "tanh"})

    def run(threads: int):
        monkeypatch.setattr(models, "BLOCK_THREADS", threads)
        tensor = models.scaled_tensor(X, scaling, torch.float32)
        return tensor, models.predict(model, X, scaling)

    (tensor_1, predicted_1), (tensor_2, predicted_2) = run(1), run(2)
    assert torch.equal(tensor_1, tensor_2)
    assert predicted_1.tobytes() == predicted_2.tobytes()
    assert np.array_equal(tensor_1.numpy(), ((X - X.mean(0)) / X.std(0)).astype(np.float32))


def test_the_range_check_finds_a_column_ruined_in_the_last_block_only():
    X = np.ones((2 * models.BLOCK_ROWS + 5, 3))
    X[:, 0] = np.arange(len(X))
    X[-1, 1] = 1e300  # beyond float32: inf after conversion, in the last (short) block
    X[:, 2] = 1.0 + np.arange(len(X)) * 1e-14  # differences below float32's resolution: one value
    tensor = models.scaled_tensor(X, None, torch.float32)
    assert models.lost_columns(tensor, X) == [1, 2]


def test_an_error_in_one_block_reaches_the_caller():
    def work(start: int, stop: int) -> None:
        if start > 0:
            raise ValueError(f"block at {start}")

    with pytest.raises(ValueError, match="block at"):
        models.each_block(3 * models.BLOCK_ROWS, work)


def linear_layers(model: models.MLPRegressor) -> list[torch.nn.Linear]:
    return [layer for layer in model.layers if isinstance(layer, torch.nn.Linear)]


@pytest.mark.parametrize(
    ("init", "bound"),
    [
        ("glorot", lambda fan_in, fan_out: (6 / (fan_in + fan_out)) ** 0.5),
        ("he", lambda fan_in, fan_out: (6 / fan_in) ** 0.5),
    ],
)
def test_glorot_and_he_draw_weights_and_biases_uniformly_within_their_bound(init, bound):
    torch.manual_seed(0)
    model = models.MLPRegressor(40, (300, 200), "tanh", init)
    for index, layer in enumerate(linear_layers(model)):
        fan_out, fan_in = layer.weight.shape
        limit = bound(fan_in, fan_out)
        weight, bias = layer.weight.detach(), layer.bias.detach()
        assert float(weight.abs().max()) <= limit and float(bias.abs().max()) <= limit
        if index < 2:  # spread over the whole interval (the weights' largest near the bound, their mean near 0)
            assert float(weight.abs().max()) > 0.99 * limit and abs(float(weight.mean())) < 0.05 * limit
            assert float(bias.std()) > 0.4 * limit  # not zero: uniform in the weights' bound (std limit / sqrt 3)


def test_torch_init_keeps_nn_linears_own_draws():
    torch.manual_seed(5)
    model = models.MLPRegressor(3, (4,), "relu", "torch")
    torch.manual_seed(5)
    first, second = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)
    expected = [first.weight, first.bias, second.weight, second.bias]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), expected, strict=True))


def test_auto_init_follows_the_activation_and_is_recorded_in_the_architecture():
    from stages.params import ModelSpec

    chosen = {}
    for activation in ("tanh", "sigmoid", "relu"):
        spec = ModelSpec(name="m", kind="mlp", lr=0.01, epochs=1, hidden=(3,), activation=activation)
        chosen[activation] = models.architecture(spec, 2, "float32")["init"]
    assert chosen == {"tanh": "glorot", "sigmoid": "glorot", "relu": "he"}
    spec = ModelSpec(name="m", kind="mlp", lr=0.01, epochs=1, hidden=(3,), init="torch")
    arch = models.architecture(spec, 2, "float32")
    assert arch["init"] == "torch" and "init torch" in models.format_summary("m", arch, [])


def test_the_same_seed_gives_the_same_initial_weights():
    def draw():
        torch.manual_seed(11)
        return torch.cat([p.detach().flatten() for p in models.MLPRegressor(2, (6, 6), "tanh", "glorot").parameters()])

    assert torch.equal(draw(), draw())


def test_a_model_file_with_an_unknown_init_is_refused(tmp_path):
    def odd_init(saved):
        saved["architecture"]["init"] = "orthogonal"

    with pytest.raises(UserError, match="its parts do not fit together: unknown init 'orthogonal'"):
        models.load_model(saved_mlp(tmp_path, odd_init))
