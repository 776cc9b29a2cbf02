"""Stage `plot`: the figures, as PNG files (the data with every model's fitted curve, or with several features
the partial dependence on the most important column; predicted against actual; residuals; permutation
importance), and every model's loss per epoch in one file for DVC's overlay chart.

It reads what the model stages keep in git, each model's own files: its metrics (importance and partial
dependence among them) and predicted-vs-actual sample from `evaluate`, its loss per epoch from DVCLive. A
model removed from params.yaml leaves its files in those folders, committed with them, so the folders hash
the same in a fresh clone of the commit: nothing needs deleting when the set of models changes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from stages import paths
from stages.errors import UserError, run_stage
from stages.io import write_bytes, write_text
from stages.params import load_params
from stages.paths import PREPARED_DIR
from stages.prepared import read_split

# Drop the matplotlib version from the PNG so a matplotlib upgrade alone does not change the bytes.
PNG_METADATA = {"Software": None}
PANELS_PER_ROW = 4
IMPORTANCE_COLUMNS = 15  # the importance chart shows this many columns, the most important on average
Sample = dict[str, dict[str, np.ndarray]]  # split -> {"actual", "predicted", ["x"]}: evaluate's sample of a model


def _plain(text: str) -> str:
    """A name from the CSV or params.yaml as matplotlib should print it: `$` is not the start of mathtext
    (a column `cost_$_per_$_unit` would be an error)."""
    return text.replace("$", r"\$")


def _read(path: Path, model: str, stage: str, load):
    """load(path), or the one-line error saying which stage of the model to run."""
    try:
        return load(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing; run `dvc repro {stage}@{model}` first") from None


def read_sample(name: str) -> Sample:
    """evaluate's predicted-vs-actual sample of a model (plots/predicted/<name>.csv), split by split."""
    text = _read(paths.predicted_file(name), name, "evaluate", lambda p: p.read_text("utf-8"))
    header, *rows = list(csv.reader(io.StringIO(text)))
    sample: Sample = {}
    for row in rows:
        values = sample.setdefault(row[0], {column: [] for column in header[1:]})
        for column, cell in zip(header[1:], row[1:], strict=True):
            values[column].append(float(cell))
    return {split: {column: np.array(cells) for column, cells in values.items()} for split, values in sample.items()}


def _limits(values) -> tuple[float, float]:
    low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    margin = 0.03 * (high - low) or 0.5
    return low - margin, high + margin


def _points(ax, x: np.ndarray, y: np.ndarray, split: str) -> None:
    style = {"mfc": "none", "mec": "black"} if split == "test" else {"color": "b" if split == "train" else "g"}
    ax.plot(x, y, "o", ms=4, alpha=1.0 if len(x) <= 500 else 0.4, label=f"{split} rows", **style)


def fitted_curves_figure(features, target: str, samples: dict[str, Sample]):
    """The data points (one feature: evaluate's sample, train and test apart) and each model's predictions
    joined in order of x."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for split, part in next(iter(samples.values())).items():  # the same rows in every model's sample
        _points(ax, part["x"], part["actual"], split)
    for name, sample in samples.items():
        x = np.concatenate([part["x"] for part in sample.values()])
        predicted = np.concatenate([part["predicted"] for part in sample.values()])
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], predicted[order], "-", label=_plain(f"{name} fit"))
    ax.set_xlabel(_plain(features[0]))
    ax.set_ylabel(_plain(target))
    ax.set_title(_plain(f"{target} against {features[0]}"))
    ax.legend()
    return fig


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


def predicted_vs_actual_figure(target: str, samples: dict[str, Sample]):
    """A panel per model and split (train, validation, test: the rows apart), all on the same axes, each with
    the y = x line."""
    panels = [(name, split, part) for name, sample in samples.items() for split, part in sample.items()]
    fig, axes = _panels(len(panels))
    limits = _limits([part[key] for _, _, part in panels for key in ("actual", "predicted")])
    for ax, (name, split, part) in zip(axes, panels, strict=True):
        _points(ax, part["actual"], part["predicted"], split)
        ax.plot(limits, limits, "k--", lw=1, label="y = x")
        ax.set_title(_plain(f"{name}, {split} ({len(part['actual']):,} rows shown)"))
        ax.set_xlabel(_plain(f"actual {target}"))
        ax.set_ylabel(_plain(f"predicted {target}"))
        ax.legend(loc="upper left")
    axes[0].set_xlim(limits)
    axes[0].set_ylim(limits)
    fig.tight_layout()
    return fig


def residuals_figure(target: str, samples: dict[str, Sample]):
    """Per model, actual - predicted against predicted on the test rows (the training rows without a test
    split), all panels on the same axes, with the zero line."""
    split = "test" if all("test" in sample for sample in samples.values()) else "train"
    fig, axes = _panels(len(samples))
    for ax, (name, sample) in zip(axes, samples.items(), strict=True):
        part = sample[split]
        _points(ax, part["predicted"], part["actual"] - part["predicted"], split)
        ax.axhline(0.0, color="k", ls="--", lw=1)
        ax.set_title(_plain(f"{name}: residuals, {split} rows"))
        ax.set_xlabel(_plain(f"predicted {target}"))
        ax.set_ylabel(_plain(f"actual - predicted {target}"))
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


def dependence_figure(target: str, found: dict[str, dict]):
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
            text = any(isinstance(value, str) for value in points["grid"])  # a text column's categories
            x = np.arange(len(points["grid"])) if text else points["grid"]
            ax.plot(x, points["mean"], "o-" if text or len(x) < 3 else "-", label=_plain(name))
            if text:
                labels = [_plain(str(label)) for label in points["grid"]]
                ax.set_xticks(np.arange(len(labels)), labels, rotation=45, ha="right")
    ax.set_xlabel(_plain(column))
    ax.set_ylabel(_plain(f"mean predicted {target}"))
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


def draw(features, target: str, samples: dict[str, Sample], found: dict[str, dict]) -> dict[Path, bytes]:
    """Every figure as PNG bytes, by path. `samples`: each model's predicted-vs-actual sample; `found`:
    each model's metrics (importance and partial dependence)."""
    import matplotlib

    matplotlib.use("Agg")
    one_feature = len(features) == 1
    fit = fitted_curves_figure(features, target, samples) if one_feature else dependence_figure(target, found)
    return {
        paths.FIT_FIGURE: png_bytes(fit),
        paths.PREDICTED_FIGURE: png_bytes(predicted_vs_actual_figure(target, samples)),
        paths.RESIDUALS_FIGURE: png_bytes(residuals_figure(target, samples)),
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
        rows = list(csv.reader(io.StringIO(_read(path, name, "train", lambda p: p.read_text("utf-8"))),
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.plot", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--prepared", default=str(PREPARED_DIR), help=f"prepared splits (default: {PREPARED_DIR})")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    split = read_split(args.prepared, mmap=True)  # its column names
    samples = {name: read_sample(name) for name in params.models}
    found = {
        name: _read(paths.metrics_file(name), name, "evaluate", lambda p: json.loads(p.read_text("utf-8")))
        for name in params.models
    }
    losses = {name: read_losses(name) for name in params.models}

    figures = draw(split.features, split.target, samples, found)
    for path, data in figures.items():
        write_bytes(path, data)
    write_text(paths.LOSSES_FILE, overlay_losses(losses))
    print(f"plot: wrote {', '.join(map(str, figures))} and {paths.LOSSES_FILE}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
