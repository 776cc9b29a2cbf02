from __future__ import annotations

import numpy as np
import pytest
import torch

from stages import batches, least_squares, models, training
from stages.errors import UserError
from stages.params import EarlyStopping, ModelSpec
from stages.prepared import Scaling
from tests.unit.seed_models import LINEAR, MLP, X_SEED, Y_SEED, least_squares_mse, train_on


def test_linear_adam_reaches_the_least_squares_line_on_the_seed_data():
    model, log = train_on(LINEAR)
    best_mse, (w, b) = least_squares_mse(X_SEED, Y_SEED)
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse == pytest.approx(best_mse, rel=1e-6)
    coefficients = models.linear_coefficients(model, ("x",), None)
    assert coefficients["x"] == pytest.approx(w, abs=1e-4) and coefficients["intercept"] == pytest.approx(b, abs=1e-3)
    assert len(log.losses) == 1000 and log.losses[-1] < log.losses[0]


def test_mlp_fits_below_the_best_line():
    model, _ = train_on(MLP)
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse < least_squares_mse(X_SEED, Y_SEED)[0]


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    first, _ = train_on(MLP, seed=1)
    second, _ = train_on(MLP, seed=1)
    other, _ = train_on(MLP, seed=2)
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[key])
    assert not torch.equal(first.state_dict()["layers.0.weight"], other.state_dict()["layers.0.weight"])


def test_minibatches_are_deterministic_and_cover_rows():
    spec = ModelSpec(name="mb", kind="mlp", lr=0.01, epochs=20, hidden=(4, 3), activation="relu", batch_size=3)
    a, log_a = train_on(spec)
    b, log_b = train_on(spec)
    assert log_a.losses == log_b.losses and len(log_a.losses) == 20
    assert torch.equal(a.layers[0].weight, b.layers[0].weight)


def test_a_loss_that_blows_up_without_overflowing_is_divergence():
    spec = ModelSpec(name="mlp", kind="mlp", lr=1e12, epochs=200, hidden=(10,), activation="tanh")
    with pytest.raises(UserError, match=r"models.mlp: training diverged: the loss grew from .* lower models.mlp.lr"):
        train_on(spec)


def test_a_huge_lr_that_still_converges_is_not_divergence():
    model, log = train_on(ModelSpec(name="linear", kind="linear", lr=1e12, epochs=1000))
    assert log.losses[-1] < log.losses[0]


def test_divergence_stops_with_the_step_and_a_smaller_lr_hint():
    spec = ModelSpec(name="linear", kind="linear", lr=1e30, epochs=1000)
    expected = r"models.linear: training diverged at step \d+, loss inf; lower models.linear.lr"
    with pytest.raises(UserError, match=expected):
        train_on(spec)


def test_exact_solver_equals_numpy_lstsq_on_well_conditioned_data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(200, 5)) * [1, 2, 3, 4, 5] + [0, 1, -1, 10, 3]
    y = X @ rng.normal(size=5) + 2.5 + rng.normal(scale=0.3, size=200)
    A = np.column_stack([X, np.ones(200)])
    expected, *_ = np.linalg.lstsq(A, y, rcond=None)
    for block_rows in (65536, 7):  # one block, and many blocks of the streaming QR
        solution = least_squares.solve_least_squares(X, y, block_rows=block_rows)
        got = np.append(solution.weight.numpy(), solution.bias.numpy())
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)
        assert solution.mse == pytest.approx(np.mean((A @ expected - y) ** 2), rel=1e-10)


def test_exact_model_is_float64_and_ignores_train_dtype():
    spec = ModelSpec(name="ls", kind="linear", solver="exact")
    model, log = train_on(spec, dtype="float32")
    assert model.weight.dtype == torch.float64 and len(log.losses) == 1
    best_mse, (w, b) = least_squares_mse(X_SEED, Y_SEED)
    assert model.weight.detach()[0].item() == pytest.approx(w, rel=1e-12)
    assert model.bias.detach()[0].item() == pytest.approx(b, rel=1e-12)


def test_lbfgs_reaches_the_least_squares_line():
    model, log = train_on(ModelSpec(name="lb", kind="linear", solver="lbfgs", lr=1.0, epochs=10))
    mse = float(np.mean((models.predict(model, X_SEED, None) - Y_SEED) ** 2))
    assert mse == pytest.approx(least_squares_mse(X_SEED, Y_SEED)[0], rel=1e-6)
    assert len(log.losses) == 10


def test_float64_training_gives_float64_weights_and_a_closer_fit():
    model64, _ = train_on(LINEAR, dtype="float64")
    assert all(p.dtype == torch.float64 for p in model64.parameters())
    mse64 = float(np.mean((models.predict(model64, X_SEED, None) - Y_SEED) ** 2))
    assert mse64 == pytest.approx(least_squares_mse(X_SEED, Y_SEED)[0], rel=1e-10)


def test_minibatches_cover_every_row_exactly_once_per_epoch_in_a_seeded_order():
    generator = torch.Generator().manual_seed(3)
    epochs = [batches.minibatches(1000, 64, generator) for _ in range(3)]
    for epoch in epochs:
        assert [len(b) for b in epoch] == [64] * 15 + [40]
        assert sorted(torch.cat(epoch).tolist()) == list(range(1000))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))  # reshuffled every epoch
    again = torch.Generator().manual_seed(3)
    assert torch.equal(torch.cat(batches.minibatches(1000, 64, again)), torch.cat(epochs[0]))
    # int32 indices (half the memory of int64 at 10^8 rows), the same permutation torch draws as int64
    assert epochs[0][0].dtype == torch.int32
    assert torch.equal(torch.cat(epochs[0]).long(), torch.randperm(1000, generator=torch.Generator().manual_seed(3)))


def test_exact_on_a_hundred_thousand_rows_equals_numpy_lstsq():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100_000, 8)) * rng.uniform(0.1, 100, size=8) + rng.normal(size=8) * 50
    y = X @ rng.normal(size=8) + 3.0 + rng.normal(size=100_000)
    solution = least_squares.solve_least_squares(X, y)  # two blocks of the streaming QR
    expected, *_ = np.linalg.lstsq(np.column_stack([X, np.ones(len(y))]), y, rcond=None)
    got = np.append(solution.weight.numpy(), solution.bias.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=0)


def test_exact_fit_reads_mapped_rows_and_puts_the_line_into_scaled_units(tmp_path):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(5000, 3)) * [1.0, 30.0, 0.01] + [5.0, -200.0, 0.0]
    y = X @ [2.0, -0.5, 300.0] + 7.0 + rng.normal(size=5000)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")  # read-only, as train maps data/prepared
    scaling = Scaling(tuple(X.mean(axis=0)), tuple(X.std(axis=0)), float(y.mean()), float(y.std()))
    model = models.build_model(models.architecture(ModelSpec(name="ls", kind="linear", solver="exact"), 3, "float32"))
    log, solution = training.fit_exact(model, mapped, y, scaling)

    A = np.column_stack([X, np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(models.predict(model, X, scaling), A @ coef, rtol=1e-10)
    got = models.linear_coefficients(model, ("a", "b", "c"), scaling)
    np.testing.assert_allclose(list(got.values()), coef, rtol=1e-9)
    assert solution.mse == pytest.approx(np.mean((A @ coef - y) ** 2), rel=1e-10)
    assert log.losses == [pytest.approx(solution.mse / scaling.y_std**2, rel=1e-12)]


def noisy_line(n: int = 60, seed: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 1))
    return X, 1.5 * X[:, 0] + rng.normal(scale=0.5, size=n)


def test_early_stopping_keeps_the_weights_of_the_epoch_with_the_lowest_validation_loss():
    X, y = noisy_line()
    spec = ModelSpec(name="m", kind="mlp", lr=0.05, epochs=400, hidden=(32,), early_stopping=EarlyStopping(0.25, 15))
    model, log = train_on(spec, X[15:], y[15:], validation=(X[:15], y[:15]))
    assert len(log.losses) == len(log.validation_losses) < 400  # it stopped early
    assert log.best_epoch == 1 + int(np.argmin(log.validation_losses))
    assert len(log.losses) == log.best_epoch + 15
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        kept = float(torch.nn.functional.mse_loss(model(as_tensor(X[:15])), as_tensor(y[:15])))
    assert kept == min(log.validation_losses)


def test_early_stopping_with_patience_beyond_the_epochs_runs_them_all_and_keeps_the_best():
    X, y = noisy_line()
    spec = ModelSpec(name="m", kind="linear", lr=0.05, epochs=30, early_stopping=EarlyStopping(0.25, 30))
    _, log = train_on(spec, X[15:], y[15:], validation=(X[:15], y[:15]))
    assert len(log.losses) == 30 and log.best_epoch == 1 + int(np.argmin(log.validation_losses)) < 30


def test_rows_gathered_ahead_on_a_second_thread_are_the_rows_in_order():
    """gathered() hands out each chunk's rows in the chunks' order, the same values a gather in line gives,
    and stops its thread when the caller stops early."""
    generator = torch.Generator().manual_seed(1)
    X, y = torch.randn(1000, 3, generator=generator), torch.randn(1000, generator=generator)
    chunks = batches.minibatches(1000, 96, generator)  # 11 chunks, the last of 40 rows
    got = list(batches.gathered(X, y, chunks))
    assert len(got) == len(chunks) == 11
    for (X_rows, y_rows), rows in zip(got, chunks, strict=True):
        assert torch.equal(X_rows, X[rows.long()]) and torch.equal(y_rows, y[rows.long()])
    assert [len(r) for _, r in batches.gathered(X, y, chunks[:1])] == [96]  # one chunk: no thread
    first = batches.gathered(X, y, chunks)
    next(first)
    first.close()  # the pool shuts down; nothing left running
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("gather")]


def test_minibatch_training_gives_the_same_weights_whatever_the_number_of_gather_chunks(monkeypatch):
    """Gathering ahead changes only when rows are fetched: many chunks (a thread) and one chunk (in line)
    train bit-identical weights."""
    spec = ModelSpec(name="mlp", kind="mlp", hidden=(5,), activation="tanh", lr=0.01, epochs=3, batch_size=16)
    generator = torch.Generator().manual_seed(2)
    X, y = torch.randn(500, 2, generator=generator), torch.randn(500, generator=generator)

    def weights(gather_batches: int):
        monkeypatch.setattr(batches, "GATHER_BATCHES", gather_batches)
        torch.manual_seed(0)
        model = models.build_model({"kind": "mlp", "n_features": 2, "hidden": [5], "activation": "tanh"})
        log = training.fit_adam(model, X, y, spec, seed=4)
        return log.losses, [p.detach().clone() for p in model.parameters()]

    (losses_many, many), (losses_one, one) = weights(2), weights(64)  # 16 chunks per epoch, then 1
    assert losses_many == losses_one
    assert all(torch.equal(a, b) for a, b in zip(many, one, strict=True))


def test_the_streaming_least_squares_gives_the_same_bytes_on_one_thread_and_several(monkeypatch):
    """Block sums on several threads are added in block order and the next block is centred ahead on a
    second thread: the same coefficients to the bit as one thread, and numpy's answer to rounding."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(5000, 4)) * [1.0, 100.0, 0.01, 5.0] + [3.0, -50.0, 0.2, 1e3]
    y = X @ np.array([1.5, -0.02, 40.0, 0.3]) + 2.0 + rng.normal(size=5000)

    def solve(threads: int) -> least_squares.LeastSquares:
        monkeypatch.setattr(models, "BLOCK_THREADS", threads)
        return least_squares.solve_least_squares(X, y, block_rows=256)  # 20 blocks, the last of 136 rows

    one, several = solve(1), solve(3)
    assert one.weight.numpy().tobytes() == several.weight.numpy().tobytes()
    assert float(one.bias) == float(several.bias) and one.mse == several.mse
    expected = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0]
    np.testing.assert_allclose(one.weight.numpy(), expected[:4], rtol=1e-9)
