"""The private torch operators the Adam trainer calls (stages/adam.py), in one place. They are not part of
torch's public API and may change in any release: tests/unit/test_torch_ops.py checks each against the
mathematics it stands for, and fails naming the operator when torch changes it. Checked with TORCH_CHECKED.

Why private ones: the public equivalents cost more than the arithmetic at this project's sizes (a step of
an MLP 8 -> 10 -> 1 on 1024 rows is launch-bound): torch.optim's Adam builds its state and imports
torch._dynamo (about a second a stage), and tanh's derivative from public ops is three kernels, not one.
"""

from __future__ import annotations

import torch

TORCH_CHECKED = "2.13.0"


def fused_adam(flat: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               step: torch.Tensor, lr: float, weight_decay: float) -> None:  # fmt: skip
    """One Adam step (AdamW's decoupled weight decay when weight_decay > 0) on the flat parameter buffer, in
    place, with torch.optim.Adam's defaults (betas 0.9 and 0.999, eps 1e-8); `step` is the step count (a
    float32 scalar tensor, already incremented)."""
    fused = torch._fused_adamw_ if weight_decay else torch._fused_adam_
    fused(
        [flat], [grad], [exp_avg], [exp_avg_sq], [], [step],
        amsgrad=False, lr=lr, beta1=0.9, beta2=0.999, weight_decay=weight_decay, eps=1e-8, maximize=False,
    )  # fmt: skip


def tanh_backward(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d (1 - a^2), the gradient through a = tanh(h), in one kernel."""
    return torch.ops.aten.tanh_backward(d, a)


def relu_backward(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d where a > 0, else 0: the gradient through a = relu(h)."""
    return torch.ops.aten.threshold_backward(d, a, 0)


def sigmoid_backward(d: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d a (1 - a), the gradient through a = sigmoid(h)."""
    return torch.ops.aten.sigmoid_backward(d, a)


ACTIVATION_BACKWARD = {"tanh": tanh_backward, "relu": relu_backward, "sigmoid": sigmoid_backward}
