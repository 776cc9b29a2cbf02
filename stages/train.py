"""Stage `train@<model>`: fit one model from params.yaml on the training split; save it, its
summary, its predictions on every prepared row, and its loss per epoch."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from stages import paths
from stages.errors import UserError, run_stage
from stages.io import atomic_open, write_bytes, write_json, write_text
from stages.params import ModelSpec, TrainParams, load_params
from stages.paths import PREPARED_DIR
from stages.prepared import Split, read_split


class EpochLog:
    """Reports training progress: a tqdm bar on a terminal, plain lines every `log_every` epochs otherwise."""

    def __init__(self, spec: ModelSpec, log_every: int) -> None:
        self.spec, self.log_every = spec, log_every
        self.exact = spec.method == "exact"
        self.bar = None
        self.draw_bar = sys.stderr.isatty() and not self.exact  # drawn from the first epoch, below the set-up lines
        self.started = self.last = time.perf_counter()
        self.last_epoch = 0

    def __call__(self, epoch: int, loss: float) -> None:
        name = self.spec.name
        if self.exact:
            print(f"train@{name}: least squares solved exactly (SVD, float64), loss {loss:.6f}", flush=True)
        elif self.draw_bar:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.spec.epochs, desc=f"train@{name}", unit="epoch")
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        elif epoch == 1 or epoch % self.log_every == 0 or epoch == self.spec.epochs:
            now = time.perf_counter()
            # Epoch 1 also pays for one-off set-up (for L-BFGS, torch.optim imports torch._dynamo): not timed.
            timing = "" if epoch == 1 else f" ({_duration((now - self.last) / (epoch - self.last_epoch))}/epoch)"
            self.last, self.last_epoch = now, epoch
            print(f"train@{name}: epoch {epoch}/{self.spec.epochs}, loss {loss:.6f}{timing}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        print(f"train@{self.spec.name}: trained in {_duration(time.perf_counter() - self.started)}", flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def loss_csv(losses: list[float], limit: int = 2000) -> str:
    """Loss per epoch for `dvc plots`; past `limit` epochs, every k-th epoch and the last."""
    stride = -(-len(losses) // limit)
    epochs = [*range(1, len(losses) + 1, stride)]
    if epochs[-1] != len(losses):
        epochs.append(len(losses))
    return "epoch,loss\n" + "".join(f"{epoch},{losses[epoch - 1]!r}\n" for epoch in epochs)


LOGGED_WEIGHTS = 20  # a wide linear model logs its first weights; all of them are in models/<name>.json


def _check_representable(X, y, split, dtype: str) -> None:
    """Refuse training data that the conversion to `dtype` ruined (float32 holds magnitudes up to ~3.4e38
    and about 7 significant digits), rather than training on infinities or on a column turned constant."""
    from stages import models

    for values, original, names in ((X, split.X_train, split.features), (y, split.y_train, (split.target,))):
        lost = models.lost_columns(values, original)
        if lost:
            column = original.reshape(len(original), -1)[:, lost[0]]
            scaled = " after scaling" if split.scaling else ""
            raise UserError(
                f"data: column {names[lost[0]]!r} (from {column.min():g} to {column.max():g}) does not fit in "
                f"{dtype}{scaled}; set data.standardize: true, or train.dtype: float64"
            )


@dataclass(frozen=True)
class TrainedModel:
    """Everything `train` writes for one model."""

    model_bytes: bytes  # the .pt file: state_dict and plain metadata
    card: dict  # models/<name>.json: architecture, layers, parameter count, coefficients of a linear model
    summary: str  # the table of layers
    predictions: np.ndarray  # every prepared row (train, then test), original units, float64
    losses: list[float]  # per epoch


def fit_model(
    spec: ModelSpec,
    settings: TrainParams,
    split: Split,
    device,
    say: Callable[[str], None] = print,
    on_epoch: Callable[[int, float], None] = lambda epoch, loss: None,
) -> TrainedModel:
    """Build the model `spec` names, fit it on the training rows (seeded by settings.seed) on `device`,
    and predict every prepared row. `say` gets the summary and the set-up line before training starts."""
    import torch

    from stages import models, training

    torch.manual_seed(settings.seed)
    arch = models.architecture(spec, len(split.features), settings.dtype)
    model = models.build_model(arch)
    rows = models.layer_summary(model, len(split.features))
    summary = models.format_summary(spec.name, arch, rows)
    say(summary)
    how = training.describe_training(spec, len(split.y_train))
    where = "cpu" if spec.method == "exact" else device
    # With data.standardize the loss is that of the scaled target: the metrics' MSE over y_std squared.
    units = f"; loss in standardized units (MSE / {split.scaling.y_std:.6g}^2)" if split.scaling else ""
    say(
        f"train@{spec.name}: {len(split.y_train)} rows x {len(split.features)} feature(s), {how}, "
        f"{arch['dtype']} on {where}{units}"
    )

    if spec.method == "exact":
        # Straight from the mapped float64 rows in blocks: one pass of QR, no tensor of the table.
        history, least_squares = training.fit_exact(model, split.X_train, split.y_train, split.scaling, on_epoch)
        least_squares_mse = least_squares.mse
        train_predictions = models.predict(model, split.X_train, split.scaling)
    else:
        if spec.kind == "linear":
            # The reference for evaluate's optimality gap: float64 least squares, original units.
            least_squares_mse = training.solve_least_squares(split.X_train, split.y_train).mse
        dtype = getattr(torch, arch["dtype"])
        X = models.scaled_tensor(split.X_train, split.scaling, dtype)
        y = models.scaled_target(split.y_train, split.scaling, dtype)
        _check_representable(X, y, split, arch["dtype"])
        X, y = X.to(device), y.to(device)
        model.to(device)
        split = replace(split, X_train=None, y_train=None)  # drop the float64 copy; the tensor has the rows
        history = training.train_model(model, X, y, spec, seed=settings.seed, on_epoch=on_epoch)
        train_predictions = models.unscale_target(models.model_outputs(model, X), split.scaling)
        del X, y
        model.cpu()
    predictions = np.concatenate([train_predictions, models.predict(model, split.X_test, split.scaling)])

    card = {
        "name": spec.name,
        "architecture": arch,
        "features": list(split.features),
        "target": split.target,
        "layers": rows,
        "parameters": sum(r["params"] for r in rows),
        "final_train_loss": history.losses[-1],
    }
    if spec.kind == "linear":
        card["coefficients"] = models.linear_coefficients(model, split.features, split.scaling)
        card["least_squares_mse"] = least_squares_mse
    # The .pt file's metadata: enough to rebuild the model and apply it to raw rows (stages/predict.py).
    meta = {key: card[key] for key in ("name", "architecture", "features", "target")}
    meta["scaling"] = split.scaling.to_dict() if split.scaling else None
    return TrainedModel(models.model_bytes(model, meta), card, summary, predictions, history.losses)


def coefficient_lines(name: str, coefficients: dict) -> list[str]:
    """The log's final w per feature (the first LOGGED_WEIGHTS) and b of a linear model."""
    *weights, (intercept_key, intercept) = coefficients.items()
    lines = [f"train@{name}: final w ({feature}): {value:.3f}" for feature, value in weights[:LOGGED_WEIGHTS]]
    if len(weights) > LOGGED_WEIGHTS:
        lines.append(f"train@{name}: ... and {len(weights) - LOGGED_WEIGHTS} more weights in {paths.model_card(name)}")
    return [*lines, f"train@{name}: final b ({intercept_key}): {intercept:.3f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__)
    parser.add_argument("model", help="name of the model under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    spec = params.model(args.model)
    split = read_split(args.prepared, mmap=True)

    import torch  # after the cheap checks: importing torch takes seconds

    from stages.training import resolve_device

    # One intra-op thread: the models are small, more threads only spin against each other (and against
    # numpy's BLAS pool), and a fixed count keeps results identical from one machine to the next.
    torch.set_num_threads(1)
    device = resolve_device(params.train.device, params.source)
    log = EpochLog(spec, params.train.log_every)
    trained = fit_model(spec, params.train, split, device, say=lambda line: print(line, flush=True), on_epoch=log)
    log.close()
    if "coefficients" in trained.card:
        print("\n".join(coefficient_lines(spec.name, trained.card["coefficients"])))

    write_bytes(paths.model_file(spec.name), trained.model_bytes)
    write_json(paths.model_card(spec.name), trained.card)
    write_text(paths.model_summary(spec.name), trained.summary)
    with atomic_open(paths.predictions_file(spec.name)) as handle:
        np.save(handle, trained.predictions)
    write_text(paths.loss_file(spec.name), loss_csv(trained.losses))


if __name__ == "__main__":
    sys.exit(run_stage(main))
