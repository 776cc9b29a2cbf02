"""Stage `plot`: the figure of the data with every model's fitted curve (predicted vs actual when there
are several features), a predicted-vs-actual figure, as PNG files, and every model's loss per epoch in
one file for DVC's overlay chart."""

from __future__ import annotations

import argparse
import csv
import io
import shlex
import sys
from pathlib import Path

import numpy as np

from stages import paths
from stages.errors import UserError, run_stage
from stages.io import write_bytes, write_text
from stages.params import load_params
from stages.paths import PREPARED_DIR
from stages.prepared import Split, map_array, read_split, sample_rows

# Drop the matplotlib version from the PNG so a matplotlib upgrade alone does not change the bytes.
PNG_METADATA = {"Software": None}
SCATTER_LIMIT = 5000  # more rows than this are drawn as a sample (fit) or a density (predicted vs actual)


def fitted_curves_figure(split: Split, predictions: dict[str, np.ndarray]):
    """Data points and each model's predictions joined in order of x (one feature only).

    Past SCATTER_LIMIT rows, a seeded sample of the points is drawn, smaller and translucent.
    """
    import matplotlib.pyplot as plt

    x = np.concatenate([split.X_train[:, 0], split.X_test[:, 0]])
    n_train = len(split.y_train)
    shown = sample_rows(len(x), SCATTER_LIMIT)
    style = {"ms": 6} if len(x) <= SCATTER_LIMIT else {"ms": 2, "alpha": 0.3}
    order = shown[np.argsort(x[shown], kind="stable")]
    train_shown, test_shown = shown[shown < n_train], shown[shown >= n_train] - n_train
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(split.X_train[train_shown, 0], split.y_train[train_shown], "bo", label="train data", **style)
    if len(split.y_test):
        ax.plot(
            split.X_test[test_shown, 0],
            split.y_test[test_shown],
            "o",
            mfc="none",
            mec="black",
            label="test data",
            **style,
        )
    for name, predicted in predictions.items():
        ax.plot(x[order], predicted[order], "-", label=f"{name} fit")
    ax.set_xlabel(split.features[0])
    ax.set_ylabel(split.target)
    title = f"{split.target} against {split.features[0]}"
    ax.set_title(title if len(x) <= SCATTER_LIMIT else f"{title} ({SCATTER_LIMIT} of {len(x)} rows shown)")
    ax.legend()
    return fig


PANELS_PER_ROW = 4
DENSITY_BINS = 60
DENSITY_BLOCK_ROWS = 1 << 20


def _bin_index(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """The bin (0 .. bins-1) of each value on [low, high]; high itself falls in the last bin."""
    scaled = (values - low) * (bins / (high - low))
    return np.clip(scaled.astype(np.intp), 0, bins - 1)


def _extent(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low - 0.5, high + 0.5) if high == low else (low, high)


def density(x: np.ndarray, y: np.ndarray, bins: int = DENSITY_BINS, block_rows: int = DENSITY_BLOCK_ROWS):
    """Counts of (x, y) pairs on a bins x bins grid over their ranges, and the grid's edges.

    Counted block by block with integer arithmetic, so memory stays at one block whatever the row count
    (matplotlib's hexbin holds several full-length temporaries: over a gigabyte at 10^7 rows).
    Returns (counts[x_bin, y_bin], x_edges, y_edges).
    """
    (x_low, x_high), (y_low, y_high) = _extent(x), _extent(y)
    counts = np.zeros(bins * bins, dtype=np.int64)
    for start in range(0, len(x), block_rows):
        x_bins = _bin_index(x[start : start + block_rows], x_low, x_high, bins)
        y_bins = _bin_index(y[start : start + block_rows], y_low, y_high, bins)
        counts += np.bincount(x_bins * bins + y_bins, minlength=bins * bins)
    return counts.reshape(bins, bins), np.linspace(x_low, x_high, bins + 1), np.linspace(y_low, y_high, bins + 1)


def predicted_vs_actual_figure(split: Split, predictions: dict[str, np.ndarray]):
    """One panel per model: predicted against actual, with the y = x line; past SCATTER_LIMIT rows a
    2-D histogram of all rows (log colour scale) instead of points."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    actual = np.concatenate([split.y_train, split.y_test])
    n_train = len(split.y_train)
    dense = len(actual) > SCATTER_LIMIT
    # At most PANELS_PER_ROW panels side by side, then further rows: ten models stay readable.
    ncols = min(len(predictions), PANELS_PER_ROW)
    nrows = -(-len(predictions) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(predictions) :]:
        ax.set_visible(False)
    low, high = float(actual.min()), float(actual.max())
    for ax, (name, predicted) in zip(axes.flat, predictions.items(), strict=False):
        if dense:
            counts, x_edges, y_edges = density(actual, predicted)
            mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts, 0).T, norm=LogNorm(), cmap="viridis")
            fig.colorbar(mesh, ax=ax, label="rows")
        else:
            ax.plot(actual[:n_train], predicted[:n_train], "bo", ms=4, label="train")
            if len(split.y_test):
                ax.plot(actual[n_train:], predicted[n_train:], "o", ms=4, mfc="none", mec="black", label="test")
        ax.plot([low, high], [low, high], "k--", lw=1, label="y = x")
        ax.set_title(f"{name} ({len(actual):,} rows, log density)" if dense else name)
        ax.set_xlabel(f"actual {split.target}")
        ax.set_ylabel(f"predicted {split.target}")
        ax.legend()
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    return buffer.getvalue()


def draw(split: Split, predictions: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """The two figures as PNG bytes: (fit, predicted vs actual). With several features there is no curve
    to draw, so the fit figure is the predicted-vs-actual one (drawn once)."""
    import matplotlib

    matplotlib.use("Agg")
    predicted_vs_actual = png_bytes(predicted_vs_actual_figure(split, predictions))
    fit = png_bytes(fitted_curves_figure(split, predictions)) if len(split.features) == 1 else predicted_vs_actual
    return fit, predicted_vs_actual


LOSS_POINTS = 2000  # per model in the overlay: past this many epochs, every k-th epoch and the last


def read_losses(name: str) -> dict[str, list[str]]:
    """A model's loss per epoch from what DVCLive wrote during train@<name>: {"epoch": [...], "loss": [...]}
    and "validation_loss" with early stopping, the values as written (text)."""
    columns: dict[str, list[str]] = {}
    for split, column in (("train", "loss"), ("validation", "validation_loss")):
        path = paths.live_loss_file(name, split)
        if split == "validation" and not path.exists():
            continue
        rows = list(csv.reader(io.StringIO(_load_train_output(path, name, lambda p: p.read_text("utf-8"))),
                               delimiter="\t"))  # fmt: skip
        if rows[:1] != [["step", "loss"]]:
            raise UserError(f"{path}: not DVCLive's loss history (step, loss); run `dvc repro train@{name}`")
        columns.setdefault("epoch", [row[0] for row in rows[1:]])
        columns[column] = [row[1] for row in rows[1:]]
    return columns


def overlay_losses(losses: dict[str, dict[str, list[str]]], limit: int = LOSS_POINTS) -> str:
    """Every model's losses (read_losses) in one long table with a `model` column first, models in
    params.yaml's order, at most `limit` epochs a model (every k-th and the last); a column one model lacks
    stays empty."""
    columns: list[str] = []
    for table in losses.values():
        columns += [column for column in table if column not in columns]
    lines = [",".join(["model", *columns])]
    for name, table in losses.items():
        n_epochs = len(table["epoch"])
        rows = [*range(0, n_epochs, -(-n_epochs // limit))] if n_epochs else []
        if rows and rows[-1] != n_epochs - 1:
            rows.append(n_epochs - 1)
        lines += [",".join([name, *(table[column][i] if column in table else "" for column in columns)]) for i in rows]
    return "\n".join(lines) + "\n"


def leftover_files(models: list[str]) -> list[Path]:
    """Files in the predictions folder and folders in DVCLive's that belong to no current model (DVC's
    .gitignore aside).

    The plot stage depends on both whole folders, so DVC hashes every file in them: a model removed from
    (or renamed in) params.yaml leaves its files there, and dvc.lock would record folders that a clean
    checkout, which never has those files, cannot reproduce.
    """
    expected = {paths.predictions_file(name) for name in models} | {paths.live_dir(name) for name in models}
    return sorted(
        path
        for folder in (paths.PREDICTIONS_DIR, paths.LIVE_DIR)
        if folder.is_dir()
        for path in folder.iterdir()
        if path.name != ".gitignore" and path not in expected
    )


def _load_train_output(path: Path, model: str, load):
    """load(path), or the one-line error saying which training stage to run."""
    try:
        return load(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing; run `dvc repro train@{model}` first") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.plot", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    split = read_split(args.prepared, mmap=True)
    leftovers = leftover_files(list(params.models))
    if leftovers:
        listed = " ".join(shlex.quote(str(path)) for path in leftovers)
        raise UserError(
            f"{listed}: not the output of a model in {params.source} ({', '.join(params.models)}); "
            f"delete {'it' if len(leftovers) == 1 else 'them'} (rm -r {listed}): this stage depends on the "
            f"whole {paths.PREDICTIONS_DIR}/ and {paths.LIVE_DIR}/ folders, so a leftover would make dvc.lock "
            "differ from a clean checkout"
        )
    predictions = {name: _load_train_output(paths.predictions_file(name), name, map_array) for name in params.models}
    losses = {name: read_losses(name) for name in params.models}

    fit_png, predicted_png = draw(split, predictions)
    write_bytes(paths.FIT_FIGURE, fit_png)
    write_bytes(paths.PREDICTED_FIGURE, predicted_png)
    write_text(paths.LOSSES_FILE, overlay_losses(losses))
    print(f"plot: wrote {paths.FIT_FIGURE}, {paths.PREDICTED_FIGURE} and {paths.LOSSES_FILE}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
