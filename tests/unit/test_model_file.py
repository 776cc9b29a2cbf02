"""stages/model_file.py reads model files without torch, as torch.load reads them (torch 2.13)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from stages import models
from stages.errors import UserError
from stages.model_file import read_model_file


@pytest.mark.parametrize(
    "arch",
    [
        {"kind": "linear", "n_features": 3, "solver": "exact", "dtype": "float64"},
        {"kind": "mlp", "n_features": 4, "hidden": [5, 3], "activation": "relu", "dtype": "float32"},
    ],
)
def test_a_model_file_reads_as_torch_load_reads_it(tmp_path, arch):
    torch.manual_seed(0)
    model = models.build_model(arch)
    meta = {"name": "m", "architecture": arch, "features": ["a", "b", "c", "d"][: arch["n_features"]], "target": "y",
            "scaling": {"x_mean": [1.0], "x_std": [2.0], "y_mean": 3.0, "y_std": 4.0}}  # fmt: skip
    path = tmp_path / "m.pt"
    path.write_bytes(models.model_bytes(model, meta))
    ours, theirs = read_model_file(path), torch.load(path, weights_only=True)
    assert {k: v for k, v in ours.items() if k != "state_dict"} == {
        k: v for k, v in theirs.items() if k != "state_dict"
    }
    assert list(ours["state_dict"]) == list(theirs["state_dict"])
    for key, tensor in theirs["state_dict"].items():
        assert ours["state_dict"][key].dtype == tensor.numpy().dtype
        assert np.array_equal(ours["state_dict"][key], tensor.numpy())


def test_a_file_that_is_no_model_file_is_one_error_naming_it(tmp_path):
    buffer = io.BytesIO()
    torch.save({"weights": torch.nn.Linear(2, 1)}, buffer)  # a pickled module: not what the pipeline writes
    (tmp_path / "module.pt").write_bytes(buffer.getvalue())
    (tmp_path / "text.pt").write_text("not a zip")
    for name in ("module.pt", "text.pt"):
        with pytest.raises(UserError, match=f"{name}: not a model file written by this pipeline"):
            read_model_file(tmp_path / name)
