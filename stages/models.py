"""The two regressors, their training loop, and saving/loading them. The only core module that imports torch."""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stages.data import Scaling
from stages.errors import UserError
from stages.params import ModelSpec

MODEL_FORMAT = 1
# A run whose last epoch's loss is this many times its first has blown up, even if no value overflowed
# (Adam's bounded steps keep the loss finite at lr = 1e12, but the model is garbage).
DIVERGED_GROWTH = 10.0
# Rows per block wherever a whole-table temporary would double the memory (scaling, prediction, QR).
BLOCK_ROWS = 65536
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class LinearRegressor(nn.Module):
    """y = X w + b, with w and b drawn from torch.randn as in the reference program."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features))
        self.bias = nn.Parameter(torch.randn(1))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.weight + self.bias


class MLPRegressor(nn.Module):
    """Linear(n_features, h1) -> act -> ... -> Linear(hk, 1)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], activation: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATION_LAYERS[activation]()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.layers(X).squeeze(-1)


def architecture(spec: ModelSpec, n_features: int, dtype: str) -> dict:
    """Plain description of the network, enough to rebuild it before loading its weights.

    The exact solver works in float64 and keeps its coefficients in float64 whatever `dtype` says.
    """
    exact = spec.kind == "linear" and spec.solver == "exact"
    arch: dict = {"kind": spec.kind, "n_features": n_features, "dtype": "float64" if exact else dtype}
    if spec.kind == "mlp":
        arch.update(hidden=list(spec.hidden), activation=spec.activation)
    else:
        arch.update(solver=spec.solver)
    return arch


def build_model(arch: dict) -> nn.Module:
    """A freshly initialised model (draws from torch's generator) in the architecture's dtype."""
    if arch["kind"] == "linear":
        model: nn.Module = LinearRegressor(arch["n_features"])
    else:
        model = MLPRegressor(arch["n_features"], tuple(arch["hidden"]), arch["activation"])
    return model.to(getattr(torch, arch.get("dtype", "float32")))


@dataclass(frozen=True)
class TrainingLog:
    """Mean training loss of each epoch (in scaled units when scaling is on)."""

    losses: list[float]


def train_model(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    seed: int,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> TrainingLog:
    """Fit `model` in place with the solver its spec names."""
    if spec.kind == "linear" and spec.solver == "exact":
        solution = solve_least_squares(X.double().cpu().numpy(), y.double().cpu().numpy())
        with torch.no_grad():
            model.weight.copy_(solution.weight)
            model.bias.copy_(solution.bias)
            loss = float(torch.mean((model(X) - y) ** 2))
        on_epoch(1, loss)
        return TrainingLog([loss])
    if spec.kind == "linear" and spec.solver == "lbfgs":
        return fit_lbfgs(model, X, y, spec, on_epoch)
    return fit(model, X, y, spec, seed, on_epoch)


@dataclass(frozen=True)
class LeastSquares:
    weight: torch.Tensor  # (n_features,) float64
    bias: torch.Tensor  # (1,) float64
    mse: float  # the smallest mean squared error any y = X w + b reaches on these rows


def solve_least_squares(X: np.ndarray, y: np.ndarray, block_rows: int = BLOCK_ROWS) -> LeastSquares:
    """Least squares y ~ X w + b in float64 by a streaming Householder QR; never the normal equations.

    Columns are centred and scaled to unit norm (which removes the intercept column and balances the
    matrix: NIST Longley gets 13 correct digits), then [X | y] is reduced block by block to its small
    triangular factor R (torch.linalg.qr), so memory stays at one block of rows whatever the row count
    and the rows are read in one pass after the column statistics. The small system R w = Q'y is solved by
    SVD (gelsd), which also copes with collinear or constant columns.
    """
    n_rows, n_features = X.shape
    X_mean, y_mean = np.mean(X, axis=0, dtype=np.float64), float(np.mean(y, dtype=np.float64))
    squares = np.zeros(n_features)
    for start in range(0, n_rows, block_rows):
        squares += np.sum((X[start : start + block_rows] - X_mean) ** 2, axis=0)
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0  # a constant column gets weight 0
    R = torch.zeros(0, n_features + 1, dtype=torch.float64)
    for start in range(0, n_rows, block_rows):
        block = np.empty((min(block_rows, n_rows - start), n_features + 1))
        block[:, :n_features] = (X[start : start + block_rows] - X_mean) / norms
        block[:, n_features] = y[start : start + block_rows] - y_mean
        R = torch.linalg.qr(torch.cat([R, torch.from_numpy(block)]), mode="r").R
    R11, r = R[:, :n_features], R[:, n_features:]
    solution = torch.linalg.lstsq(R11, r, driver="gelsd").solution
    residual = float(torch.sum((R11 @ solution - r) ** 2))  # includes R[p, p]^2 when R is square
    weight = solution.squeeze(1).numpy() / norms
    return LeastSquares(torch.from_numpy(weight), torch.tensor([y_mean - float(X_mean @ weight)], dtype=torch.float64), residual / n_rows)


def fit_lbfgs(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> TrainingLog:
    """torch.optim.LBFGS with a strong-Wolfe line search; one epoch is one optimizer.step (<= 20 iterations)."""
    optimizer = torch.optim.LBFGS(model.parameters(), lr=spec.lr, max_iter=20, line_search_fn="strong_wolfe")
    loss_fn = nn.MSELoss()
    losses: list[float] = []
    model.train()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        return loss

    for epoch in range(1, spec.epochs + 1):
        value = optimizer.step(closure).item()
        _check_finite(spec, value, f"in epoch {epoch}")
        losses.append(value)
        on_epoch(epoch, value)
    with torch.no_grad():
        final = float(loss_fn(model(X), y))
    _check_finite(spec, final, f"in epoch {spec.epochs}")
    losses[-1] = final
    _check_growth(spec, losses)
    return TrainingLog(losses)


def minibatches(n_rows: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
    """One epoch's batches of row indices: slices of a fresh permutation drawn from `generator` (on the
    CPU, so the order is the same on every device), each row exactly once."""
    return torch.randperm(n_rows, generator=generator).to(device).split(batch_size)


def _check_finite(spec: ModelSpec, value: float, where: str) -> None:
    if not np.isfinite(value):
        raise UserError(
            f"models.{spec.name}: training diverged {where}, loss {value}; "
            f"lower models.{spec.name}.lr (now {spec.lr:g}) or set data.standardize: true"
        )


def _check_growth(spec: ModelSpec, losses: list[float]) -> None:
    if losses[-1] > DIVERGED_GROWTH * losses[0]:
        raise UserError(
            f"models.{spec.name}: training diverged: the loss grew from {losses[0]:.4g} in epoch 1 to "
            f"{losses[-1]:.4g} in epoch {len(losses)}; lower models.{spec.name}.lr (now {spec.lr:g})"
        )


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    seed: int,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> TrainingLog:
    """Adam on the mean squared error; full batch unless spec.batch_size > 0 (shuffled minibatches, MLP).

    Minibatches: every epoch draws one permutation of the rows from a generator seeded by `seed`, and
    the batches are slices of it, so each row is used exactly once per epoch and the order is the same on
    every run and device. The loop body is the step itself; the epoch's loss is summed on the device and
    read once per epoch. Raises UserError when the loss stops being finite (at that step when training
    full batch, at the end of that epoch otherwise), or if it grew more than DIVERGED_GROWTH-fold.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loss_fn = nn.MSELoss()
    n_rows = len(y)
    batch = spec.batch_size if 0 < spec.batch_size < n_rows else 0
    losses: list[float] = []
    model.train()
    if not batch:
        for epoch in range(1, spec.epochs + 1):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X), y)
            value = loss.item()
            _check_finite(spec, value, f"at step {epoch}")
            loss.backward()
            optimizer.step()
            losses.append(value)
            on_epoch(epoch, value)
    else:
        shuffle = torch.Generator().manual_seed(seed)
        for epoch in range(1, spec.epochs + 1):
            total = torch.zeros((), dtype=X.dtype, device=X.device)
            for rows in minibatches(n_rows, batch, shuffle, X.device):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(X[rows]), y[rows])
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(rows)
            value = (total / n_rows).item()
            _check_finite(spec, value, f"in epoch {epoch}")
            losses.append(value)
            on_epoch(epoch, value)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        _check_finite(spec, float("nan"), f"in epoch {spec.epochs} (the weights are no longer finite)")
    _check_growth(spec, losses)
    return TrainingLog(losses)


def resolve_device(choice: str) -> torch.device:
    """train.device: auto (CUDA when present), cpu, or cuda (an error when there is none)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("params.yaml: train.device is cuda, but torch sees no CUDA device here; use auto or cpu")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def scaled_tensor(X: np.ndarray, scaling: Scaling | None, dtype: torch.dtype) -> torch.Tensor:
    """Features as a new tensor of `dtype`, scaled in float64 block by block (no full-size temporary)."""
    out = torch.empty(X.shape, dtype=dtype)
    for start in range(0, len(X), BLOCK_ROWS):
        block = np.array(X[start : start + BLOCK_ROWS], dtype=np.float64)  # writable, unlike a mapped file
        if scaling is not None:
            block = (block - np.asarray(scaling.x_mean)) / np.asarray(scaling.x_std)
        out[start : start + BLOCK_ROWS] = torch.from_numpy(block)
    return out


def scaled_target(y: np.ndarray, scaling: Scaling | None, dtype: torch.dtype) -> torch.Tensor:
    y = np.asarray(y, dtype=np.float64)
    if scaling is not None:
        y = (y - scaling.y_mean) / scaling.y_std
    return torch.tensor(y, dtype=dtype)


def describe_training(spec: ModelSpec, n_rows: int) -> str:
    if spec.kind == "linear" and spec.solver == "exact":
        return "exact least squares"
    if spec.kind == "linear" and spec.solver == "lbfgs":
        return f"L-BFGS lr {spec.lr:g}, {spec.epochs} epochs"
    if 0 < spec.batch_size < n_rows:
        steps = -(-n_rows // spec.batch_size)
        return f"Adam lr {spec.lr:g}, minibatches of {spec.batch_size} ({steps} steps/epoch), {spec.epochs} epochs"
    return f"Adam lr {spec.lr:g}, full batch, {spec.epochs} epochs"


def predict(model: nn.Module, X: np.ndarray, scaling: Scaling | None) -> np.ndarray:
    """Predictions in original units, float64, for raw (unscaled) features; memory bounded by blocks."""
    dtype = next(model.parameters()).dtype
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), BLOCK_ROWS):
        block = scaled_tensor(X[start : start + BLOCK_ROWS], scaling, dtype)
        out[start : start + BLOCK_ROWS] = model_outputs(model, block)
    return unscale_target(out, scaling)


def model_outputs(model: nn.Module, X: torch.Tensor) -> np.ndarray:
    """The model's outputs (scaled units) as float64, computed in the same row blocks as `predict`, so
    predictions from the training tensor equal those `predict` makes from the raw rows."""
    out = np.empty(len(X), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(X), BLOCK_ROWS):
            out[start : start + BLOCK_ROWS] = model(X[start : start + BLOCK_ROWS]).double().cpu().numpy()
    return out


def unscale_target(values: np.ndarray, scaling: Scaling | None) -> np.ndarray:
    return values if scaling is None else values * scaling.y_std + scaling.y_mean


def linear_coefficients(model: LinearRegressor, features: tuple[str, ...], scaling: Scaling | None) -> dict:
    """w per feature and the intercept b, converted back to original units."""
    w = model.weight.detach().double().numpy()
    b = float(model.bias.detach().double().item())
    if scaling is not None:
        x_std = np.asarray(scaling.x_std)
        w_scaled = w / x_std
        b = scaling.y_mean + scaling.y_std * (b - float(np.dot(w_scaled, scaling.x_mean)))
        w = scaling.y_std * w_scaled
    coefficients = {name: float(value) for name, value in zip(features, w)}
    coefficients["(intercept)" if "intercept" in coefficients else "intercept"] = b
    return coefficients


def layer_summary(model: nn.Module, n_features: int) -> list[dict]:
    """One row per layer: name, output shape for a batch of any size (-1), trainable parameters."""
    if isinstance(model, LinearRegressor):
        return [{"layer": "Linear (y = Xw + b)", "output_shape": [-1], "params": n_features + 1}]
    rows = []
    out = torch.zeros(1, n_features, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        for index, layer in enumerate(model.layers, start=1):
            out = layer(out)
            rows.append(
                {
                    "layer": f"{type(layer).__name__}-{index}",
                    "output_shape": [-1, *out.shape[1:]],
                    "params": sum(p.numel() for p in layer.parameters()),
                }
            )
    return rows


def format_summary(name: str, arch: dict, rows: list[dict]) -> str:
    """A torchsummary-like table: layers, output shapes, parameter counts."""
    detail = f"solver {arch['solver']}" if arch["kind"] == "linear" else f"activation {arch['activation']}"
    lines = [
        f"Model {name}: {arch['kind']}, {detail}, {arch['dtype']}",
        f"{'Layer (type)':<24}{'Output Shape':<16}{'Param #':>10}",
        "-" * 50,
    ]
    lines += [f"{r['layer']:<24}{str(r['output_shape']):<16}{r['params']:>10,}" for r in rows]
    lines += ["-" * 50, f"Total params: {sum(r['params'] for r in rows):,}", ""]
    return "\n".join(lines)


def model_bytes(model: nn.Module, meta: dict) -> bytes:
    """The .pt file: state_dict plus plain metadata, loadable with torch.load(..., weights_only=True).

    Serialised to memory so the archive's inner folder name does not depend on the file name.
    """
    buffer = io.BytesIO()
    torch.save({"format": MODEL_FORMAT, **meta, "state_dict": model.state_dict()}, buffer)
    return buffer.getvalue()


def load_model(path: str) -> tuple[nn.Module, dict]:
    """Rebuild a model the pipeline wrote; only tensors and plain data are unpickled."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: model file not found; run `dvc repro` first") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to replace
        raise UserError(f"{path}: not a model file written by this pipeline ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise UserError(f"{path}: not a model file written by this pipeline (format {MODEL_FORMAT} expected)")
    model = build_model(saved["architecture"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved
