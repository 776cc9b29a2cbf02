"""Where every stage output lives, defined once. dvc.yaml spells the same paths (it cannot import them):
tests/unit/test_dvc_yaml.py fails when the two drift apart."""

from __future__ import annotations

from pathlib import Path

PREPARED_DIR = Path("data/prepared")  # prepare: the splits as .npy arrays and meta.json
MODELS_DIR = Path("models")  # train: <model>.pt, <model>.json (the card), <model>.summary.txt
PREDICTIONS_DIR = Path("predictions")  # train: <model>.npy, every prepared row (train, then test), original units
METRICS_DIR = Path("metrics")  # evaluate: <model>.json
PLOTS_DIR = Path("plots")
LIVE_DIR = Path("dvclive")  # train: <model>/, DVCLive's log of each epoch's loss, written as training runs (git)
PREDICTED_DIR = PLOTS_DIR / "predicted"  # evaluate: <model>.csv, predicted against actual (a sample)
LOSSES_FILE = PLOTS_DIR / "losses.csv"  # plot: every model's loss per epoch, for the overlay chart
FIT_FIGURE = PLOTS_DIR / "fit.png"  # plot: the fitted curves (one feature), else the top column's dependence
PREDICTED_FIGURE = PLOTS_DIR / "predicted_vs_actual.png"  # plot
RESIDUALS_FIGURE = PLOTS_DIR / "residuals.png"  # plot
IMPORTANCE_FIGURE = PLOTS_DIR / "importance.png"  # plot


def model_file(name: str) -> Path:
    return MODELS_DIR / f"{name}.pt"


def model_card(name: str) -> Path:
    return MODELS_DIR / f"{name}.json"


def onnx_file(name: str) -> Path:
    return MODELS_DIR / f"{name}.onnx"  # export: the model and the transform of the raw columns


def serving_file(name: str) -> Path:
    return MODELS_DIR / f"{name}.serving.md"  # export: the ONNX graph's inputs table


def model_summary(name: str) -> Path:
    return MODELS_DIR / f"{name}.summary.txt"


def predictions_file(name: str) -> Path:
    return PREDICTIONS_DIR / f"{name}.npy"


def live_dir(name: str) -> Path:
    return LIVE_DIR / name


def live_summary(name: str) -> Path:
    return live_dir(name) / "metrics.json"  # DVCLive's summary: the last epoch's losses and its step


def live_plots(name: str) -> Path:
    return live_dir(name) / "plots"


def live_loss_file(name: str, split: str = "train") -> Path:
    """DVCLive's history of `split`'s loss (train, or validation with early stopping): step, loss."""
    return live_plots(name) / "metrics" / split / "loss.tsv"


def metrics_file(name: str) -> Path:
    return METRICS_DIR / f"{name}.json"


def predicted_file(name: str) -> Path:
    return PREDICTED_DIR / f"{name}.csv"
