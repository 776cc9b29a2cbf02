"""The prepared split: what `prepare` writes into data/prepared and every later stage maps from disk.

No CSV reading here (that is stages/csv_input.py, prepare's alone) and no torch: `evaluate` and `plot`
import this module and must start fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import UserError
from stages.paths import PREPARED_DIR

SPLIT_ARRAYS = ("X_train", "y_train", "X_test", "y_test")


@dataclass(frozen=True)
class Scaling:
    """Training-split mean and standard deviation of each feature and of the target."""

    x_mean: tuple[float, ...]
    x_std: tuple[float, ...]
    y_mean: float
    y_std: float

    def to_dict(self) -> dict:
        return {"x_mean": list(self.x_mean), "x_std": list(self.x_std), "y_mean": self.y_mean, "y_std": self.y_std}

    @classmethod
    def from_dict(cls, raw: dict) -> Scaling:
        return cls(tuple(raw["x_mean"]), tuple(raw["x_std"]), raw["y_mean"], raw["y_std"])


@dataclass(frozen=True)
class SplitPlan:
    """Which rows of the table go to each split (each in file order), and the scaling to store."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    scaling: Scaling | None


@dataclass(frozen=True)
class Split:
    """Train and test rows of a table (test may be empty), with the scaling the models must use."""

    features: tuple[str, ...]
    target: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    scaling: Scaling | None


def seeded_split(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): row indices, each in order; ceil(fraction * n_rows) rows held out at random, seeded.
    prepare holds out the test split this way; train the validation rows of early stopping, from the
    training split (evaluate finds them again from the same fraction and seed)."""
    n_held = math.ceil(fraction * n_rows) if fraction > 0 else 0
    order = np.random.default_rng(seed).permutation(n_rows)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def sample_rows(n_rows: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `limit` rows, in order: all of them, or a seeded random sample (for plots)."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=limit, replace=False))


def _take_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows] as a new row-major float64 array, gathered one column at a time (from a
    column-major table that is several times faster than values[rows])."""
    if values.ndim == 1:
        return np.asarray(values[rows], dtype=np.float64)
    out = np.empty((len(rows), values.shape[1]), dtype=np.float64)
    for j in range(values.shape[1]):
        out[:, j] = values[:, j][rows]
    return out


def write_split(
    folder: Path, X: np.ndarray, y: np.ndarray, features: tuple[str, ...], target: str, plan: SplitPlan
) -> None:
    """Write the splits of (X, y) as .npy arrays plus meta.json into an (empty, temporary) folder.

    One split array is materialised at a time, so the peak is the table plus its largest split. The
    arrays are row-major whatever the table's layout.
    """
    for name, rows in (("train", plan.train_rows), ("test", plan.test_rows)):
        for prefix, values in (("X", X), ("y", y)):
            with (folder / f"{prefix}_{name}.npy").open("wb") as handle:
                np.save(handle, _take_rows(values, rows))
    meta = {
        "features": list(features),
        "target": target,
        "n_train": int(len(plan.train_rows)),
        "n_test": int(len(plan.test_rows)),
        "scaling": plan.scaling.to_dict() if plan.scaling else None,
    }
    text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n"
    (folder / "meta.json").write_text(text, encoding="utf-8")


def read_split(folder: str | Path = PREPARED_DIR, mmap: bool = False) -> Split:
    """Load what `prepare` wrote; with mmap=True the arrays are read-only views of the files, paged in
    as used and released with the Split (so a stage can convert them without holding a second copy)."""
    folder = Path(folder)
    mode = "r" if mmap else None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode=mode) for name in SPLIT_ARRAYS}
    except FileNotFoundError as err:
        raise UserError(f"{err.filename}: missing; run `dvc repro prepare` first") from None
    scaling = Scaling.from_dict(meta["scaling"]) if meta["scaling"] else None
    return Split(features=tuple(meta["features"]), target=meta["target"], scaling=scaling, **arrays)
