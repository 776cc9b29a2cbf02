"""The whole pipeline against a scikit-learn script on a large synthetic table.

    python benchmarks/bench_scale.py [--rows 1000000 10000000] [--huge] [--tables DIR] [--stages]
                                     [--draws N] [--plateau-seed 20]

For each row count: writes a deterministic table (8 standard-normal features, a nonlinear target; kept
in --tables DIR for the next run) and points a fresh copy of the project at it (linear `exact`, MLP hidden
[10] tanh, batch 1024, 5 epochs, lr 0.01, test_size 0.2). Then, each under /usr/bin/time:
  first run   `dvc repro` right after pointing data.path at the table (DVC hashes a CSV its dvc.lock has not
              seen twice, the first time in its legacy md5-dos2unix way; README "Large tables");
  script      benchmarks/sklearn_baseline.py (LinearRegression, MLPRegressor with the same settings; reading
              float32 from 10^8 rows);
  cold        `dvc repro --force` in a `git clone` of that project once its dvc.lock is committed: what a
              teammate or CI gets, with an empty DVC cache and no hashes DVC remembers;
  edit loop   models.mlp.lr 0.01 -> 0.02 and `dvc repro` in the clone;
and prints wall time, peak RSS (largest single process) and test MSE side by side, with the ratios of the
cold run. --huge adds 10^8 rows (an 11 GiB CSV); --stages also times each stage alone.

Below 10^8 rows the MLP is compared on a second table too, the "plateau" table (8 N(0, 1) features, a
linear part with coefficients drawn in [-3, 3] from --plateau-seed, plus 2 sin(2 x1) + 0.5 x2 x3 and 0.1
noise), where an MLP started badly stalls on a plateau: the same settings, seeds 0 to --draws - 1 on both
sides. Every MLP run prints each epoch's training loss of both sides (MSE over the epoch's batches), so a
stall shows.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import STAGE_COMMANDS, clone_project, env  # noqa: E402

from tests.helpers import set_param  # noqa: E402

HERE = Path(__file__).resolve().parent
FEATURES = [f"f{i}" for i in range(1, 9)]
FLOAT32_FROM = 100_000_000  # the scikit-learn script reads float32 from this many rows (float64 would not fit)


def write_rows(path: Path, n_rows: int, rng: np.random.Generator, target) -> None:
    """8 N(0, 1) feature columns and y = target(X) + 0.1 noise, 200,000 rows at a time (features, then that
    chunk's noise, from `rng`)."""
    with path.open("w") as handle:
        handle.write(",".join([*FEATURES, "y"]) + "\n")
        for start in range(0, n_rows, 200_000):
            X = rng.standard_normal((min(200_000, n_rows - start), 8))
            y = target(X) + 0.1 * rng.standard_normal(len(X))
            np.savetxt(handle, np.column_stack([X, y]), delimiter=",", fmt="%.10g")


def write_table(path: Path, n_rows: int) -> None:
    """8 N(0, 1) features, y nonlinear in them plus noise; the same file for the same n_rows."""

    def target(X: np.ndarray) -> np.ndarray:
        return (
            np.sin(2 * X[:, 0])
            + X[:, 1] * X[:, 2]
            + 0.5 * X[:, 3] ** 2
            + np.tanh(X[:, 4])
            + 0.3 * X[:, 5]
            - 0.2 * X[:, 6]
            + 0.1 * X[:, 7]
        )

    write_rows(path, n_rows, np.random.default_rng(12345), target)


def write_plateau_table(path: Path, n_rows: int, coefficient_seed: int) -> None:
    """The plateau table: y = X c + 2 sin(2 x1) + 0.5 x2 x3 + 0.1 noise, c uniform in [-3, 3]."""
    coefficients = np.random.default_rng(coefficient_seed).uniform(-3, 3, 8)

    def target(X: np.ndarray) -> np.ndarray:
        return X @ coefficients + 2 * np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]

    write_rows(path, n_rows, np.random.default_rng(coefficient_seed + 1), target)


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB (largest process in the tree), stdout."""
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", *cmd], cwd=cwd, env=env(), text=True, capture_output=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    rss_kib = int(re.findall(r"MAXRSS (\d+)", result.stderr)[-1])
    return wall, rss_kib / 1024, result.stdout


def pipeline_params(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(
        path="data/bench.csv", features=FEATURES, target="y", test_size=0.2, split_seed=0, standardize=False
    )
    params["train"].update(log_every=1)
    params["models"] = {
        "linear": {"kind": "linear", "solver": "exact"},
        "mlp": {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 5, "batch_size": 1024},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def table(folder: Path, n_rows: int, plateau_seed: int | None = None) -> Path:
    """The benchmark table (or with `plateau_seed`, the plateau table) of n_rows rows in `folder`, written
    once and kept there."""
    path = folder / (f"bench_{n_rows}.csv" if plateau_seed is None else f"plateau_{plateau_seed}_{n_rows}.csv")
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        if plateau_seed is None:
            write_table(partial, n_rows)
        else:
            write_plateau_table(partial, n_rows, plateau_seed)
        partial.rename(path)
        print(f"(wrote {path}, {path.stat().st_size / 2**30:.2f} GiB, in {time.perf_counter() - started:.0f} s)")
    return path


def place(source: Path, dest: Path) -> None:
    """The table as the project's data/bench.csv: a hard link where it can be (no copy of gigabytes)."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def test_mse(project: Path) -> dict[str, float]:
    return {m: json.loads((project / "metrics" / f"{m}.json").read_text())["test"]["mse"] for m in ("linear", "mlp")}


def epoch_losses(project: Path) -> list[float]:
    """The MLP's training loss per epoch, as train@mlp wrote it for the loss chart."""
    rows = (project / "plots" / "loss" / "mlp.csv").read_text().splitlines()[1:]
    return [float(row.split(",")[1]) for row in rows]


MLPRun = tuple[float, list[float]]  # test MSE, training loss per epoch


def mlp_draws(project: Path, csv: Path, seeds: list[int]) -> tuple[list[MLPRun], list[MLPRun]]:
    """The MLP's test MSE and losses for these seeds on both sides (train.seed, random_state): after 5
    epochs it depends on the draw by more than 10%, so one draw against one draw says little. Leaves
    train.seed at 0."""
    ours = []
    for seed in seeds:
        set_param(project, "train.seed", seed)
        for module in ("stages.train", "stages.evaluate"):
            timed([sys.executable, "-m", module, "mlp"], project)
        ours.append((test_mse(project)["mlp"], epoch_losses(project)))
    set_param(project, "train.seed", 0)
    script = [sys.executable, str(HERE / "sklearn_baseline.py"), str(csv), "--mlp-seeds", *map(str, seeds)]
    sk = json.loads(timed(script, project)[2])
    return ours, list(zip(sk["mlp"], sk["mlp_losses"], strict=True))


def print_draws(label: str, seeds: list[int], ours: list[MLPRun], sk: list[MLPRun]) -> None:
    """Each seed's test MSE and per-epoch losses on both sides, and the ratio of the test MSEs."""
    print(f"    {label}:", flush=True)
    for seed, (our_mse, our_losses), (sk_mse, sk_losses) in zip(seeds, ours, sk, strict=True):
        print(
            f"      seed {seed}: test MSE ours {our_mse:.5f}, scikit-learn {sk_mse:.5f} ({our_mse / sk_mse:.2f}x); "
            f"loss per epoch ours {' '.join(f'{v:.4f}' for v in our_losses)}; "
            f"scikit-learn {' '.join(f'{v:.4f}' for v in sk_losses)}",
            flush=True,
        )


def plateau_comparison(project: Path, csv: Path, seeds: list[int]) -> tuple[list[MLPRun], list[MLPRun]]:
    """The MLP on the plateau table `csv`, in `project` (prepare run by hand, then each seed)."""
    place(csv, project / "data" / "plateau.csv")
    set_param(project, "data.path", "data/plateau.csv")
    timed([sys.executable, "-m", "stages.prepare"], project)
    return mlp_draws(project, csv, seeds)


def committed_clone(project: Path, csv: Path) -> Path:
    """`git clone` of `project` once its dvc.lock (which now records the table) is committed, pointed at the
    same table: no DVC cache, no outputs, and DVC's remembered hashes are per folder, so none either."""
    sh = functools.partial(subprocess.run, cwd=project, check=True, capture_output=True)
    sh(["git", "add", "dvc.lock", "params.yaml"])
    sh(["git", "commit", "-q", "-m", "pointed at the benchmark table"])
    clone = project.with_name(project.name + "_clone")
    sh(["git", "clone", "-q", str(project), str(clone)])
    place(csv, clone / "data" / "bench.csv")
    return clone


def mlp_cell(ours: dict, sk: dict) -> str:
    """Seed 0 of each, or the median of the draws where there are several."""
    if "mlp_draws" in ours:
        a, b = float(np.median(ours["mlp_draws"])), float(np.median(sk["mlp_draws"]))
        return f"{a:.5f} / {b:.5f} ({a / b - 1:+.2%}), median of {len(ours['mlp_draws'])} seeds"
    return f"{ours['mlp']:.5f} / {sk['mlp']:.5f} ({ours['mlp'] / sk['mlp'] - 1:+.2%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--huge", action="store_true", help="also 10^8 rows (a 11 GiB CSV; about an hour)")
    parser.add_argument("--tables", type=Path, help="keep the generated tables in this folder (default: temporary)")
    parser.add_argument("--stages", action="store_true", help="also time each stage alone (runs them again)")
    parser.add_argument(
        "--draws",
        type=int,
        help="MLP seeds per side below 10^8 rows (median compared; default 9 up to 10^6 rows, where the test MSE "
        "after 5 epochs depends on the draw by up to 2x, and 3 above)",
    )
    parser.add_argument(
        "--plateau-seed", type=int, default=20, help="draws the plateau table's linear coefficients (default 20)"
    )
    args = parser.parse_args()
    sizes = args.rows + ([100_000_000] if args.huge else [])

    results, plateaus = {}, {}
    with tempfile.TemporaryDirectory(dir=args.tables) as tmp:
        tables = args.tables or Path(tmp)
        for n_rows in sizes:
            csv = table(tables, n_rows)
            first = Path(tmp) / f"project_{n_rows}"  # a fresh copy of the project per size: a cold cache
            first.mkdir()
            clone_project(first)
            pipeline_params(first)
            place(csv, first / "data" / "bench.csv")
            f_wall, _, _ = timed(["dvc", "repro"], first)
            script = [sys.executable, str(HERE / "sklearn_baseline.py"), str(csv)]
            s_wall, s_rss, out = timed(script + (["--float32"] if n_rows >= FLOAT32_FROM else []), first)
            sk = json.loads(out)
            project = committed_clone(first, csv)
            shutil.rmtree(first)
            p_wall, p_rss, _ = timed(["dvc", "repro", "--force"], project)
            ours = test_mse(project)
            ours["mlp_losses"] = epoch_losses(project)
            set_param(project, "models.mlp.lr", 0.02)  # the edit loop: one model's params, then `dvc repro`
            e_wall, _, e_out = timed(["dvc", "repro"], project)
            reran = re.findall(r"Running stage '([^']+)'", e_out)
            set_param(project, "models.mlp.lr", 0.01)  # back to the benchmark's settings for what follows
            results[n_rows] = (p_wall, p_rss, s_wall, s_rss, ours, sk, e_wall, f_wall)
            print(
                f"{n_rows:>11,} rows: cold pipeline {p_wall:7.2f} s {p_rss:7.0f} MiB | scikit-learn {s_wall:7.2f} s "
                f"{s_rss:7.0f} MiB | first run {f_wall:7.2f} s | edit loop {e_wall:6.2f} s (ran {', '.join(reran)}) "
                f"| test MSE linear {ours['linear']:.5f} vs {sk['linear']:.5f}, mlp {ours['mlp']:.5f} vs "
                f"{sk['mlp']:.5f}",
                flush=True,
            )
            if args.stages:
                stages = {name: timed([sys.executable, *cmd], project)[:2] for name, cmd in STAGE_COMMANDS}
                print(
                    "    each stage alone: "
                    + ", ".join(f"{name} {wall:.2f} s {rss:.0f} MiB" for name, (wall, rss) in stages.items())
                    + f"; dvc itself in the cold run {p_wall - sum(wall for wall, _ in stages.values()):.2f} s",
                    flush=True,
                )
            draws_ours, draws_sk = [(ours["mlp"], ours["mlp_losses"])], [(sk["mlp"], sk["mlp_losses"])]
            draws = args.draws or (9 if n_rows <= 1_000_000 else 3)
            if n_rows < FLOAT32_FROM and draws > 1:
                more_ours, more_sk = mlp_draws(project, csv, list(range(1, draws)))
                draws_ours, draws_sk = draws_ours + more_ours, draws_sk + more_sk
                ours["mlp_draws"], sk["mlp_draws"] = [m for m, _ in draws_ours], [m for m, _ in draws_sk]
            print_draws("MLP on the benchmark table", list(range(len(draws_ours))), draws_ours, draws_sk)
            if n_rows < FLOAT32_FROM:
                seeds = list(range(max(1, draws)))
                plateau = table(tables, n_rows, args.plateau_seed)
                plateau_ours, plateau_sk = plateau_comparison(project, plateau, seeds)
                print_draws(f"MLP on the plateau table (seed {args.plateau_seed})", seeds, plateau_ours, plateau_sk)
                plateaus[n_rows] = ([m for m, _ in plateau_ours], [m for m, _ in plateau_sk])
            shutil.rmtree(project)

    print(
        "\n| rows | pipeline cold | sklearn | time ratio | pipeline peak RSS | sklearn peak RSS | memory ratio "
        "| edit loop (ratio) | first run (ratio) | linear test MSE (ours / sklearn) | MLP test MSE (ours / sklearn) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n_rows, (p_wall, p_rss, s_wall, s_rss, ours, sk, e_wall, f_wall) in results.items():
        print(
            f"| {n_rows:,} | {p_wall:.2f} s | {s_wall:.2f} s | {p_wall / s_wall:.2f} | {p_rss:.0f} MiB | "
            f"{s_rss:.0f} MiB | {p_rss / s_rss:.2f} | {e_wall:.2f} s ({e_wall / s_wall:.2f}) | "
            f"{f_wall:.2f} s ({f_wall / s_wall:.2f}) | "
            f"{ours['linear']:.5f} / {sk['linear']:.5f} ({ours['linear'] / sk['linear'] - 1:+.2%}) | "
            f"{mlp_cell(ours, sk)} |"
        )
    if plateaus:
        print(
            f"\n| rows | plateau table (seed {args.plateau_seed}): MLP test MSE per seed, ours / sklearn (ratio) "
            "| medians (ratio) |"
        )
        print("|---|---|---|")
        for n_rows, (mine, theirs) in plateaus.items():
            cells = ", ".join(f"{a:.5f} / {b:.5f} ({a / b:.2f})" for a, b in zip(mine, theirs, strict=True))
            a, b = float(np.median(mine)), float(np.median(theirs))
            print(f"| {n_rows:,} | {cells} | {a:.5f} / {b:.5f} ({a / b:.2f}) |")


if __name__ == "__main__":
    main()
