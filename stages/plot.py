"""Stage `plot`: the figures, as PNG files (the data with every model's fitted curve, or with several features
the partial dependence on the most important column; predicted against actual; residuals; permutation
importance), and every model's loss per epoch in one file for DVC's overlay chart."""

from __future__ import annotations

import argparse
import csv
import io
import json
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


def _plain(text: str) -> str:
    """A name from the CSV or params.yaml as matplotlib should print it: `$` is not the start of mathtext
    (a column `cost_$_per_$_unit` would be an error)."""
    return text.replace("$", r"\$")


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
        ax.plot(x[order], predicted[order], "-", label=_plain(f"{name} fit"))
    ax.set_xlabel(_plain(split.features[0]))
    ax.set_ylabel(_plain(split.target))
    title = _plain(f"{split.target} against {split.features[0]}")
    ax.set_title(title if len(x) <= SCATTER_LIMIT else f"{title} ({SCATTER_LIMIT} of {len(x)} rows shown)")
    ax.legend()
    return fig


PANELS_PER_ROW = 4
DENSITY_BINS = 60
DENSITY_BLOCK_ROWS = 1 << 20
IMPORTANCE_COLUMNS = 15  # the importance chart shows this many columns, the most important on average


def _bin_index(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """The bin (0 .. bins-1) of each value on [low, high]; high itself falls in the last bin."""
    scaled = (values - low) * (bins / (high - low))
    return np.clip(scaled.astype(np.intp), 0, bins - 1)


def _extent(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low - 0.5, high + 0.5) if high == low else (low, high)


def density(x: np.ndarray, y: np.ndarray, bins: int = DENSITY_BINS, block_rows: int = DENSITY_BLOCK_ROWS,
            extent: tuple[tuple[float, float], tuple[float, float]] | None = None):  # fmt: skip
    """Counts of (x, y) pairs on a bins x bins grid over their ranges (or `extent`), and the grid's edges.

    Counted block by block with integer arithmetic, so memory stays at one block whatever the row count
    (matplotlib's hexbin holds several full-length temporaries: over a gigabyte at 10^7 rows).
    Returns (counts[x_bin, y_bin], x_edges, y_edges).
    """
    (x_low, x_high), (y_low, y_high) = extent or (_extent(x), _extent(y))
    counts = np.zeros(bins * bins, dtype=np.int64)
    for start in range(0, len(x), block_rows):
        x_bins = _bin_index(x[start : start + block_rows], x_low, x_high, bins)
        y_bins = _bin_index(y[start : start + block_rows], y_low, y_high, bins)
        counts += np.bincount(x_bins * bins + y_bins, minlength=bins * bins)
    return counts.reshape(bins, bins), np.linspace(x_low, x_high, bins + 1), np.linspace(y_low, y_high, bins + 1)


def _panels(n_panels: int, size: float = 4.2):
    """A figure of n_panels panels, PANELS_PER_ROW to a row, all on the same axes (shared x and y)."""
    import matplotlib.pyplot as plt

    ncols = min(n_panels, PANELS_PER_ROW)
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False,
                             sharex=True, sharey=True)  # fmt: skip
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _scatter(fig, ax, x: np.ndarray, y: np.ndarray, extent, style: str) -> None:
    """Points, or past SCATTER_LIMIT rows a 2-D histogram of them (log colour scale) over `extent`."""
    from matplotlib.colors import LogNorm

    if len(x) > SCATTER_LIMIT:
        counts, x_edges, y_edges = density(x, y, extent=extent)
        mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts, 0).T, norm=LogNorm(), cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="rows")
    elif style == "test":
        ax.plot(x, y, "o", ms=4, mfc="none", mec="black", label="test rows")
    else:
        ax.plot(x, y, "bo", ms=4, label=f"{style} rows")


def _splits(split: Split) -> list[tuple[str, slice]]:
    """(name, rows of the concatenated train + test rows) of each split that has rows."""
    n_train = len(split.y_train)
    parts = [("train", slice(0, n_train))]
    return parts + [("test", slice(n_train, n_train + len(split.y_test)))] if len(split.y_test) else parts


def predicted_vs_actual_figure(split: Split, predictions: dict[str, np.ndarray]):
    """A panel per model and split (train, then test: the rows apart), all on the same axes, each with the
    y = x line; past SCATTER_LIMIT rows a 2-D histogram of the rows instead of points."""
    actual = np.concatenate([split.y_train, split.y_test])
    panels = [(name, part, rows) for name in predictions for part, rows in _splits(split)]
    fig, axes = _panels(len(panels))
    low = min(float(actual.min()), *(float(p.min()) for p in predictions.values()))
    high = max(float(actual.max()), *(float(p.max()) for p in predictions.values()))
    extent = (_extent(np.array([low, high])),) * 2
    for ax, (name, part, rows) in zip(axes, panels, strict=True):
        _scatter(fig, ax, actual[rows], predictions[name][rows], extent, part)
        ax.plot(extent[0], extent[0], "k--", lw=1, label="y = x")
        dense = len(actual[rows]) > SCATTER_LIMIT
        ax.set_title(_plain(f"{name}, {part} ({len(actual[rows]):,} rows{', log density' if dense else ''})"))
        ax.set_xlabel(_plain(f"actual {split.target}"))
        ax.set_ylabel(_plain(f"predicted {split.target}"))
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def residuals_figure(split: Split, predictions: dict[str, np.ndarray]):
    """Per model, actual - predicted against predicted on the test rows (the training rows without a test
    split), all panels on the same axes, with the zero line."""
    part, rows = _splits(split)[-1]
    actual = np.concatenate([split.y_train, split.y_test])[rows]
    residuals = {name: actual - predicted[rows] for name, predicted in predictions.items()}
    fig, axes = _panels(len(predictions))
    x_range = _extent(np.array([min(p[rows].min() for p in predictions.values()),
                                max(p[rows].max() for p in predictions.values())]))  # fmt: skip
    bound = max(float(np.abs(r).max()) for r in residuals.values()) or 1.0
    extent = (x_range, (-bound, bound))
    for ax, (name, residual) in zip(axes, residuals.items(), strict=True):
        _scatter(fig, ax, predictions[name][rows], residual, extent, part)
        ax.axhline(0.0, color="k", ls="--", lw=1)
        ax.set_title(_plain(f"{name}: residuals, {part} rows"))
        ax.set_xlabel(_plain(f"predicted {split.target}"))
        ax.set_ylabel(_plain(f"actual - predicted {split.target}"))
    fig.tight_layout()
    return fig


def _top_columns(found: dict[str, dict]) -> list[str]:
    """Columns by their rise in MSE averaged over the models, the largest first."""
    names = {column for model in found.values() for column in model["importance"]["mse_increase"]}
    mean = {c: np.mean([m["importance"]["mse_increase"].get(c, 0.0) for m in found.values()]) for c in names}
    return sorted(names, key=lambda column: (-mean[column], column))


def importance_figure(found: dict[str, dict]):
    """Permutation importance of the IMPORTANCE_COLUMNS most important columns, a bar per model (with the
    spread over the permutations)."""
    import matplotlib.pyplot as plt

    columns = _top_columns(found)[:IMPORTANCE_COLUMNS]
    fig, ax = plt.subplots(figsize=(7.2, 1.2 + 0.45 * len(columns) * max(1, len(found)) ** 0.5))
    height = 0.8 / len(found)
    for k, (name, model) in enumerate(found.items()):
        importance = model["importance"]
        at = np.arange(len(columns)) - 0.4 + height * (k + 0.5)
        ax.barh(at, [importance["mse_increase"].get(c, 0.0) for c in columns], height,
                xerr=[importance["mse_increase_std"].get(c, 0.0) for c in columns], label=_plain(name))  # fmt: skip
    ax.set_yticks(np.arange(len(columns)), [_plain(column) for column in columns])
    ax.invert_yaxis()
    some = next(iter(found.values()))["importance"]
    ax.set_xlabel(f"rise in {some['split']} MSE when the column is shuffled")
    ax.set_title(f"Permutation importance ({some['rows']:,} {some['split']} rows, {some['repeats']} shuffles)")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.legend()
    fig.tight_layout()
    return fig


def dependence_figure(split: Split, found: dict[str, dict]):
    """Each model's partial dependence on the most important column it has a curve for (on average over the
    models): what fit.png shows when there are several features."""
    import matplotlib.pyplot as plt

    curves = {name: model["partial_dependence"] for name, model in found.items()}
    column = next((c for c in _top_columns(found) if any(c in curve for curve in curves.values())), None)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    if column is None:
        ax.set_title("no column to show the partial dependence of")
        return fig
    for name, curve in curves.items():
        if column in curve:
            points = curve[column]
            x = np.arange(len(points["grid"])) if points["kind"] == "categorical" else points["grid"]
            ax.plot(x, points["mean"], "o-" if points["kind"] != "numeric" else "-", label=_plain(name))
            if points["kind"] == "categorical":
                labels = [_plain(str(label)) for label in points["grid"]]
                ax.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right")
    ax.set_xlabel(_plain(column))
    ax.set_ylabel(_plain(f"mean predicted {split.target}"))
    ax.set_title(_plain(f"Partial dependence on {column}, the most important column"))
    ax.legend()
    fig.tight_layout()
    return fig


def png_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return buffer.getvalue()


def draw(split: Split, predictions: dict[str, np.ndarray], found: dict[str, dict]) -> dict[Path, bytes]:
    """Every figure as PNG bytes, by path. `found`: each model's importance and partial dependence."""
    import matplotlib

    matplotlib.use("Agg")
    one_feature = len(split.features) == 1
    fit = fitted_curves_figure(split, predictions) if one_feature else dependence_figure(split, found)
    return {
        paths.FIT_FIGURE: png_bytes(fit),
        paths.PREDICTED_FIGURE: png_bytes(predicted_vs_actual_figure(split, predictions)),
        paths.RESIDUALS_FIGURE: png_bytes(residuals_figure(split, predictions)),
        paths.IMPORTANCE_FIGURE: png_bytes(importance_figure(found)),
    }


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
    expected = {paths.live_dir(name) for name in models}
    for name in models:
        expected |= {paths.predictions_file(name), paths.importance_file(name)}
    return sorted(
        path
        for folder in (paths.PREDICTIONS_DIR, paths.LIVE_DIR)
        if folder.is_dir()
        for path in folder.iterdir()
        if path.name != ".gitignore" and path not in expected and _holds_files(path)
    )


def _holds_files(path: Path) -> bool:
    """A file, or a folder with a file somewhere in it: DVC hashes no empty folder (`dvc checkout` leaves
    the folders of the outputs it takes away)."""
    return not path.is_dir() or any(p.is_file() for p in path.rglob("*"))


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
    found = {
        name: _load_train_output(paths.importance_file(name), name, lambda p: json.loads(p.read_text("utf-8")))
        for name in params.models
    }
    losses = {name: read_losses(name) for name in params.models}

    for path, data in draw(split, predictions, found).items():
        write_bytes(path, data)
    write_text(paths.LOSSES_FILE, overlay_losses(losses))
    figures = ", ".join(str(path) for path in (paths.FIT_FIGURE, paths.PREDICTED_FIGURE, paths.RESIDUALS_FIGURE,
                                                paths.IMPORTANCE_FIGURE))  # fmt: skip
    print(f"plot: wrote {figures} and {paths.LOSSES_FILE}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
