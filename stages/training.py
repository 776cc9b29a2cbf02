"""Training: the solvers (Adam, L-BFGS, exact least squares through stages/least_squares.py), the minibatch
loop, divergence checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stages.errors import UserError
from stages.least_squares import LeastSquares, solve_least_squares
from stages.models import ACTIVATION_LAYERS, CompactRows, MLPRegressor, forward, one_ahead, set_linear_coefficients
from stages.params import ModelSpec
from stages.prepared import Scaling

# A run whose last epoch's loss is this many times its first has blown up, even if no value overflowed
# (Adam's bounded steps keep the loss finite at lr = 1e12, but the model is garbage).
DIVERGED_GROWTH = 10.0
# Minibatch training gathers the rows of this many batches at once.
GATHER_BATCHES = 64


def resolve_device(choice: str, source: str = "params.yaml") -> torch.device:
    """train.device: auto (CUDA when present), cpu, or cuda (an error, naming `source`, when there is none)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{source}: train.device is cuda, but torch sees no CUDA device here; use auto or cpu")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


# train.device: auto leaves a model on the CPU when a training step is too small for a GPU to win. Measured
# (10^7 rows, 8 features, 5 epochs): a GPU step costs about 1 ms whatever its size, in kernel launches
# (H200: 1.24 ms for an MLP [10] tanh at batch 1024, 0.81 ms for [256, 256] relu at 8192), while a CPU step
# (one thread) costs about 0.2 ms plus 4.2e-11 s per multiply-add of the step's forward pass (23.8 ms
# for [256, 256] at 8192: 5.6e8). They cross near 2e7 multiply-adds per step.
GPU_MIN_STEP_WORK = 2e7


def step_work(spec: ModelSpec, n_features: int, n_rows: int) -> int:
    """Multiply-adds of one training step's forward pass: rows per step times the weights of the layers."""
    widths = [n_features, *spec.hidden, 1] if spec.kind == "mlp" else [n_features, 1]
    batch = spec.batch_size if 0 < spec.batch_size < n_rows else n_rows
    return batch * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def choose_device(choice: str, spec: ModelSpec, n_features: int, n_rows: int, source: str = "params.yaml"):
    """(device, why): resolve_device, except that auto keeps a model whose steps are smaller than
    GPU_MIN_STEP_WORK (where a GPU would be slower) on the CPU; `why` says so, or is None."""
    device = resolve_device(choice, source)
    if choice == "auto" and device.type == "cuda" and spec.method != "exact":
        work = step_work(spec, n_features, n_rows)
        if work < GPU_MIN_STEP_WORK:
            return torch.device("cpu"), (
                f"train.device auto chose the CPU: a step of {work:,} multiply-adds is faster there than on "
                f"a GPU (from {GPU_MIN_STEP_WORK:,.0f}); set train.device: cuda to use the GPU anyway"
            )
    return device, None


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


def train_model(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    seed: int,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    collective=None,
) -> TrainingLog:
    """Fit `model` in place with the solver its spec names; with spec.early_stopping, on (X, y) while
    watching the loss on `validation` (rows held out of the training split), ending with the best weights.
    With train.distributed, (X, y) is this worker's shard and `collective` averages over the workers."""
    if spec.method == "exact":
        return fit_exact(model, X.double().cpu().numpy(), y.double().cpu().numpy(), None, on_epoch)[0]
    stopper = None
    if spec.early_stopping:
        if validation is None:
            raise ValueError("early stopping needs validation rows")
        stopper = EarlyStopper(model, *validation, spec.early_stopping.patience)
    if spec.method == "lbfgs":
        return fit_lbfgs(model, X, y, spec, on_epoch, stopper, collective)
    return fit(model, X, y, spec, seed, on_epoch, stopper, collective)


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


class Adam:
    """Adam (Kingma & Ba) with torch.optim.Adam's defaults and arithmetic, and with weight_decay > 0
    torch.optim.AdamW's, step for step bit-identical to them on the CPU (tests/unit/test_training.py
    checks), without torch.optim's machinery: constructing any
    torch.optim optimizer imports torch._dynamo, about a second per training stage, and its step() carries
    per-call bookkeeping that costs more than the arithmetic for small models."""

    def __init__(
        self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.beta1, self.beta2), self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [0] * len(self.params)  # per parameter, as torch counts: one without a gradient waits

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        # The order of operations is torch.optim.adam._single_tensor_adam's, so the rounding is too.
        for i, (p, exp_avg, exp_avg_sq) in enumerate(zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True)):
            if p.grad is None:
                continue
            self.steps[i] += 1
            if self.weight_decay:  # decoupled, before the moments: torch.optim.AdamW's order
                p.mul_(1 - self.lr * self.weight_decay)
            step_size = self.lr / (1 - self.beta1 ** self.steps[i])
            bias_correction2_sqrt = (1 - self.beta2 ** self.steps[i]) ** 0.5
            exp_avg.lerp_(p.grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
            p.addcdiv_(exp_avg, (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps), value=-step_size)


class MinibatchTrainer:
    """Adam (decoupled weight decay as AdamW) on minibatches for this project's two models, with the
    backward pass written out and every parameter a view of one flat buffer that torch's fused Adam kernel
    updates: a step is about 15 tensor operations instead of autograd's graph and an update per parameter,
    0.125 against 0.36 ms for an MLP 8 -> 10 -> 1 on 1024 rows (the step is launch-bound: its arithmetic is
    a few microseconds). The same mathematics as autograd and Adam, not the same rounding:
    tests/unit/test_training.py compares gradients and trajectories. Full-batch training keeps autograd
    and Adam above (its results are the committed ones)."""

    def __init__(
        self, model: nn.Module, lr: float, weight_decay: float, reduce: Callable | None = None, compact: bool = False
    ) -> None:
        self.model, self.lr, self.weight_decay = model, lr, weight_decay
        self.reduce = reduce  # train.distributed: sums the flat gradient over the workers, in place
        self.params = list(model.parameters())
        first = self.params[0]
        # For CompactRows (`compact`), the first weight (outputs, features) is kept transposed in the buffer,
        # (features, outputs) row-major, so that the rows of its one-hot features are contiguous: summed by
        # embedding_bag forwards and added into by index_add_ backwards.
        self.compact = compact
        stored = [
            p.detach().t() if compact and i == 0 and p.dim() == 2 else p.detach() for i, p in enumerate(self.params)
        ]
        self.flat = torch.cat([p.reshape(-1) for p in stored])
        self.grad = torch.zeros_like(self.flat)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        grads, offset = [], 0
        for i, p in enumerate(self.params):
            values, grad = self.flat[offset : offset + p.numel()], self.grad[offset : offset + p.numel()]
            if compact and i == 0:  # (features, outputs) views of the first weight and its gradient
                self.first_t, self.first_grad_t = values.view(len(stored[0]), -1), grad.view(len(stored[0]), -1)
                p.data, grad = self.first_t.t().view_as(p), self.first_grad_t.t().view_as(p)
            else:
                p.data, grad = values.view_as(p), grad.view_as(p)  # the model reads, Adam writes the buffer
            grads.append(grad)
            offset += p.numel()
        self.steps = 0
        # torch's fused Adam (AdamW with weight decay) kernel: the whole update in one call
        self.fused = torch._fused_adamw_ if weight_decay else torch._fused_adam_
        self.step_count = torch.zeros((), dtype=torch.float32, device=first.device)
        if isinstance(model, MLPRegressor):
            linears = [layer for layer in model.layers if isinstance(layer, nn.Linear)]
            self.layers = [(layer.weight, layer.bias) for layer in linears]
            self.layer_grads = [(grads[2 * i], grads[2 * i + 1]) for i in range(len(linears))]
            self.activation = next(
                (name for name, kind in ACTIVATION_LAYERS.items() for layer in model.layers if isinstance(layer, kind)),
                None,
            )
        else:
            self.layers, self.layer_grads, self.activation = None, grads, None

    def release(self) -> None:
        """Give every parameter its own storage again, row-major (as saved files and loaded models have)."""
        for p in self.params:
            p.data = p.data.clone(memory_format=torch.contiguous_format)

    @torch.no_grad()
    def step(self, X: torch.Tensor, y: torch.Tensor, batch_rows: int | None = None) -> torch.Tensor:
        """One Adam step on the rows (X, y); returns their summed squared error before the step (a tensor).
        With train.distributed, (X, y) are this worker's rows of a batch of `batch_rows` rows, and `reduce`
        sums the workers' gradients: the gradient of the whole batch's mean squared error."""
        scale = 2.0 / (len(y) if batch_rows is None else batch_rows)
        if self.compact:
            sse = self._compact_step(X, y, scale)
        elif self.layers is None:  # linear: y ~ X w + b
            weight, bias = self.params
            residual = torch.addmv(bias, X, weight).sub_(y)
            sse = residual.dot(residual)
            d = residual.mul_(scale)
            torch.mv(X.t(), d, out=self.layer_grads[0])
            torch.sum(d, 0, keepdim=True, out=self.layer_grads[1])
        else:
            inputs = [X]
            for weight, bias in self.layers[:-1]:
                inputs.append(_activate(torch.addmm(bias, inputs[-1], weight.t()), self.activation))
            weight, bias = self.layers[-1]
            residual = torch.addmm(bias, inputs[-1], weight.t()).sub_(y.unsqueeze(1))  # (rows, 1)
            sse = torch.mm(residual.t(), residual).view(())
            d = residual.mul_(scale)
            for i in range(len(self.layers) - 1, -1, -1):
                weight_grad, bias_grad = self.layer_grads[i]
                torch.mm(d.t(), inputs[i], out=weight_grad)
                torch.sum(d, 0, out=bias_grad)
                if i:
                    d = _activation_grad(torch.mm(d, self.layers[i][0]), inputs[i], self.activation)
        if self.reduce is not None:
            # One sum of the whole flat gradient over the workers (DistributedDataParallel's buckets, as one
            # bucket). One layer at a time, started while the next layer's gradient is computed, measured
            # slower on two cores: 2.5 against 2.05 s per epoch of the distributed benchmark.
            self.reduce(self.grad)
        self._adam()
        return sse

    def _compact_step(self, X: CompactRows, y: torch.Tensor, scale: float) -> torch.Tensor:
        """The step's forward and backward passes for CompactRows: the first layer from the dense features
        and the one-hot rows of its weight; the same gradient as for the dense one-hot rows."""
        n_dense, n_codes = X.dense.shape[1], X.codes.shape[1]
        bias = self.params[1]
        first = torch.addmm(bias, X.dense, self.first_t[:n_dense])  # (rows, outputs)
        if n_codes:
            first += nn.functional.embedding_bag(X.codes, self.first_t[n_dense:], mode="sum")
        if self.layers is None:  # linear: one output
            inputs, residual = [X], first.sub_(y.unsqueeze(1))
        else:
            inputs = [X, _activate(first, self.activation)]
            for weight, layer_bias in self.layers[1:-1]:
                inputs.append(_activate(torch.addmm(layer_bias, inputs[-1], weight.t()), self.activation))
            weight, layer_bias = self.layers[-1]
            residual = torch.addmm(layer_bias, inputs[-1], weight.t()).sub_(y.unsqueeze(1))
        sse = torch.mm(residual.t(), residual).view(())
        d = residual.mul_(scale)
        for i in range(len(inputs) - 1, 0, -1):
            weight_grad, bias_grad = self.layer_grads[i]
            torch.mm(d.t(), inputs[i], out=weight_grad)
            torch.sum(d, 0, out=bias_grad)
            d = _activation_grad(torch.mm(d, self.layers[i][0]), inputs[i], self.activation)
        torch.mm(X.dense.t(), d, out=self.first_grad_t[:n_dense])
        hot = self.first_grad_t[n_dense:]
        if n_codes and X.codes.device.type == "cpu":
            hot.zero_()
            hot.index_add_(0, X.codes.reshape(-1), d if n_codes == 1 else d.repeat_interleave(n_codes, 0))
        elif n_codes:  # CUDA's index_add_ adds in whatever order its threads come: the one-hot rows' product instead
            one_hot = torch.zeros(len(d), len(hot), dtype=d.dtype, device=d.device).scatter_(1, X.codes, 1.0)
            torch.mm(one_hot.t(), d, out=hot)
        bias_grad = self.layer_grads[1] if self.layers is None else self.layer_grads[0][1]
        torch.sum(d, 0, out=bias_grad.view(-1))
        return sse

    def _adam(self) -> None:
        self.steps += 1
        self.step_count.fill_(self.steps)
        self.fused(
            [self.flat], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
            amsgrad=False, lr=self.lr, beta1=0.9, beta2=0.999, weight_decay=self.weight_decay, eps=1e-8,
            maximize=False,
        )  # fmt: skip


def _activate(h: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "tanh":
        # tanh(h) = 2 sigmoid(2h) - 1: MKL's tanh, which torch calls, takes 33 us for 1024 x 10 values in
        # the cross-CPU mode the stages set (MKL_CBWR), sigmoid and the arithmetic 12
        return h.mul_(2).sigmoid_().mul_(2).sub_(1)
    if activation == "relu":
        return h.relu_()
    return h.sigmoid_()


def _activation_grad(d: torch.Tensor, a: torch.Tensor, activation: str) -> torch.Tensor:
    """d (the gradient with respect to a layer's output a = act(h)) times act'(h), from a alone."""
    if activation == "tanh":
        return torch.ops.aten.tanh_backward(d, a)  # d (1 - a^2), one kernel
    if activation == "relu":
        return torch.ops.aten.threshold_backward(d, a, 0)  # d where a > 0
    return torch.ops.aten.sigmoid_backward(d, a)  # d a (1 - a)


def minibatches(n_rows: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
    """One epoch's batches of row indices: slices of a fresh permutation drawn from `generator` (on the
    CPU, so the order is the same on every device), each row exactly once."""
    # int32 indices where they fit: the same permutation in half the memory (305 MiB at 8e7 rows)
    dtype = torch.int32 if n_rows < 2**31 else torch.int64
    return torch.randperm(n_rows, generator=generator, dtype=dtype).to(device).split(batch_size)


def gathered(X: torch.Tensor, y: torch.Tensor, chunks: tuple[torch.Tensor, ...], ahead: bool = True):
    """(X rows, y rows) of each chunk of row indices in turn; on the CPU and with `ahead`, the next chunk's
    rows are gathered by a second thread while the caller trains on these.

    A chunk holds GATHER_BATCHES batches: one gather (index_select, not X[rows]: about 3x faster for random
    rows) instead of one per batch, each batch then a slice of it. The gather is mostly waiting for memory
    (random rows of a table larger than the CPU's caches) and the training step one thread's arithmetic,
    so on two cores they overlap; the rows and the order are the same as gathering in line.
    """
    gather = lambda rows: (X.index_select(0, rows), y.index_select(0, rows))  # noqa: E731
    if X.device.type != "cpu" or not ahead:
        yield from map(gather, chunks)
    else:
        yield from one_ahead(gather, chunks, "gather")


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


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    spec: ModelSpec,
    seed: int,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    stopper: EarlyStopper | None = None,
    collective=None,
) -> TrainingLog:
    """Adam on the mean squared error; full batch unless spec.batch_size > 0 (shuffled minibatches, MLP);
    spec.weight_decay decays the weights as torch.optim.AdamW does.

    Minibatches: every epoch draws one permutation of the rows from a generator seeded by `seed`, and
    the batches are slices of it, so each row is used exactly once per epoch and the order is the same on
    every run and device. The loop body is the step itself; the epoch's loss is summed on the device and
    read once per epoch. Raises UserError when the loss stops being finite (at that step when training
    full batch, at the end of that epoch otherwise), or if it grew more than DIVERGED_GROWTH-fold.
    """
    loss_fn = nn.MSELoss()
    n_rows = len(y)
    # With train.distributed (`collective`), X and y are this worker's shard, and every worker has as many
    # rows: full batch, gradients and losses are averaged over the workers; minibatches, see _fit_shards.
    world = 1 if collective is None else collective.world
    batch = minibatch_rows(spec, n_rows * world)
    losses: list[float] = []
    model.train()
    if not batch:
        optimizer = Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        for epoch in range(1, spec.epochs + 1):
            optimizer.zero_grad()
            loss = loss_fn(model(X), y)
            loss.backward()
            if collective is not None:
                for p in model.parameters():
                    collective.mean_(p.grad)
                loss = collective.mean_(loss.detach().clone())
            value = loss.item()
            _check_finite(spec, value, f"at step {epoch}")
            optimizer.step()
            if _end_epoch(epoch, value, losses, on_epoch, stopper):
                break
    elif collective is not None:
        _fit_shards(model, X, y, spec, seed, on_epoch, stopper, collective, losses)
    else:
        shuffle = torch.Generator().manual_seed(seed)
        trainer = MinibatchTrainer(model, spec.lr, spec.weight_decay, compact=isinstance(X, CompactRows))
        try:
            for epoch in range(1, spec.epochs + 1):
                total = torch.zeros((), dtype=X.dtype, device=X.device)
                for X_rows, y_rows in gathered(X, y, minibatches(n_rows, batch * GATHER_BATCHES, shuffle, X.device)):
                    for start in range(0, len(y_rows), batch):
                        total += trainer.step(X_rows[start : start + batch], y_rows[start : start + batch])
                value = (total / n_rows).item()
                _check_finite(spec, value, f"in epoch {epoch}")
                if _end_epoch(epoch, value, losses, on_epoch, stopper):
                    break
        finally:
            trainer.release()
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        _check_finite(spec, float("nan"), f"in epoch {len(losses)} (the weights are no longer finite)")
    _check_growth(spec, losses)
    return _log(losses, stopper)


def _fit_shards(model, X, y, spec: ModelSpec, seed: int, on_epoch, stopper, collective, losses: list[float]) -> None:
    """Minibatch Adam over the workers' shards in one process's order: every worker draws the same
    permutation of all the workers' rows (seeded by `seed`, as one process draws it), each batch is a slice
    of it, and each worker steps on the rows of that batch that lie in its shard; the workers' gradients of
    the summed squared error are summed and divided by the batch's size. So every step's gradient is one
    process's over the same rows, up to the order of the sums; the workers' rows per step vary around
    batch_size / workers."""
    n_rows, world, batch = len(y), collective.world, spec.batch_size
    low = collective.rank * n_rows
    shuffle = torch.Generator().manual_seed(seed)
    trainer = MinibatchTrainer(model, spec.lr, spec.weight_decay, collective.sum_, isinstance(X, CompactRows))
    try:
        for epoch in range(1, spec.epochs + 1):
            total = torch.zeros((), dtype=X.dtype, device=X.device)
            order = minibatches(n_rows * world, n_rows * world, shuffle)[0]  # the whole permutation
            mine = (order >= low) & (order < low + n_rows)
            sizes = [min(batch, n_rows * world - start) for start in range(0, n_rows * world, batch)]
            flags = torch.zeros(len(sizes) * batch, dtype=torch.int32)
            flags[: len(mine)] = mine
            counts = flags.view(len(sizes), batch).sum(dim=1).tolist()  # this worker's rows in each batch
            local = (order[mine] - low).to(X.device)
            del order, mine, flags
            groups = [
                range(start, min(start + GATHER_BATCHES, len(counts)))
                for start in range(0, len(counts), GATHER_BATCHES)
            ]
            bounds = np.cumsum([0, *counts])
            chunks = tuple(local[bounds[g.start] : bounds[g.stop]] for g in groups)
            # gathered in line: the workers already keep the cores busy (a gathering thread each: no faster)
            for group, (X_rows, y_rows) in zip(groups, gathered(X, y, chunks, ahead=False), strict=True):
                offset = 0
                for k in group:
                    rows = slice(offset, offset + counts[k])
                    total += trainer.step(X_rows[rows], y_rows[rows], sizes[k])
                    offset += counts[k]
            value = (collective.sum_(total) / (n_rows * world)).item()
            _check_finite(spec, value, f"in epoch {epoch}")
            if _end_epoch(epoch, value, losses, on_epoch, stopper):
                break
    finally:
        trainer.release()
