"""Stage `train@<model>`: fit one model from params.yaml on the training split; save it, its
summary, its predictions on every prepared row, and its loss per epoch."""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stages import distributed, lobby, paths
from stages.errors import UserError, run_stage
from stages.io import atomic_open, write_bytes, write_json, write_text, written_in_place
from stages.params import ModelSpec, TrainParams, load_params
from stages.paths import PREPARED_DIR
from stages.prepared import Split, feature_stats, read_split, seeded_split

# DVCLive writes each epoch's row as it comes (the file grows while training runs), but its summary and the
# signals DVC's VS Code extension follows cost about 2 ms a write: they are written at most this often.
LIVE_SYNC_SECONDS = 1.0


class EpochLog:
    """Reports training progress: a tqdm bar on a terminal, plain lines every `log_every` epochs otherwise;
    with `live_dir`, every epoch's loss (and validation loss) through DVCLive into that folder."""

    def __init__(self, spec: ModelSpec, log_every: int, live_dir: Path | None = None) -> None:
        self.spec, self.log_every = spec, log_every
        self.exact = spec.method == "exact"
        self.bar = None
        self.draw_bar = sys.stderr.isatty() and not self.exact  # drawn from the first epoch, below the set-up lines
        self.live = None
        if live_dir is not None:
            from dvclive import Live

            # no dvc.yaml of its own (dvc.yaml declares the folder), no experiment saved, no report
            self.live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        self.started = self.last = self.synced = time.perf_counter()
        self.last_epoch = self.live_epoch = 0

    def __call__(self, epoch: int, loss: float, validation: float | None = None) -> None:
        name = self.spec.name
        held_out = "" if validation is None else f", validation loss {validation:.6f}"
        if self.live is not None:
            self._log_live(epoch, loss, validation)
        if self.exact:
            print(f"train@{name}: least squares solved exactly (SVD, float64), loss {loss:.6f}", flush=True)
        elif self.draw_bar:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.spec.epochs, desc=f"train@{name}", unit="epoch")
            self.bar.update(1)
            extra = {} if validation is None else {"validation": f"{validation:.6g}"}
            self.bar.set_postfix(loss=f"{loss:.6g}", **extra, refresh=False)
        elif epoch == 1 or epoch % self.log_every == 0 or epoch == self.spec.epochs:
            now = time.perf_counter()
            # Epoch 1 also pays for one-off set-up (for L-BFGS, torch.optim imports torch._dynamo): not timed.
            timing = "" if epoch == 1 else f" ({_duration((now - self.last) / (epoch - self.last_epoch))}/epoch)"
            self.last, self.last_epoch = now, epoch
            print(f"train@{name}: epoch {epoch}/{self.spec.epochs}, loss {loss:.6f}{held_out}{timing}", flush=True)

    def _log_live(self, epoch: int, loss: float, validation: float | None) -> None:
        self.live.step, self.live_epoch = epoch, epoch  # DVCLive's step is the epoch
        self.live.log_metric("train/loss", loss)
        if validation is not None:
            self.live.log_metric("validation/loss", validation)
        now = time.perf_counter()
        if now - self.synced >= LIVE_SYNC_SECONDS:
            self.live.next_step()
            self.synced = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.live is not None:
            self.live.step = self.live_epoch
            self.live.next_step()  # the summary of the last epoch
            self.live.end()
        print(f"train@{self.spec.name}: trained in {_duration(time.perf_counter() - self.started)}", flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


LOGGED_WEIGHTS = 20  # a wide linear model logs its first weights; all of them are in models/<name>.json


@dataclass(frozen=True)
class TrainedModel:
    """Everything `train` writes for one model."""

    model_bytes: bytes  # the .pt file: state_dict and plain metadata
    card: dict  # models/<name>.json: architecture, layers, parameter count, coefficients of a linear model
    summary: str  # the table of layers
    predictions: np.ndarray  # every prepared row (train, then test), original units, float64
    losses: list[float]  # per epoch
    validation_losses: list[float] | None = None  # per epoch, with early stopping


MIN_VALIDATION_ROWS = 2


def held_out_rows(spec: ModelSpec, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows to fit on, validation rows) of the training split when the spec asks for early stopping."""
    if spec.early_stopping is None:
        return None
    fraction = spec.early_stopping.validation_fraction
    fit_rows, validation = seeded_split(n_train, fraction, seed)
    if len(validation) < MIN_VALIDATION_ROWS or len(fit_rows) < MIN_VALIDATION_ROWS:
        raise UserError(
            f"models.{spec.name}.early_stopping.validation_fraction {fraction:g} of {n_train} training rows leaves "
            f"{len(validation)} validation and {len(fit_rows)} training rows; each needs at least "
            f"{MIN_VALIDATION_ROWS}: change the fraction, or add rows"
        )
    return fit_rows, validation


def fit_model(
    spec: ModelSpec,
    settings: TrainParams,
    split: Split,
    device,
    say: Callable[[str], None] = print,
    on_epoch: Callable[..., None] = lambda epoch, loss, validation=None: None,
    shard=None,
    collective=None,
) -> TrainedModel:
    """Build the model `spec` names, fit it on the training rows (seeded by settings.seed) on `device`,
    and predict every prepared row. With early stopping, a seeded part of the training rows is held out for
    validation and the weights of its best epoch are kept. `say` gets the summary and the set-up line."""
    import torch

    from stages import importance, models, training

    torch.manual_seed(settings.seed)
    arch = models.architecture(spec, len(split.features), settings.dtype)
    model = models.build_model(arch)
    layers = models.layer_summary(model, len(split.features))
    summary = models.format_summary(spec.name, arch, layers)
    say(summary)
    held_out = held_out_rows(spec, len(split.y_train), settings.seed)
    # train.distributed: this worker maps and trains on its slice of the rows only (of the rows left for
    # fitting with early stopping: every worker watches the loss on all the validation rows)
    if held_out is None and shard is None:
        fitting = split
    elif held_out is None:
        low, high = shard.bounds(len(split.y_train))
        fitting = replace(split, X_train=split.X_train[low:high], y_train=split.y_train[low:high])
    else:
        fit_rows = held_out[0] if shard is None else held_out[0][slice(*shard.bounds(len(held_out[0])))]
        fitting = replace(split, X_train=split.X_train[fit_rows], y_train=split.y_train[fit_rows])
    how = training.describe_training(spec, len(fitting.y_train) * (1 if shard is None else shard.world))
    where = "cpu" if spec.method == "exact" else device
    # With data.standardize the loss is that of the scaled target: the metrics' MSE over y_std squared.
    units = f"; loss in standardized units (MSE / {split.scaling.y_std:.6g}^2)" if split.scaling else ""
    validating = "" if held_out is None else f" (and {len(held_out[1])} held out for validation)"
    workers = "" if shard is None else f" on each of {shard.world} workers"
    say(
        f"train@{spec.name}: {len(fitting.y_train)} rows{workers}{validating} x {len(split.features)} feature(s), "
        f"{how}, {arch['dtype']} on {where}{units}"
    )

    validation = None if held_out is None else (split.X_train[held_out[1]], split.y_train[held_out[1]])
    rows = training.Rows(fitting.X_train, fitting.y_train, split.scaling, split.features, split.target, validation,
                         split.X_train[0])  # fmt: skip
    history, least_squares_mse = training.fit(model, spec, rows, arch["dtype"], device, settings.seed, on_epoch,
                                              collective)  # fmt: skip
    # Every training row in order (with early stopping, the fitted and the held-out ones), then every test
    # row, from the mapped rows in the blocks scaled_tensor makes: the outputs the training tensor would give.
    # With train.distributed, rank 0 alone (it alone writes the outputs; every worker holds the same model).
    n_train = len(split.y_train)
    predictions = None
    if shard is None or shard.rank == 0:
        predictions = np.empty(n_train + len(split.y_test))
        predictions[:n_train] = models.predict(model, split.X_train, split.scaling)
        predictions[n_train:] = models.predict(model, split.X_test, split.scaling)

    card = {
        "name": spec.name,
        "architecture": arch,
        "features": list(split.features),
        "target": split.target,
        "layers": layers,
        "parameters": sum(r["params"] for r in layers),
        "final_train_loss": history.losses[-1],
    }
    # one pass over the training rows: each numeric feature's range (predict warns about rows beyond it),
    # and a linear model's feature stds (its standardized coefficients)
    stats = feature_stats(split.X_train, std=spec.kind == "linear")
    if spec.kind == "linear":
        card["coefficients"] = models.linear_coefficients(model, split.features, split.scaling)
        card["coefficients_standardized"] = importance.standardized_coefficients(
            card["coefficients"], stats.std, split.y_train, split.features
        )
        card["least_squares_mse"] = least_squares_mse
    if predictions is not None:  # which columns matter, on a sample of the test rows (rank 0 alone)
        columns = importance.raw_columns(split)
        which, X_rows, y_rows = importance.evaluation_rows(split, settings.seed)
        card["importance"] = {"split": which, "rows": len(y_rows)} | importance.permutation_importance(
            model, X_rows, y_rows, split.scaling, columns, settings.seed
        )
        card["partial_dependence"] = importance.partial_dependence(
            model, X_rows, split.scaling, columns, card["importance"], split.transform
        )
    if shard is not None:
        card["distributed"] = {"workers": shard.world}  # the minibatch order depends on the worker count
    if held_out is not None:
        card["early_stopping"] = {
            "validation_fraction": spec.early_stopping.validation_fraction,
            "patience": spec.early_stopping.patience,
            "seed": settings.seed,  # evaluate finds the validation rows again from the fraction and this seed
            "validation_rows": len(held_out[1]),
            "best_epoch": history.best_epoch,
            "best_validation_loss": history.validation_losses[history.best_epoch - 1],
            "stopped_epoch": len(history.losses),
        }
    # The .pt file's metadata: enough to rebuild the model and apply it to raw rows (stages/predict.py).
    meta = {key: card[key] for key in ("name", "architecture", "features", "target")}
    meta["scaling"] = split.scaling.to_dict() if split.scaling else None
    meta["ranges"] = {"low": stats.low, "high": stats.high}  # predict warns about rows beyond (extrapolation)
    if split.transform is not None:  # the raw columns' types, medians and categories (stages/columns.py)
        meta["transform"] = card["transform"] = split.transform
    model_bytes = models.model_bytes(model, meta)
    return TrainedModel(model_bytes, card, summary, predictions, history.losses, history.validation_losses)


def early_stopping_line(name: str, card: dict, epochs: int) -> str:
    """What early stopping did, for the log."""
    stopping = card["early_stopping"]
    why = (f"no lower validation loss for {stopping['patience']} epochs" if stopping["stopped_epoch"] < epochs
           else "all epochs run")  # fmt: skip
    return (
        f"train@{name}: early stopping kept epoch {stopping['best_epoch']} (validation loss "
        f"{stopping['best_validation_loss']:.6f}); stopped at epoch {stopping['stopped_epoch']}: {why}"
    )


# An MLP's training has stalled when its loss fell by less than STALL_FRACTION of itself over the last
# STALL_WINDOW of the epochs run (at least 2 epochs). Measured at 10^7 rows, 5 epochs: runs stuck on a
# plateau fall 0.1-0.3% over their last 2 epochs, runs that learned the table 2.4-10% (benchmarks/README.md).
STALL_FRACTION = 0.01
STALL_WINDOW = 0.2


def stall_warning(spec: ModelSpec, losses: list[float], standardized: bool) -> str | None:
    """A warning line when an MLP's training loss went flat (see STALL_FRACTION), or None. Not for a run
    that early stopping ended (fewer epochs than spec.epochs: its end is flat by design) nor one of fewer
    than 3 epochs."""
    if spec.kind != "mlp" or len(losses) < spec.epochs or len(losses) < 3:
        return None
    window = max(2, math.ceil(STALL_WINDOW * len(losses)))
    window = min(window, len(losses) - 1)
    before, last = losses[-window - 1], losses[-1]
    if not before - last < STALL_FRACTION * last:
        return None
    change = (before - last) / before if before else 0.0
    moved = f"fell by only {change:.2%}" if change >= 0 else f"rose by {-change:.2%}"
    other_init = "auto" if spec.init == "torch" else "torch"
    advice = [f"models.{spec.name}.init: {other_init} (now {spec.init}) or another train.seed",
              f"another models.{spec.name}.lr (now {spec.lr:g})"]  # fmt: skip
    if not standardized:
        advice.append("data.standardize: true")
    return (
        f"train@{spec.name}: warning: the training loss {moved} over the last {window} of "
        f"{len(losses)} epochs ({before:.6g} -> {last:.6g}): training may be stuck on a plateau; try "
        f"{', '.join(advice)}, or more epochs if it is still learning (one that has converged is flat too)"
    )


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
    parser.add_argument(
        "--node-rank", type=int, default=0,
        help="this machine's rank among train.distributed.nnodes: 0 where dvc repro runs the stage, 1, 2, ... "
        "on the others (default: 0)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    params = load_params(args.params)
    spec = params.model(args.model)
    shard = distributed.worker_shard()
    wanted = params.train.distributed
    if shard is None and wanted.world_size > 1:
        distributed.check_machine(wanted, params.train.device)  # the machine first: it is what cannot change
        n_train = len(read_split(args.prepared, mmap=True).y_train)
        if spec.early_stopping is not None:  # the workers share the rows left after the validation rows
            n_train -= math.ceil(spec.early_stopping.validation_fraction * n_train)
        distributed.check_rows(n_train, wanted.world_size)
        fingerprint = functools.partial(lobby.fingerprint, params.train, spec, args.prepared)
        distributed.launch(args.model, args.params, args.prepared, args.node_rank, wanted, fingerprint)
        return
    try:
        train_and_write(args, params, spec, shard)
    except UserError as err:
        if shard is None or shard.world == 1:
            raise
        raise UserError(f"rank {shard.rank}: {err}") from None
    except RuntimeError as err:
        if shard is not None and shard.world > 1 and distributed.lost_peer(err):
            distributed.stop_after_lost_peer(shard, err)
        raise
    finally:
        if shard is not None:
            distributed.finish()


def memory_need(spec: ModelSpec, n_features: int, n_rows: int, dtype: str) -> tuple[int, int]:
    """(weights, bytes) a model's training holds at least: every weight four times (itself, its gradient and
    Adam's two moments) and one step's layer outputs and their gradients."""
    widths = spec.layer_widths(n_features)
    weights = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    size = 8 if dtype == "float64" or spec.method == "exact" else 4
    rows = spec.batch_size if 0 < spec.batch_size < n_rows else n_rows
    return weights, size * (4 * weights + 2 * rows * sum(widths[1:]))


def check_memory(spec: ModelSpec, n_features: int, n_rows: int, dtype: str) -> None:
    from stages.memory import available_bytes, gib

    weights, need = memory_need(spec, n_features, n_rows, dtype)
    room = available_bytes()
    if room is not None and need > room:
        raise UserError(
            f"train@{spec.name}: training needs about {gib(need)} ({weights:,} weights, with their gradients and "
            f"Adam's moments, and a step's layer outputs); {gib(room)} is available here: use smaller "
            f"models.{spec.name}.hidden layers or batch_size"
        )


def train_and_write(args, params, spec: ModelSpec, shard) -> None:
    split = read_split(args.prepared, mmap=True)

    import torch  # after the cheap checks: importing torch takes seconds

    from stages.device import choose_device

    # One intra-op thread: the models are small, more threads only spin against each other (and against
    # numpy's BLAS pool), and a fixed count keeps results identical from one machine to the next.
    torch.set_num_threads(1)
    n_features = split.X_train.shape[1]
    device, why = choose_device(params.train.device, spec, n_features, len(split.y_train), params.source)
    if why:
        print(f"train@{spec.name}: {why}")
    if device.type == "cpu":  # refused here rather than ended by the kernel's OOM killer with only "exited with -9"
        check_memory(spec, n_features, len(split.y_train), params.train.dtype)
    collective = None
    if shard is not None:
        if device.type == "cuda":  # one GPU per worker of this machine (untested here: no GPU)
            device = torch.device("cuda", shard.local_rank)
            torch.cuda.set_device(device)
        collective = distributed.init(shard, params.train.distributed.backend, device.type)
    if shard is not None and shard.rank != 0:  # rank 0 reports and writes; the others train
        fit_model(spec, params.train, split, device, say=lambda line: None, shard=shard, collective=collective)
        return
    with written_in_place(paths.live_dir(spec.name)) as live:  # a run that does not end leaves no half a log
        log = EpochLog(spec, params.train.log_every, live)
        trained = fit_model(spec, params.train, split, device, say=lambda line: print(line, flush=True),
                            on_epoch=log, shard=shard, collective=collective)  # fmt: skip
        log.close()
    if "early_stopping" in trained.card:
        print(early_stopping_line(spec.name, trained.card, spec.epochs))
    warning = stall_warning(spec, trained.losses, split.scaling is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if "coefficients" in trained.card:
        print("\n".join(coefficient_lines(spec.name, trained.card["coefficients"])))

    write_bytes(paths.model_file(spec.name), trained.model_bytes)
    write_json(paths.model_card(spec.name), trained.card)
    write_text(paths.model_summary(spec.name), trained.summary)
    with atomic_open(paths.predictions_file(spec.name)) as handle:
        np.save(handle, trained.predictions)


if __name__ == "__main__":
    code = run_stage(main)
    if code:  # success returns: torchrun runs this file in its workers (--run-path), where exit(0) is a failure
        sys.exit(code)
