"""The ten seed points, ways to train a model on them, and a split of any CSV as `prepare` makes it,
shared by the unit tests of models, training, train and evaluate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from stages import models, training
from stages.params import DataParams, ModelSpec, TrainParams
from stages.prepare import stream_split
from stages.prepared import Split, read_split

X_SEED = np.arange(1.0, 11.0).reshape(-1, 1)
Y_SEED = np.array([3, 5, 5, 6, 7, 7, 8, 9, 9, 10], dtype=np.float64)
LINEAR = ModelSpec(name="linear", kind="linear", lr=0.07, epochs=1000)
MLP = ModelSpec(name="mlp", kind="mlp", lr=0.01, epochs=1000, hidden=(10,), activation="tanh")


def least_squares_mse(X, y):
    A = np.column_stack([X, np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(np.mean((A @ coef - y) ** 2)), coef


def train_on(spec: ModelSpec, X=X_SEED, y=Y_SEED, seed=0, dtype="float32", validation=None):
    """A model of `spec` fitted by training.fit on these rows (unscaled), on the CPU: (model, log)."""
    torch.manual_seed(seed)
    arch = models.architecture(spec, X.shape[1], dtype)
    model = models.build_model(arch)
    names = tuple(f"x{j}" for j in range(X.shape[1]))
    rows = training.Rows(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), None, names, "y", validation)
    log, _ = training.fit(model, spec, rows, arch["dtype"], "cpu", seed)
    return model, log


def split_from_csv(data: DataParams) -> Split:
    """The split `prepare` writes for these data params (a table of plain numbers), read into memory."""
    with tempfile.TemporaryDirectory() as folder:
        stream_split(data, Path(folder))
        return read_split(folder)


def fit_quietly(spec: ModelSpec, split: Split, settings: TrainParams | None = None):
    """train's fit_model on the CPU without its log lines."""
    from stages.train import fit_model

    return fit_model(spec, settings or TrainParams(), split, "cpu", say=lambda line: None)
