"""Training: one entry point (fit) that fits a model by the method its spec names (exact least squares,
stages/least_squares.py; L-BFGS; Adam, through the trainer of stages/adam.py), the epoch loop with early
stopping, and the divergence checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stages import batches
from stages.adam import AdamTrainer
from stages.errors import UserError
from stages.least_squares import LeastSquares, solve_least_squares
from stages.models import (
    CompactRows,
    forward,
    lost_columns,
    model_inputs,
    scaled_target,
    set_linear_coefficients,
)
from stages.params import ModelSpec
from stages.prepared import Encoded, Scaling

# A run whose last epoch's loss is this many times its first has blown up, even if no value overflowed
# (Adam's bounded steps keep the loss finite at lr = 1e12, but the model is garbage).
DIVERGED_GROWTH = 10.0


def describe_training(spec: ModelSpec, n_rows: int) -> str:
    """The log's words for how `spec` trains on `n_rows` rows (those it fits on, validation rows apart)."""
    if spec.method == "exact":
        return "exact least squares"
    if spec.method == "lbfgs":
        how = f"L-BFGS lr {spec.lr:g}, {spec.epochs} epochs"
    elif 0 < spec.batch_size < n_rows:
        steps = -(-n_rows // spec.batch_size)
        how = f"Adam lr {spec.lr:g}, minibatches of {spec.batch_size} ({steps} steps/epoch), {spec.epochs} epochs"
    else:
        how = f"Adam lr {spec.lr:g}, full batch, {spec.epochs} epochs"
    if spec.weight_decay:
        how += f", weight decay {spec.weight_decay:g}"
    if spec.early_stopping:
        how += f", early stopping (patience {spec.early_stopping.patience})"
    return how


@dataclass(frozen=True)
class TrainingLog:
    """Mean training loss of each epoch (in scaled units when scaling is on); with early stopping, the
    validation loss after each epoch and the epoch whose weights were kept."""

    losses: list[float]
    validation_losses: list[float] | None = None
    best_epoch: int | None = None


class EarlyStopper:
    """Measures the loss on held-out rows after every epoch and keeps a copy of the weights of the best one;
    says stop once `patience` epochs have passed without a lower loss."""

    def __init__(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, patience: int) -> None:
        self.model, self.X, self.y, self.patience = model, X, y, patience
        self.losses: list[float] = []
        self.best, self.best_epoch, self.best_state = float("inf"), 0, None

    def observe(self, epoch: int) -> float:
        with torch.no_grad():
            value = float(nn.functional.mse_loss(forward(self.model, self.X), self.y))
        self.losses.append(value)
        if value < self.best:
            self.best, self.best_epoch = value, epoch
            self.best_state = {key: tensor.detach().clone() for key, tensor in self.model.state_dict().items()}
        return value

    def should_stop(self, epoch: int) -> bool:
        return epoch - self.best_epoch >= self.patience

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def _end_epoch(epoch: int, value: float, losses: list[float], on_epoch, stopper: EarlyStopper | None) -> bool:
    """Record an epoch's training loss (and its validation loss); True when early stopping says stop."""
    losses.append(value)
    if stopper is None:
        on_epoch(epoch, value)
        return False
    on_epoch(epoch, value, stopper.observe(epoch))
    return stopper.should_stop(epoch)


def _log(losses: list[float], stopper: EarlyStopper | None) -> TrainingLog:
    if stopper is None:
        return TrainingLog(losses)
    stopper.restore_best()
    return TrainingLog(losses, stopper.losses, stopper.best_epoch)


@dataclass(frozen=True)
class Rows:
    """The rows a model fits on, as prepared: features (a mapped array, or prepared.Encoded) and target in
    original units, the split's scaling and names (for messages), and with early stopping the rows held out
    for validation. `first_row`: a row every distributed worker reads (the exact solver's shift)."""

    X: np.ndarray | Encoded
    y: np.ndarray
    scaling: Scaling | None
    features: tuple[str, ...]
    target: str
    validation: tuple[np.ndarray | Encoded, np.ndarray] | None = None
    first_row: np.ndarray | None = None


def fit(
    model: nn.Module,
    spec: ModelSpec,
    rows: Rows,
    dtype: str,
    device,
    seed: int,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    collective=None,
) -> tuple[TrainingLog, float | None]:
    """Fit `model` in place with the method its spec names (exact least squares, L-BFGS or Adam) on `rows`;
    with spec.early_stopping, while watching the loss on rows.validation, ending with the best weights.
    With train.distributed, the rows are this worker's share and `collective` sums over the workers.
    Returns the log and, for a linear model, the least-squares MSE of these rows (float64, original units:
    the reference of evaluate's optimality gap)."""
    if spec.method == "exact":  # straight from the mapped float64 rows in blocks: no tensor of the table
        log, solution = fit_exact(model, rows.X, rows.y, rows.scaling, on_epoch, collective, rows.first_row)
        return log, solution.mse
    least_squares = None
    if spec.kind == "linear":
        least_squares = solve_least_squares(rows.X, rows.y, collective=collective, first_row=rows.first_row).mse
    torch_dtype = getattr(torch, dtype)
    # A compact split trains on its codes (models.CompactRows) where Adam takes batches of it
    compact = spec.method == "adam"
    X = model_inputs(rows.X, rows.scaling, torch_dtype, compact)
    y = scaled_target(rows.y, rows.scaling, torch_dtype)
    _check_representable(X, y, rows, dtype)
    X, y = X.to(device), y.to(device)
    model.to(device)
    stopper = None
    if spec.early_stopping:
        X_valid, y_valid = rows.validation
        validation = (model_inputs(X_valid, rows.scaling, torch_dtype, compact).to(device),
                      scaled_target(y_valid, rows.scaling, torch_dtype).to(device))  # fmt: skip
        stopper = EarlyStopper(model, *validation, spec.early_stopping.patience)
    if spec.method == "lbfgs":
        log = fit_lbfgs(model, X, y, spec, on_epoch, stopper, collective)
    else:
        log = fit_adam(model, X, y, spec, seed, on_epoch, stopper, collective)
    model.cpu()
    return log, least_squares


def _check_representable(X, y, rows: Rows, dtype: str) -> None:
    """Refuse training data that the conversion to `dtype` ruined (float32 holds magnitudes up to ~3.4e38
    and about 7 significant digits), rather than training on infinities or on a column turned constant."""
    for values, original, names in ((X, rows.X, rows.features), (y, rows.y, (rows.target,))):
        lost = lost_columns(values, original)
        if lost:
            column = np.asarray(original[:, lost[0]] if original.ndim == 2 else original)
            scaled = " after scaling" if rows.scaling else ""
            raise UserError(
                f"data: column {names[lost[0]]!r} (from {column.min():g} to {column.max():g}) does not fit in "
                f"{dtype}{scaled}; set data.standardize: true, or train.dtype: float64"
            )


def fit_exact(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    scaling: Scaling | None,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
    collective=None,
    first_row=None,
) -> tuple[TrainingLog, LeastSquares]:
    """Least squares on the raw rows (float64, read block by block, so X may be a mapped file and no
    tensor of the table is ever made), put into the model in its units. The loss logged is the least
    mean squared error itself, in the model's units."""
    solution = solve_least_squares(X, y, collective=collective, first_row=first_row)
    set_linear_coefficients(model, solution.weight.numpy(), float(solution.bias), scaling)
    loss = solution.mse if scaling is None else solution.mse / scaling.y_std**2
    on_epoch(1, loss)
    return TrainingLog([loss]), solution


def fit_lbfgs(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    stopper: EarlyStopper | None = None,
    collective=None,
) -> TrainingLog:
    """torch.optim.LBFGS with a strong-Wolfe line search; one epoch is one optimizer.step (<= 20 iterations).
    With train.distributed every loss and gradient the optimizer sees is the mean over the workers' equal
    shards (the whole rows' mean), so every worker takes the same steps."""
    optimizer = torch.optim.LBFGS(model.parameters(), lr=spec.lr, max_iter=20, line_search_fn="strong_wolfe")
    loss_fn = nn.MSELoss()
    losses: list[float] = []
    model.train()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        if collective is None:
            return loss
        for p in model.parameters():
            collective.mean_(p.grad)
        return collective.mean_(loss.detach().clone())

    for epoch in range(1, spec.epochs + 1):
        value = optimizer.step(closure).item()
        _check_finite(spec, value, f"in epoch {epoch}")
        if _end_epoch(epoch, value, losses, on_epoch, stopper):
            break
    if stopper is None:  # the step returns the loss before its last update: the epoch's final one instead
        with torch.no_grad():
            final = loss_fn(model(X), y)
        final = float(final if collective is None else collective.mean_(final))
        _check_finite(spec, final, f"in epoch {spec.epochs}")
        losses[-1] = final
    _check_growth(spec, losses)
    return _log(losses, stopper)


def _check_finite(spec: ModelSpec, value: float, where: str) -> None:
    if not np.isfinite(value):
        raise UserError(
            f"models.{spec.name}: training diverged {where}, loss {value}; "
            f"lower models.{spec.name}.lr (now {spec.lr:g}) or set data.standardize: true"
        )


def _check_growth(spec: ModelSpec, losses: list[float]) -> None:
    # An MLP: the largest epoch's loss, not the last: a blown-up MLP can come back down to a flat loss with
    # every unit saturated (lr 1e12 on the seed data: 5e19 at epoch 100, then 51.9 for good), still garbage.
    # A linear model's problem is convex: one that overshot and came back has converged.
    worst = int(np.argmax(losses)) if spec.kind == "mlp" else len(losses) - 1
    if losses[worst] > DIVERGED_GROWTH * losses[0]:
        raise UserError(
            f"models.{spec.name}: training diverged: the loss grew from {losses[0]:.4g} in epoch 1 to "
            f"{losses[worst]:.4g} in epoch {worst + 1}; lower models.{spec.name}.lr (now {spec.lr:g})"
        )


def minibatch_rows(spec: ModelSpec, n_rows: int) -> int:
    """Rows per Adam step on `n_rows` rows (all the workers'): spec.batch_size, or 0 for full batch."""
    return spec.batch_size if spec.method == "adam" and 0 < spec.batch_size < n_rows else 0


def fit_adam(
    model: nn.Module,
    X: torch.Tensor | CompactRows,
    y: torch.Tensor,
    spec: ModelSpec,
    seed: int,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    stopper: EarlyStopper | None = None,
    collective=None,
) -> TrainingLog:
    """Adam on the mean squared error (decoupled weight decay as torch.optim.AdamW), one loop for every case:
    full batch (one step over every row, in order) unless spec.batch_size is smaller than the rows, and
    one process or train.distributed's workers (`collective`: X and y are this worker's shard, every
    worker holding as many rows).

    Minibatches follow one process's order whatever the workers: every epoch draws one permutation of all
    the rows from a generator seeded by `seed`, each batch is a slice of it, each worker steps on the rows
    of the batch in its shard, and the workers' gradients of the summed squared error are summed and
    divided by the batch's size: each step's gradient is one process's over the same rows, up to the order
    of the sums. The epoch's loss is summed on the device and read once per epoch. Raises UserError when
    the loss stops being finite (at that step, full batch; at the end of that epoch, minibatches), or if
    it grew more than DIVERGED_GROWTH-fold.
    """
    n_rows = len(y)
    world, rank = (1, 0) if collective is None else (collective.world, collective.rank)
    total_rows = n_rows * world
    batch = minibatch_rows(spec, total_rows) or total_rows
    shuffle = torch.Generator().manual_seed(seed)
    trainer = AdamTrainer(model, spec.lr, spec.weight_decay, None if collective is None else collective.sum_,
                          compact=isinstance(X, CompactRows))  # fmt: skip
    losses: list[float] = []
    model.train()
    try:
        for epoch in range(1, spec.epochs + 1):
            if batch == total_rows:
                total, where = trainer.step(X, y, total_rows), f"at step {epoch}"
            else:
                total, where = torch.zeros((), dtype=X.dtype, device=X.device), f"in epoch {epoch}"
                order = batches.minibatches(total_rows, total_rows, shuffle)[0]  # the whole permutation
                local, counts, sizes = batches.shard_batches(order, rank, n_rows, batch)
                step = batches.GATHER_BATCHES
                groups = [range(k, min(k + step, len(counts))) for k in range(0, len(counts), step)]
                bounds = np.cumsum([0, *counts])
                chunks = tuple(local[bounds[g.start] : bounds[g.stop]].to(X.device) for g in groups)
                # one process gathers the next chunk on a second thread; workers already keep the cores busy
                rows = batches.gathered(X, y, chunks, ahead=collective is None)
                for group, (X_rows, y_rows) in zip(groups, rows, strict=True):
                    offset = 0
                    for k in group:
                        total += trainer.step(X_rows[offset : offset + counts[k]], y_rows[offset : offset + counts[k]],
                                              sizes[k])  # fmt: skip
                        offset += counts[k]
            value = ((total if collective is None else collective.sum_(total)) / total_rows).item()
            _check_finite(spec, value, where)
            if _end_epoch(epoch, value, losses, on_epoch, stopper):
                break
    finally:
        trainer.unflatten()
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        _check_finite(spec, float("nan"), f"in epoch {len(losses)} (the weights are no longer finite)")
    _check_growth(spec, losses)
    return _log(losses, stopper)
