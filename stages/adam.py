"""The Adam trainer: the forward and backward passes of this project's two models written out, on dense rows
or on a compact split's codes (models.CompactRows), and Adam's update by torch's fused kernel over one flat
buffer holding every parameter. Full-batch, minibatch and distributed training all step through it
(stages/training.py runs the epochs)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from stages import torch_ops
from stages.models import CompactRows, MLPRegressor


class AdamTrainer:
    """Adam (decoupled weight decay as AdamW) for this project's two models, on a batch of rows at a time
    (a full batch is one batch of every row), with the backward pass written out and every parameter a view
    of one flat buffer that torch's fused Adam kernel updates: a step is about 15 tensor operations instead
    of autograd's graph and an update per parameter (benchmarks/README.md, "Measurements behind the code").
    The same mathematics as autograd and torch.optim.AdamW, not the same rounding: tests/unit/test_adam.py
    compares gradients and trajectories."""

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
        self.step_count = torch.zeros((), dtype=torch.float32, device=first.device)
        if isinstance(model, MLPRegressor):
            linears = [layer for layer in model.layers if isinstance(layer, nn.Linear)]
            self.layers = [(layer.weight, layer.bias) for layer in linears]
            self.layer_grads = [(grads[2 * i], grads[2 * i + 1]) for i in range(len(linears))]
            self.activation = model.activation
        else:
            self.layers, self.layer_grads, self.activation = None, grads, None

    def unflatten(self) -> None:
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
            # bucket): one a layer, each started while the next layer's gradient is computed, was slower on
            # two cores (benchmarks/README.md, "Measurements behind the code").
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
        torch_ops.fused_adam(self.flat, self.grad, self.exp_avg, self.exp_avg_sq, self.step_count, self.lr,
                             self.weight_decay)  # fmt: skip


def _activate(h: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "tanh":
        # tanh(h) = 2 sigmoid(2h) - 1: in the cross-CPU mode the stages set (MKL_CBWR), MKL's tanh, which
        # torch calls, is slower than sigmoid and the arithmetic (benchmarks/README.md)
        return h.mul_(2).sigmoid_().mul_(2).sub_(1)
    if activation == "relu":
        return h.relu_()
    return h.sigmoid_()


def _activation_grad(d: torch.Tensor, a: torch.Tensor, activation: str) -> torch.Tensor:
    """d (the gradient with respect to a layer's output a = act(h)) times act'(h), from a alone."""
    return torch_ops.ACTIVATION_BACKWARD[activation](d, a)
