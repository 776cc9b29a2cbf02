"""The private torch operators of stages/torch_ops.py do what they stand for; a torch that changes one fails
here, naming it, before any training is wrong."""

from __future__ import annotations

import pytest
import torch

from stages import torch_ops


def test_the_operators_are_checked_against_this_torch():
    assert torch.__version__.split("+")[0] == torch_ops.TORCH_CHECKED, (
        f"torch {torch.__version__}: stages/torch_ops.py was checked with {torch_ops.TORCH_CHECKED}; run this "
        "file's tests, then set TORCH_CHECKED"
    )


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_each_activations_backward_is_its_derivative(activation):
    h = torch.linspace(-3, 3, 61, dtype=torch.float64).reshape(61, 1).requires_grad_()
    a = getattr(torch, activation)(h)
    d = torch.rand(61, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (expected,) = torch.autograd.grad(a, h, d)
    got = torch_ops.ACTIVATION_BACKWARD[activation](d, a.detach())
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-15), f"torch_ops.{activation}_backward changed"


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_the_fused_adam_step_is_adams_arithmetic(weight_decay):
    generator = torch.Generator().manual_seed(1)
    flat = torch.randn(50, dtype=torch.float64, generator=generator)
    exp_avg, exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
    reference = flat.clone().requires_grad_()
    optimizer = torch.optim.AdamW([reference], lr=0.01, weight_decay=weight_decay)  # AdamW(0) is Adam
    for step in range(1, 6):
        grad = torch.randn(50, dtype=torch.float64, generator=generator)
        torch_ops.fused_adam(flat, grad, exp_avg, exp_avg_sq, torch.tensor(float(step)), 0.01, weight_decay)
        reference.grad = grad.clone()
        optimizer.step()
    assert torch.allclose(flat, reference.detach(), rtol=1e-12, atol=1e-14), "torch_ops.fused_adam changed"
