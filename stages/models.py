"""The two regressors: building, scaling inputs, predicting, summarising, saving and loading them (torch)."""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from stages.errors import UserError
from stages.io import check_regular_file
from stages.params import DTYPES, INITS, MODEL_KINDS, ModelSpec
from stages.prepared import Encoded, Scaling, release

MODEL_FORMAT = 1
# Rows per block wherever a whole-table temporary would double the memory (scaling, prediction).
BLOCK_ROWS = 65536
# Threads that convert and predict those blocks. Each block is computed alone, the same way on any thread
# (the stages' one intra-op thread each), so the bytes do not depend on this; numpy's copies and torch's
# kernels let go of the GIL, so a second core halves the time where a table has many blocks.
BLOCK_THREADS = max(1, min(4, os.cpu_count() or 1))
# Rows per forward pass when predicting: an MLP's activations for this many rows stay in the CPU's caches
# (a 128-wide layer's for 65536 rows are 32 MiB; benchmarks/README.md, "Measurements behind the code").
FORWARD_ROWS = 4096
T = TypeVar("T")
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
    """Linear(n_features, h1) -> act -> ... -> Linear(hk, 1), initialised by `init` (see initialize)."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], activation: str, init: str = "torch") -> None:
        super().__init__()
        self.activation = activation  # the architecture's: the Adam trainer's backward pass follows it
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATION_LAYERS[activation]()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)
        initialize(self.layers, init)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.layers(X).squeeze(-1)


# The schemes of models.<name>.init once `auto` is resolved (INIT_FOR_ACTIVATION); torch is nn.Linear's own.
INIT_SCHEMES = tuple(init for init in INITS if init != "auto")
INIT_FOR_ACTIVATION = {"tanh": "glorot", "sigmoid": "glorot", "relu": "he"}


def resolved_init(init: str, activation: str) -> str:
    """The scheme `init` names for this activation: auto is Glorot's for tanh and sigmoid, He's for relu."""
    return INIT_FOR_ACTIVATION[activation] if init == "auto" else init


def initialize(layers: nn.Sequential, init: str) -> None:
    """Draw every Linear layer's weights and biases again (torch's generator, layer by layer, weights then
    biases) from a uniform distribution in +-bound:
      glorot  bound = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010; scikit-learn's MLP, Keras' default)
      he      bound = sqrt(6 / fan_in)               (He et al. 2015, for relu; keeps the activations' variance)
      torch   nn.Linear's own draws, left as they are: bound 1/sqrt(fan_in) for weights and biases
    Biases share their layer's bound, as in scikit-learn, rather than starting at zero (Keras): with zero
    biases every tanh unit is an odd function of its input, so the network has no even term such as a
    product x1 x2 to start from and takes epochs to grow one (measured: benchmarks/README.md)."""
    if init == "torch":
        return
    for layer in layers:
        if isinstance(layer, nn.Linear):
            fan_out, fan_in = layer.weight.shape
            bound = math.sqrt(6 / (fan_in + fan_out) if init == "glorot" else 6 / fan_in)
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)


def architecture(spec: ModelSpec, n_features: int, dtype: str) -> dict:
    """Plain description of the network, enough to rebuild it before loading its weights.

    The exact solver works in float64 and keeps its coefficients in float64 whatever `dtype` says.
    """
    arch: dict = {"kind": spec.kind, "n_features": n_features, "dtype": "float64" if spec.method == "exact" else dtype}
    if spec.kind == "mlp":
        arch.update(hidden=list(spec.hidden), activation=spec.activation,
                    init=resolved_init(spec.init, spec.activation))  # fmt: skip
    else:
        arch.update(solver=spec.solver)
    return arch


def build_model(arch: dict) -> nn.Module:
    """A freshly initialised model (draws from torch's generator) in the architecture's dtype."""
    if arch["kind"] == "linear":
        model: nn.Module = LinearRegressor(arch["n_features"])
    else:
        model = MLPRegressor(arch["n_features"], tuple(arch["hidden"]), arch["activation"], arch.get("init", "torch"))
    return model.to(getattr(torch, arch.get("dtype", "float32")))


def _scaled_blocks(values: np.ndarray, mean, std, dtype: torch.dtype) -> torch.Tensor:
    """values as a new tensor of `dtype`, (values - mean) / std in float64 when scaling (mean is not None),
    block by block: no full-size temporary, and each block of a mapped file released once read."""
    out = torch.empty(values.shape, dtype=dtype)

    def convert(start: int, stop: int) -> None:
        block = np.array(values[start:stop], dtype=np.float64)  # writable, unlike a mapped file
        release(values[start:stop])
        if mean is not None:
            block = (block - np.asarray(mean)) / np.asarray(std)
        out[start:stop] = torch.from_numpy(block)

    each_block(len(values), convert)
    return out


def each_block(n_rows: int, work: Callable[[int, int], T], block_rows: int = BLOCK_ROWS) -> list[T]:
    """[work(start, stop) for every block of `block_rows` rows], in block order, computed on BLOCK_THREADS
    threads where there are several blocks. `work` must touch only its own rows."""
    bounds = [(start, min(start + block_rows, n_rows)) for start in range(0, n_rows, block_rows)]
    if len(bounds) <= 1 or BLOCK_THREADS == 1:
        return [work(start, stop) for start, stop in bounds]
    with ThreadPoolExecutor(max_workers=BLOCK_THREADS, thread_name_prefix="blocks") as pool:
        return list(pool.map(lambda bound: work(*bound), bounds))  # re-raises the first block's exception


def one_ahead(work: Callable, items, name: str):
    """work(item) for each item in order, the next one computed on a second thread while the caller uses
    this one (in line where there is a single item). The thread stops when the caller stops iterating."""
    if len(items) <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as pool:
        pending = pool.submit(work, items[0])
        for following in (*items[1:], None):
            done = pending.result()
            if following is not None:
                pending = pool.submit(work, following)
            yield done


def scaled_tensor(X: np.ndarray, scaling: Scaling | None, dtype: torch.dtype) -> torch.Tensor:
    """Features as a new tensor of `dtype`, scaled in float64 block by block (no full-size temporary)."""
    if scaling is None:
        return _scaled_blocks(X, None, None, dtype)
    return _scaled_blocks(X, scaling.x_mean, scaling.x_std, dtype)


class CompactRows:
    """Rows of a compact split (prepared.Encoded) as tensors: `dense` (rows, d) in the model's dtype and
    scaling, and `codes` (rows, k) int64, each categorical column's one-hot feature as its position among
    all the one-hot features (-1: none). A first layer takes them without the one-hot matrix: X W' is
    dense W_d' plus, per row, the sum of the one-hot columns of W at its codes (forward). Indexing and
    index_select take rows, as a tensor's do."""

    def __init__(self, dense: torch.Tensor, codes: torch.Tensor) -> None:
        self.dense, self.codes = dense, codes

    def __len__(self) -> int:
        return len(self.dense)

    def __getitem__(self, index) -> CompactRows:
        return CompactRows(self.dense[index], self.codes[index])

    def index_select(self, dim: int, rows: torch.Tensor) -> CompactRows:
        return CompactRows(self.dense.index_select(dim, rows), self.codes.index_select(dim, rows))

    def to(self, device) -> CompactRows:
        return CompactRows(self.dense.to(device), self.codes.to(device))

    @property
    def dtype(self) -> torch.dtype:
        return self.dense.dtype

    @property
    def device(self) -> torch.device:
        return self.dense.device


def compact_rows(X: Encoded, scaling: Scaling | None, dtype: torch.dtype) -> CompactRows:
    """Encoded rows as CompactRows: the dense features scaled as scaled_tensor scales them (one-hot features
    are never scaled: prepare gives them mean 0 and std 1)."""
    d = X.dense.shape[1]
    if scaling is None:
        dense = _scaled_blocks(X.dense, None, None, dtype)
    else:
        dense = _scaled_blocks(X.dense, scaling.x_mean[:d], scaling.x_std[:d], dtype)
    codes = np.asarray(X.codes, dtype=np.int64)
    codes = np.where(codes >= 0, codes + (np.asarray(X.offsets, dtype=np.int64) - d), -1)
    return CompactRows(dense, torch.from_numpy(codes))


def model_inputs(X: np.ndarray | Encoded, scaling: Scaling | None, dtype: torch.dtype, compact: bool):
    """The rows as the model takes them: CompactRows for a compact split where `compact` (minibatch
    training and prediction), else one dense tensor (scaled_tensor)."""
    if compact and isinstance(X, Encoded):
        return compact_rows(X, scaling, dtype)
    return scaled_tensor(X, scaling, dtype)


def first_layer(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (outputs, features), bias (outputs,)) of the model's first layer; a linear model's is its
    one output."""
    if isinstance(model, LinearRegressor):
        return model.weight.view(1, -1), model.bias
    return model.layers[0].weight, model.layers[0].bias


def forward(model: nn.Module, X: torch.Tensor | CompactRows) -> torch.Tensor:
    """model(X), for a dense tensor or CompactRows."""
    if not isinstance(X, CompactRows):
        return model(X)
    weight, bias = first_layer(model)
    d = X.dense.shape[1]
    out = torch.addmm(bias, X.dense, weight[:, :d].t())
    hot = weight[:, d:].t()[X.codes.clamp(min=0)]  # (rows, k, outputs)
    out += hot.mul_((X.codes >= 0).unsqueeze(-1)).sum(1)
    return out.squeeze(1) if isinstance(model, LinearRegressor) else model.layers[1:](out).squeeze(-1)


def lost_columns(values: torch.Tensor, original: np.ndarray) -> list[int]:
    """Columns of `values` (rows x columns, converted from the float64 `original`) that the conversion
    ruined: no longer finite (beyond float32's ~3.4e38), or all equal though the original's were not
    (differences below float32's resolution). One pass of min and max over the tensor, block by block."""
    if isinstance(values, CompactRows):  # one-hot features are 0 and 1 in any dtype
        values, original = values.dense, original.dense
    flat = values.reshape(len(values), -1)
    lows, highs = zip(*each_block(len(flat), lambda start, stop: torch.aminmax(flat[start:stop], dim=0)), strict=True)
    low, high = torch.stack(lows).amin(dim=0), torch.stack(highs).amax(dim=0)
    finite = torch.isfinite(low) & torch.isfinite(high)
    suspect = (~finite | (low == high)).nonzero().flatten().tolist()
    original = original if original.ndim == 2 else original.reshape(len(original), -1)
    return [j for j in suspect if not finite[j] or np.ptp(original[:, j]) > 0]


def scaled_target(y: np.ndarray, scaling: Scaling | None, dtype: torch.dtype) -> torch.Tensor:
    """The target as a new tensor of `dtype`, scaled in float64 block by block."""
    if scaling is None:
        return _scaled_blocks(y, None, None, dtype)
    return _scaled_blocks(y, scaling.y_mean, scaling.y_std, dtype)


def predict(model: nn.Module, X: np.ndarray | Encoded, scaling: Scaling | None) -> np.ndarray:
    """Predictions in original units, float64, for raw (unscaled) features; memory bounded by blocks."""
    dtype = next(model.parameters()).dtype
    out = np.empty(len(X), dtype=np.float64)

    def outputs(start: int, stop: int) -> None:
        out[start:stop] = model_outputs(model, model_inputs(X[start:stop], scaling, dtype, compact=True))

    model.eval()
    each_block(len(X), outputs)
    return unscale_target(out, scaling)


def model_outputs(model: nn.Module, X: torch.Tensor | CompactRows) -> np.ndarray:
    """The model's outputs (scaled units) as float64, FORWARD_ROWS rows at a time: the same passes
    whatever block of `predict` the rows arrive in (BLOCK_ROWS is a multiple of FORWARD_ROWS)."""
    out = np.empty(len(X), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(X), FORWARD_ROWS):
            out[start : start + FORWARD_ROWS] = forward(model, X[start : start + FORWARD_ROWS]).double().cpu().numpy()
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
        b = scaling.y_mean + scaling.y_std * (b - math.fsum(np.multiply(w_scaled, scaling.x_mean).tolist()))
        w = scaling.y_std * w_scaled
    coefficients = {name: float(value) for name, value in zip(features, w, strict=True)}
    coefficients["(intercept)" if "intercept" in coefficients else "intercept"] = b
    return coefficients


def set_linear_coefficients(model: LinearRegressor, weight: np.ndarray, bias: float, scaling: Scaling | None) -> None:
    """Put a line given in original units into the model, in its (scaled) units: linear_coefficients'
    inverse."""
    w, b = np.asarray(weight, dtype=np.float64), float(bias)
    if scaling is not None:
        b = (b + math.fsum(np.multiply(w, scaling.x_mean).tolist()) - scaling.y_mean) / scaling.y_std
        w = w * np.asarray(scaling.x_std) / scaling.y_std
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w))
        model.bias.fill_(b)


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
    detail = (f"solver {arch['solver']}" if arch["kind"] == "linear"
              else f"activation {arch['activation']}, init {arch.get('init', 'torch')}")  # fmt: skip
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


SAVED_KEYS = ("architecture", "features", "target", "scaling", "state_dict")


def _check_architecture(arch: dict) -> None:
    """Raise ValueError unless `arch` is one that architecture() writes."""
    if arch.get("kind") not in MODEL_KINDS or arch.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"unknown kind or dtype {arch.get('kind')!r}, {arch.get('dtype')!r}")
    if arch["kind"] == "mlp" and arch.get("activation") not in ACTIVATION_LAYERS:
        raise ValueError(f"unknown activation {arch.get('activation')!r}")
    if arch["kind"] == "mlp" and arch.get("init", "torch") not in INIT_SCHEMES:
        raise ValueError(f"unknown init {arch.get('init')!r}")


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model the pipeline wrote; only tensors and plain data are unpickled. Anything else, a file
    this pipeline did not write or one whose weights do not fit its architecture, is a UserError."""
    check_regular_file(path, "run `dvc repro` first, or name a model file written by this pipeline")
    not_ours = f"{path}: not a model file written by this pipeline"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to replace
        raise UserError(f"{not_ours} ({type(err).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != MODEL_FORMAT:
        raise UserError(f"{not_ours} (format {MODEL_FORMAT} expected)")
    missing = [key for key in SAVED_KEYS if key not in saved]
    if missing:
        raise UserError(f"{not_ours} (it has no {', '.join(missing)})")
    try:
        arch = saved["architecture"]
        _check_architecture(arch)
        features = saved["features"]
        if not (isinstance(features, list) and all(isinstance(name, str) for name in features)):
            raise ValueError("its features are not a list of column names")
        if len(features) != arch["n_features"]:
            raise ValueError(f"it names {len(features)} features for {arch['n_features']} inputs")
        if saved["scaling"] is not None:
            scaling = Scaling.from_dict(saved["scaling"])
            if not len(scaling.x_mean) == len(scaling.x_std) == len(features):
                raise ValueError("its scaling does not have one mean and std per feature")
        model = build_model({**arch, "init": "torch"})  # no second draw: the saved weights replace them
        model.load_state_dict(saved["state_dict"])
    except Exception as err:  # noqa: BLE001 - whatever does not fit: a missing key, a size mismatch
        detail = f"no {err.args[0]!r}" if isinstance(err, KeyError) else " ".join(str(err).split())
        detail = re.sub(r"^Error\(s\) in loading state_dict for \w+: ", "", detail)
        detail = detail if len(detail) <= 160 else detail[:159] + "…"
        raise UserError(f"{not_ours} (its parts do not fit together: {detail or type(err).__name__})") from None
    model.eval()
    return model, saved
