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
        weight, bias = solve_least_squares(X.double(), y.double())
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.copy_(bias)
            loss = float(torch.mean((model(X) - y) ** 2))
        on_epoch(1, loss)
        return TrainingLog([loss])
    if spec.kind == "linear" and spec.solver == "lbfgs":
        return fit_lbfgs(model, X, y, spec, on_epoch)
    return fit(model, X, y, spec, seed, on_epoch)


def solve_least_squares(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w, b minimising |X w + b - y|^2, in float64, by SVD (LAPACK gelsd): never the normal equations.

    Columns are centred and scaled to unit norm first (and y centred), which removes the intercept
    column and balances the matrix the SVD sees (NIST Longley: 13 correct digits, against 11 for the raw
    matrix with a column of ones). The result is mapped back: it is the same least-squares problem.
    """
    X_mean, y_mean = X.mean(dim=0), y.mean()
    centred = X - X_mean
    norms = torch.linalg.vector_norm(centred, dim=0)
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))  # a constant column gets weight 0
    solution = torch.linalg.lstsq(centred / norms, (y - y_mean).unsqueeze(1), driver="gelsd").solution
    weight = solution.squeeze(1) / norms
    return weight, (y_mean - X_mean @ weight).reshape(1)


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
        _check_finite(spec, value, step=epoch, epoch=epoch)
        losses.append(value)
        on_epoch(epoch, value)
    with torch.no_grad():
        final = float(loss_fn(model(X), y))
    _check_finite(spec, final, step=spec.epochs, epoch=spec.epochs)
    losses[-1] = final
    _check_growth(spec, losses)
    return TrainingLog(losses)


def _check_finite(spec: ModelSpec, value: float, step: int, epoch: int) -> None:
    if not np.isfinite(value):
        raise UserError(
            f"models.{spec.name}: training diverged at step {step} (epoch {epoch}, loss {value}); "
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

    Raises UserError at the first step whose loss is not finite, or at the end if the loss grew
    more than DIVERGED_GROWTH-fold over training.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loss_fn = nn.MSELoss()
    n_rows = len(y)
    batch = spec.batch_size if 0 < spec.batch_size < n_rows else 0
    shuffle = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    step = 0
    model.train()
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(n_rows, generator=shuffle) if batch else None
        total = 0.0
        for start in range(0, n_rows, batch or n_rows):
            if order is None:
                X_batch, y_batch = X, y
            else:
                rows = order[start : start + batch]
                X_batch, y_batch = X[rows], y[rows]
            step += 1
            optimizer.zero_grad()
            loss = loss_fn(model(X_batch), y_batch)
            value = loss.item()
            _check_finite(spec, value, step, epoch)
            loss.backward()
            optimizer.step()
            total += value * len(y_batch)
        losses.append(total / n_rows)
        on_epoch(epoch, losses[-1])
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise UserError(
            f"models.{spec.name}: training diverged at step {step} (the weights are no longer finite); "
            f"lower models.{spec.name}.lr (now {spec.lr:g})"
        )
    _check_growth(spec, losses)
    return TrainingLog(losses)


def predict(model: nn.Module, X: np.ndarray, scaling: Scaling | None) -> np.ndarray:
    """Predictions in original units, float64, for raw (unscaled) features."""
    if scaling is not None:
        X = (X - np.asarray(scaling.x_mean)) / np.asarray(scaling.x_std)
    dtype = next(model.parameters()).dtype
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(X, dtype=dtype)).double().numpy()
    if scaling is not None:
        out = out * scaling.y_std + scaling.y_mean
    return out


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
