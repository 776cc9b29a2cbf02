"""Stage `train@<model>`: fit one model from params.yaml on the training split; save it, its
summary, its predictions on every prepared row, and its loss per epoch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from stages.data import PREPARED_DIR, read_split
from stages.errors import UserError, run_stage
from stages.io import atomic_open, write_bytes, write_json, write_text
from stages.params import load_params

MODELS_DIR = Path("models")
PREDICTIONS_DIR = Path("predictions")
LOSS_DIR = Path("plots/loss")


def loss_csv(losses: list[float]) -> str:
    return "epoch,loss\n" + "".join(f"{epoch},{loss!r}\n" for epoch, loss in enumerate(losses, start=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__)
    parser.add_argument("model", help="name of the model under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    if args.model not in params.models:
        raise UserError(f"params.yaml: no model {args.model!r} under models; known: {', '.join(params.models)}")
    spec = params.models[args.model]
    split = read_split(args.prepared)

    import torch  # after the cheap checks: importing torch takes seconds

    from stages import models

    # One thread: these models are tiny, extra threads only spin, and results must not depend on core count.
    torch.set_num_threads(1)
    torch.manual_seed(params.train.seed)

    X, y = split.X_train, split.y_train
    if split.scaling is not None:
        X = (X - np.asarray(split.scaling.x_mean)) / np.asarray(split.scaling.x_std)
        y = (y - split.scaling.y_mean) / split.scaling.y_std
    arch = models.architecture(spec, len(split.features), params.train.dtype)
    dtype = getattr(torch, arch["dtype"])
    model = models.build_model(arch)
    rows = models.layer_summary(model, len(split.features))
    summary = models.format_summary(spec.name, arch, rows)
    print(summary)

    def log(epoch: int, loss: float) -> None:
        if spec.kind == "linear" and spec.solver == "exact":
            print(f"train@{spec.name}: least squares solved exactly (SVD, float64), loss {loss:.6f}", flush=True)
        elif epoch == 1 or epoch % params.train.log_every == 0 or epoch == spec.epochs:
            print(f"train@{spec.name}: epoch {epoch}/{spec.epochs}, loss {loss:.6f}", flush=True)

    history = models.train_model(
        model,
        torch.as_tensor(X, dtype=dtype),
        torch.as_tensor(y, dtype=dtype),
        spec,
        seed=params.train.seed,
        on_epoch=log,
    )
    predictions = models.predict(model, np.concatenate([split.X_train, split.X_test]), split.scaling)

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
        for name, value in card["coefficients"].items():
            print(f"train@{spec.name}: final {'b' if 'intercept' in name else 'w'} ({name}): {value:.3f}")
    meta = {
        "name": spec.name,
        "architecture": arch,
        "features": list(split.features),
        "target": split.target,
        "scaling": split.scaling.to_dict() if split.scaling else None,
    }
    write_bytes(MODELS_DIR / f"{spec.name}.pt", models.model_bytes(model, meta))
    write_json(MODELS_DIR / f"{spec.name}.json", card)
    write_text(MODELS_DIR / f"{spec.name}.summary.txt", summary)
    with atomic_open(PREDICTIONS_DIR / f"{spec.name}.npy") as handle:
        np.save(handle, predictions)
    write_text(LOSS_DIR / f"{spec.name}.csv", loss_csv(history.losses))


if __name__ == "__main__":
    sys.exit(run_stage(main))
