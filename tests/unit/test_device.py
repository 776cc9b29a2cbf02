"""train.device (stages/device.py): both branches, the CUDA one by faking what torch reports (no CUDA here)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from stages import device
from stages.errors import UserError
from stages.params import ModelSpec

SMALL = ModelSpec(name="mlp", kind="mlp", hidden=(10,), activation="tanh", lr=0.01, epochs=5, batch_size=1024)
LARGE = ModelSpec(name="big", kind="mlp", hidden=(256, 256), activation="relu", lr=0.01, epochs=5, batch_size=8192)


@pytest.fixture(params=[False, True], ids=["no CUDA", "CUDA"])
def cuda(request, monkeypatch) -> bool:
    """torch.cuda.is_available() as a machine without, then with, a GPU would answer it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    return request.param


def test_device_choice_follows_what_torch_sees(cuda):
    assert device.resolve_device("cpu") == torch.device("cpu")
    if cuda:
        assert device.resolve_device("auto") == device.resolve_device("cuda") == torch.device("cuda")
    else:
        assert device.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(UserError, match="^params.yaml: train.device is cuda, but torch sees no CUDA device here"):
            device.resolve_device("cuda")
        with pytest.raises(UserError, match="^exp.yaml: train.device is cuda"):  # the file given with --params
            device.resolve_device("cuda", "exp.yaml")


def test_auto_keeps_a_model_whose_steps_are_too_small_for_a_gpu_on_the_cpu(cuda):
    """The rule train.device: auto follows when a GPU is there: the two MLPs measured on an H200 fall on the
    sides the measurements put them (benchmarks/README.md, "Measurements behind the code")."""
    assert device.step_work(SMALL, 8, 8_000_000) == 1024 * (8 * 10 + 10)
    assert device.step_work(LARGE, 8, 8_000_000) == 8192 * (8 * 256 + 256 * 256 + 256)
    assert device.step_work(SMALL, 8, 8_000_000) < device.GPU_MIN_STEP_WORK < device.step_work(LARGE, 8, 8_000_000)
    # full batch: the whole table is one step
    assert device.step_work(replace(SMALL, batch_size=0), 8, 10_000_000) > device.GPU_MIN_STEP_WORK
    chosen, why = device.choose_device("auto", SMALL, 8, 8_000_000)
    assert chosen == torch.device("cpu")
    if cuda:
        assert "faster there than on a GPU" in why
        assert device.choose_device("auto", LARGE, 8, 8_000_000) == (torch.device("cuda"), None)
        assert device.choose_device("cuda", SMALL, 8, 8_000_000) == (torch.device("cuda"), None)
        exact = ModelSpec(name="ls", kind="linear", solver="exact")
        assert device.choose_device("auto", exact, 8, 8_000_000)[0] == torch.device("cuda")
    else:
        assert why is None and device.choose_device("auto", LARGE, 8, 8_000_000) == (torch.device("cpu"), None)
