"""The pipeline against a scikit-learn script on a mixed table: numbers with missing cells, text columns.

    python benchmarks/bench_mixed.py [--rows 1000000 10000000] [--tables DIR]

For each row count: writes a deterministic table (kept in --tables DIR for the next run): 6 N(0, 1) numeric
columns n1..n6, each cell missing (empty) with probability 0.05, and 2 text columns, ca (12 categories) and
cb (200), uniformly drawn; y = a linear part + sin(2 n1) + 0.5 n2 n3 + one effect per category + 0.1 noise.
Then a fresh copy of the project with only data.path, data.target and data.features: all set (test_size
0.2; the benchmark's models: linear `exact`, MLP [10] tanh, batch 1024, 5 epochs, lr 0.01) runs cold (`dvc
repro --force` in a `git clone` once its dvc.lock is committed, as in bench_scale.py), against
benchmarks/sklearn_mixed.py on the same file (ColumnTransformer, LinearRegression, MLPRegressor), each
under /usr/bin/time. Prints wall time, peak RSS (largest single process) and test MSE side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import clone_project  # noqa: E402
from bench_scale import committed_clone, place, test_mse, timed  # noqa: E402

HERE = Path(__file__).resolve().parent
NUMBERS = [f"n{i}" for i in range(1, 7)]
CATEGORIES = {"ca": 12, "cb": 200}


def write_mixed_table(path: Path, n_rows: int) -> None:
    """The mixed table; the same file for the same n_rows (200,000 rows at a time from one generator)."""
    rng = np.random.default_rng(2024)
    weights = rng.uniform(-2, 2, len(NUMBERS))
    effects = {name: rng.normal(0, 1, count) for name, count in CATEGORIES.items()}
    labels = {
        name: np.array([f"{name}{k:03d}" for k in range(count)], dtype=object) for name, count in CATEGORIES.items()
    }
    with path.open("w") as handle:
        handle.write(",".join([*NUMBERS, *CATEGORIES, "y"]) + "\n")
        for start in range(0, n_rows, 200_000):
            m = min(200_000, n_rows - start)
            X = rng.standard_normal((m, len(NUMBERS)))
            codes = {name: rng.integers(0, count, m) for name, count in CATEGORIES.items()}
            y = X @ weights + np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(m)
            y += sum(effects[name][codes[name]] for name in CATEGORIES)
            cells = np.char.mod("%.6g", X).astype(object)
            cells[rng.random(X.shape) < 0.05] = ""
            columns = [cells, *(labels[name][codes[name]][:, None] for name in CATEGORIES)]
            rows = np.column_stack([*columns, np.char.mod("%.6g", y).astype(object)])
            handle.write("\n".join(",".join(row) for row in rows) + "\n")


def mixed_table(folder: Path, n_rows: int) -> Path:
    path = folder / f"mixed_{n_rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        write_mixed_table(partial, n_rows)
        partial.rename(path)
        print(f"(wrote {path}, {path.stat().st_size / 2**30:.2f} GiB, in {time.perf_counter() - started:.0f} s)")
    return path


def pipeline_params(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(path="data/bench.csv", target="y", features="all", test_size=0.2)  # the rest: defaults
    params["train"].update(log_every=1)
    params["models"] = {
        "linear": {"kind": "linear", "solver": "exact"},
        "mlp": {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 5, "batch_size": 1024},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--tables", type=Path, help="keep the generated tables in this folder (default: temporary)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.tables) as tmp:
        for n_rows in args.rows:
            csv = mixed_table(args.tables or Path(tmp), n_rows)
            first = Path(tmp) / f"mixed_{n_rows}"
            first.mkdir()
            clone_project(first)
            pipeline_params(first)
            place(csv, first / "data" / "bench.csv")
            timed(["dvc", "repro"], first)  # for the dvc.lock the clone starts from
            s_wall, s_rss, out = timed([sys.executable, str(HERE / "sklearn_mixed.py"), str(csv)], first)
            project = committed_clone(first, csv)
            shutil.rmtree(first)
            p_wall, p_rss, _ = timed(["dvc", "repro", "--force"], project)
            results[n_rows] = (p_wall, p_rss, s_wall, s_rss, test_mse(project), json.loads(out))
            shutil.rmtree(project)
            print(f"{n_rows:,} rows: pipeline {p_wall:.2f} s {p_rss:.0f} MiB, scikit-learn {s_wall:.2f} s {s_rss:.0f} "
                  f"MiB", flush=True)  # fmt: skip
    print(
        "\n| rows | pipeline cold | sklearn | time ratio | pipeline peak RSS | sklearn peak RSS | memory ratio "
        "| linear test MSE (ours / sklearn) | MLP test MSE (ours / sklearn) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n_rows, (p_wall, p_rss, s_wall, s_rss, ours, sk) in results.items():
        mse = " | ".join(f"{ours[m]:.5f} / {sk[m]:.5f} ({ours[m] / sk[m] - 1:+.2%})" for m in ("linear", "mlp"))
        print(f"| {n_rows:,} | {p_wall:.2f} s | {s_wall:.2f} s | {p_wall / s_wall:.2f} | {p_rss:.0f} MiB | "
              f"{s_rss:.0f} MiB | {p_rss / s_rss:.2f} | {mse} |")  # fmt: skip


if __name__ == "__main__":
    main()
