from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stages import least_squares, models, training
from stages.errors import UserError
from stages.params import EarlyStopping, ModelSpec
from stages.prepared import Encoded, Scaling
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
    epochs = [training.minibatches(1000, 64, generator) for _ in range(3)]
    for batches in epochs:
        assert [len(b) for b in batches] == [64] * 15 + [40]
        assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))  # reshuffled every epoch
    again = torch.Generator().manual_seed(3)
    assert torch.equal(torch.cat(training.minibatches(1000, 64, again)), torch.cat(epochs[0]))
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


def test_device_choice_follows_what_torch_sees():
    assert training.resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert training.resolve_device("auto").type == "cuda" and training.resolve_device("cuda").type == "cuda"
    else:
        assert training.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(UserError, match="^params.yaml: train.device is cuda, but torch sees no CUDA device here"):
            training.resolve_device("cuda")
        with pytest.raises(UserError, match="^exp.yaml: train.device is cuda"):  # the file given with --params
            training.resolve_device("cuda", "exp.yaml")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_our_adam_is_bit_identical_to_torch_optim_adam(dtype):
    def run(make_optimizer):
        torch.manual_seed(11)
        model = torch.nn.Sequential(torch.nn.Linear(3, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1)).to(dtype)
        optimizer = make_optimizer(model.parameters())
        X, y = torch.randn(50, 3, dtype=dtype), torch.randn(50, 1, dtype=dtype)
        for step in range(300):  # bias corrections matter early, the moments late
            rows = slice(step % 5 * 10, step % 5 * 10 + 10)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(X[rows]), y[rows]).backward()
            optimizer.step()
        return [p.detach() for p in model.parameters()]

    ours = run(lambda params: training.Adam(params, lr=0.03))
    theirs = run(lambda params: torch.optim.Adam(params, lr=0.03))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not torch.equal(ours[0], run(lambda params: training.Adam(params, lr=0.02))[0])
    # with weight decay: torch.optim.AdamW's decoupled decay, bit for bit
    decayed = run(lambda params: training.Adam(params, lr=0.03, weight_decay=0.1))
    adamw = run(lambda params: torch.optim.AdamW(params, lr=0.03, weight_decay=0.1))
    assert all(torch.equal(a, b) for a, b in zip(decayed, adamw, strict=True))
    assert not torch.equal(decayed[0], ours[0])


def test_adam_training_does_not_import_torch_dynamo():
    # torch.optim optimizers import torch._dynamo when constructed: about a second per training stage.
    code = (
        "import sys; from tests.unit.seed_models import MLP, train_on; train_on(MLP); "
        "print('torch._dynamo' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "False"


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


def test_our_adam_counts_steps_per_parameter_like_torch():
    # A parameter without a gradient is skipped and its bias correction waits, as in torch.optim.Adam.
    def run(make_optimizer):
        torch.manual_seed(12)
        a, b = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
        optimizer = make_optimizer([a, b])
        for step in range(40):
            optimizer.zero_grad()
            loss = (a**2).sum() + ((b - 1) ** 2).sum() if step % 3 == 0 else (a**2).sum()
            loss.backward()
            optimizer.step()
        return a.detach(), b.detach()

    ours, theirs = run(lambda p: training.Adam(p, lr=0.1)), run(lambda p: torch.optim.Adam(p, lr=0.1))
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def noisy_line(n: int = 60, seed: int = 4):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 1))
    return X, 1.5 * X[:, 0] + rng.normal(scale=0.5, size=n)


def test_early_stopping_keeps_the_weights_of_the_epoch_with_the_lowest_validation_loss():
    X, y = noisy_line()
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    spec = ModelSpec(name="m", kind="mlp", lr=0.05, epochs=400, hidden=(32,), early_stopping=EarlyStopping(0.25, 15))
    torch.manual_seed(0)
    model = models.build_model(models.architecture(spec, 1, "float32"))
    validation = (as_tensor(X[:15]), as_tensor(y[:15]))
    log = training.train_model(model, as_tensor(X[15:]), as_tensor(y[15:]), spec, 0, validation=validation)
    assert len(log.losses) == len(log.validation_losses) < 400  # it stopped early
    assert log.best_epoch == 1 + int(np.argmin(log.validation_losses))
    assert len(log.losses) == log.best_epoch + 15
    with torch.no_grad():
        kept = float(torch.nn.functional.mse_loss(model(validation[0]), validation[1]))
    assert kept == min(log.validation_losses)


def test_early_stopping_with_patience_beyond_the_epochs_runs_them_all_and_keeps_the_best():
    X, y = noisy_line()
    spec = ModelSpec(name="m", kind="linear", lr=0.05, epochs=30, early_stopping=EarlyStopping(0.25, 30))
    torch.manual_seed(0)
    model = models.build_model(models.architecture(spec, 1, "float32"))
    tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    log = training.train_model(
        model, tensor(X[15:]), tensor(y[15:]), spec, 0, validation=(tensor(X[:15]), tensor(y[:15]))
    )
    assert len(log.losses) == 30 and log.best_epoch == 1 + int(np.argmin(log.validation_losses)) < 30


@pytest.mark.parametrize(
    "arch",
    [
        {"kind": "linear", "n_features": 3, "solver": "adam"},
        {"kind": "mlp", "n_features": 3, "hidden": [7], "activation": "tanh"},
        {"kind": "mlp", "n_features": 3, "hidden": [6, 5], "activation": "relu"},
        {"kind": "mlp", "n_features": 3, "hidden": [4], "activation": "sigmoid"},
        {"kind": "mlp", "n_features": 3, "hidden": [], "activation": "tanh"},
    ],
    ids=lambda arch: f"{arch['kind']}-{arch.get('hidden')}-{arch.get('activation')}",
)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_the_minibatch_trainer_follows_autograd_and_torch_adamw(arch, weight_decay):
    """The written-out backward pass and flat Adam take the steps autograd and torch.optim.AdamW take, up to
    float64 rounding, on the parameters the model holds (and saves) afterwards."""

    def run(step_with):
        torch.manual_seed(5)
        model = models.build_model({**arch, "dtype": "float64"})
        generator = torch.Generator().manual_seed(3)
        X, y = (
            torch.randn(60, 3, generator=generator, dtype=torch.float64),
            torch.randn(60, generator=generator, dtype=torch.float64),
        )
        losses = [
            float(step_with(model, X[rows], y[rows]))
            for step in range(200)
            for rows in [slice(step % 6 * 10, step % 6 * 10 + 10)]
        ]
        return model, losses

    trainer: training.MinibatchTrainer | None = None

    def ours(model, X, y):
        nonlocal trainer
        if trainer is None or trainer.model is not model:
            trainer = training.MinibatchTrainer(model, 0.03, weight_decay)
        return trainer.step(X, y) / len(y)

    optimizer = None

    def theirs(model, X, y):
        nonlocal optimizer
        if optimizer is None:
            optimizer = torch.optim.AdamW(model.parameters(), lr=0.03, weight_decay=weight_decay)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    model, our_losses = run(ours)
    trainer.release()
    reference, their_losses = run(theirs)
    assert np.allclose(our_losses, their_losses, rtol=1e-9, atol=1e-12)
    for mine, expected in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.allclose(mine, expected, rtol=1e-9, atol=1e-12)
        assert mine.untyped_storage().nbytes() == mine.numel() * mine.element_size()  # its own storage again


def test_auto_keeps_a_model_whose_steps_are_too_small_for_a_gpu_on_the_cpu():
    """The rule train.device: auto follows when a GPU is there: the two MLPs measured on an H200 (issue 14)
    fall on the sides the measurements put them."""
    small = ModelSpec(name="mlp", kind="mlp", hidden=(10,), activation="tanh", lr=0.01, epochs=5, batch_size=1024)
    large = ModelSpec(name="big", kind="mlp", hidden=(256, 256), activation="relu", lr=0.01, epochs=5, batch_size=8192)
    assert training.step_work(small, 8, 8_000_000) == 1024 * (8 * 10 + 10)
    assert training.step_work(large, 8, 8_000_000) == 8192 * (8 * 256 + 256 * 256 + 256)
    work = training.step_work
    assert work(small, 8, 8_000_000) < training.GPU_MIN_STEP_WORK < work(large, 8, 8_000_000)
    # full batch: the whole table is one step
    assert training.step_work(replace(small, batch_size=0), 8, 10_000_000) > training.GPU_MIN_STEP_WORK
    device, why = training.choose_device("auto", small, 8, 8_000_000)
    if torch.cuda.is_available():
        assert device.type == "cpu" and "faster there than on a GPU" in why
        assert training.choose_device("auto", large, 8, 8_000_000)[0].type == "cuda"
        assert training.choose_device("cuda", small, 8, 8_000_000)[0].type == "cuda"
    else:
        assert device.type == "cpu" and why is None


def test_rows_gathered_ahead_on_a_second_thread_are_the_rows_in_order():
    """gathered() hands out each chunk's rows in the chunks' order, the same values a gather in line gives,
    and stops its thread when the caller stops early."""
    generator = torch.Generator().manual_seed(1)
    X, y = torch.randn(1000, 3, generator=generator), torch.randn(1000, generator=generator)
    chunks = training.minibatches(1000, 96, generator)  # 11 chunks, the last of 40 rows
    got = list(training.gathered(X, y, chunks))
    assert len(got) == len(chunks) == 11
    for (X_rows, y_rows), rows in zip(got, chunks, strict=True):
        assert torch.equal(X_rows, X[rows.long()]) and torch.equal(y_rows, y[rows.long()])
    assert [len(r) for _, r in training.gathered(X, y, chunks[:1])] == [96]  # one chunk: no thread
    first = training.gathered(X, y, chunks)
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
        monkeypatch.setattr(training, "GATHER_BATCHES", gather_batches)
        torch.manual_seed(0)
        model = models.build_model({"kind": "mlp", "n_features": 2, "hidden": [5], "activation": "tanh"})
        log = training.fit(model, X, y, spec, seed=4)
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

    def solve(threads: int) -> training.LeastSquares:
        monkeypatch.setattr(models, "BLOCK_THREADS", threads)
        return least_squares.solve_least_squares(X, y, block_rows=256)  # 20 blocks, the last of 136 rows

    one, several = solve(1), solve(3)
    assert one.weight.numpy().tobytes() == several.weight.numpy().tobytes()
    assert float(one.bias) == float(several.bias) and one.mse == several.mse
    expected = np.linalg.lstsq(np.column_stack([X, np.ones(len(X))]), y, rcond=None)[0]
    np.testing.assert_allclose(one.weight.numpy(), expected[:4], rtol=1e-9)


@pytest.mark.parametrize(
    "arch",
    [
        {"kind": "linear", "n_features": 9, "solver": "adam"},
        {"kind": "mlp", "n_features": 9, "hidden": [7], "activation": "tanh"},
        {"kind": "mlp", "n_features": 9, "hidden": [6, 5], "activation": "relu"},
    ],
    ids=lambda arch: f"{arch['kind']}-{arch.get('hidden')}",
)
def test_the_minibatch_trainer_on_category_codes_takes_the_steps_it_takes_on_the_one_hot_matrix(arch):
    """A compact split (2 numbers, one-hot blocks of 4 and 3 held as codes) trains as its expanded matrix does,
    up to float64 rounding, and the model predicts the same from either form, a row of no category included."""
    rng = np.random.default_rng(4)
    codes = np.stack([rng.integers(0, 4, 80), rng.integers(0, 3, 80)], axis=1).astype(np.int32)
    encoded = Encoded(rng.normal(size=(80, 2)), codes, (4, 3))
    y = torch.from_numpy(rng.normal(size=80))
    compact = models.compact_rows(encoded, None, torch.float64)
    dense = torch.from_numpy(np.asarray(encoded))

    def run(X):
        torch.manual_seed(5)
        model = models.build_model({**arch, "dtype": "float64"})
        trainer = training.MinibatchTrainer(model, 0.03, 0.0, compact=isinstance(X, models.CompactRows))
        losses = [
            float(trainer.step(X[rows], y[rows]))
            for step in range(100)
            for rows in [slice(step % 8 * 10, step % 8 * 10 + 10)]
        ]
        trainer.release()
        return model, losses

    (ours, our_losses), (theirs, their_losses) = run(compact), run(dense)
    assert np.allclose(our_losses, their_losses, rtol=1e-9, atol=1e-12)
    for mine, expected in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.allclose(mine, expected, rtol=1e-9, atol=1e-12) and mine.is_contiguous()
    encoded.codes[0, 1] = -1  # a category neither kept nor grouped: no feature of the block is 1
    with torch.no_grad():
        assert torch.allclose(models.forward(ours, models.compact_rows(encoded, None, torch.float64)),
                              ours(torch.from_numpy(np.asarray(encoded))), rtol=1e-12, atol=1e-12)  # fmt: skip
