"""The Adam trainer (stages/adam.py): its written-out backward pass and fused update against autograd and
torch.optim.AdamW, on dense rows and on a compact split's codes, full batch or minibatches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stages import models
from stages.adam import AdamTrainer
from stages.prepared import Encoded


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
@pytest.mark.parametrize("full_batch", [False, True], ids=["minibatches", "full batch"])
def test_the_trainer_follows_autograd_and_torch_adamw(arch, weight_decay, full_batch):
    """The written-out backward pass and flat Adam take the steps autograd and torch.optim.AdamW take, up to
    float64 rounding, on the parameters the model holds (and saves) afterwards: on batches of 10 of the 60
    rows, or every row at each step (full batch)."""

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
            for rows in [slice(0, 60) if full_batch else slice(step % 6 * 10, step % 6 * 10 + 10)]
        ]
        return model, losses

    trainer: AdamTrainer | None = None

    def ours(model, X, y):
        nonlocal trainer
        if trainer is None or trainer.model is not model:
            trainer = AdamTrainer(model, 0.03, weight_decay)
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
    trainer.unflatten()
    reference, their_losses = run(theirs)
    assert np.allclose(our_losses, their_losses, rtol=1e-9, atol=1e-12)
    for mine, expected in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.allclose(mine, expected, rtol=1e-9, atol=1e-12)
        assert mine.untyped_storage().nbytes() == mine.numel() * mine.element_size()  # its own storage again


@pytest.mark.parametrize(
    "arch",
    [
        {"kind": "linear", "n_features": 9, "solver": "adam"},
        {"kind": "mlp", "n_features": 9, "hidden": [7], "activation": "tanh"},
        {"kind": "mlp", "n_features": 9, "hidden": [6, 5], "activation": "relu"},
    ],
    ids=lambda arch: f"{arch['kind']}-{arch.get('hidden')}",
)
def test_the_trainer_on_category_codes_takes_the_steps_it_takes_on_the_one_hot_matrix(arch):
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
        trainer = AdamTrainer(model, 0.03, 0.0, compact=isinstance(X, models.CompactRows))
        losses = [
            float(trainer.step(X[rows], y[rows]))
            for step in range(100)
            for rows in [slice(step % 8 * 10, step % 8 * 10 + 10)]
        ]
        trainer.unflatten()
        return model, losses

    (ours, our_losses), (theirs, their_losses) = run(compact), run(dense)
    assert np.allclose(our_losses, their_losses, rtol=1e-9, atol=1e-12)
    for mine, expected in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.allclose(mine, expected, rtol=1e-9, atol=1e-12) and mine.is_contiguous()
    encoded.codes[0, 1] = -1  # a category neither kept nor grouped: no feature of the block is 1
    with torch.no_grad():
        assert torch.allclose(models.forward(ours, models.compact_rows(encoded, None, torch.float64)),
                              ours(torch.from_numpy(np.asarray(encoded))), rtol=1e-12, atol=1e-12)  # fmt: skip


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
