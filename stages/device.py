"""Where a model trains: train.device (cpu, cuda, or auto: CUDA where torch sees it and a step is large
enough for a GPU to be faster)."""

from __future__ import annotations

import torch

from stages.errors import UserError
from stages.params import ModelSpec


def resolve_device(choice: str, source: str = "params.yaml") -> torch.device:
    """train.device: auto (CUDA when present), cpu, or cuda (an error, naming `source`, when there is none)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{source}: train.device is cuda, but torch sees no CUDA device here; use auto or cpu")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


# train.device: auto leaves a model on the CPU when a training step is too small for a GPU to win: a GPU
# step costs about a millisecond in kernel launches whatever its size, a CPU step grows with its multiply-adds;
# they cross near this many (the measurements: benchmarks/README.md, "Measurements behind the code").
GPU_MIN_STEP_WORK = 2e7


def step_work(spec: ModelSpec, n_features: int, n_rows: int) -> int:
    """Multiply-adds of one training step's forward pass: rows per step times the weights of the layers."""
    widths = spec.layer_widths(n_features)
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
