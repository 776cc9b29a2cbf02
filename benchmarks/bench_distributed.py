"""One training process against two (train.distributed.nproc_per_node: 2, torchrun workers) on this machine.

    python benchmarks/bench_distributed.py [--rows 1000000] [--tables DIR]

Writes the benchmark table of bench_scale.py (8 N(0,1) features, a nonlinear target), points a fresh copy
of the project at it, runs prepare, then for 1 and 2 workers times the train@mlp stage (`python -m
stages.train mlp`, workers' start-up included; MLP [128, 128] relu, batch 4096, 8 epochs, lr 0.01) and
evaluates it, and solves `exact` linear least squares both ways. The MLP runs `--repeats` times each way
(default 3), one process and two workers taking turns, and the medians are compared: this machine's
timings move by several percent from run to run. Prints every time, the medians' ratio, the test MSEs,
the largest relative difference of the exact coefficients, and whether every 2-worker run gave the same
model bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reference import clone_project, env  # noqa: E402
from bench_scale import FEATURES, place, table  # noqa: E402

from tests.helpers import set_param  # noqa: E402

MLP = {"kind": "mlp", "hidden": [128, 128], "activation": "relu", "lr": 0.01, "epochs": 8, "batch_size": 4096}


def run(project: Path, *args: str) -> float:
    import subprocess

    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *args], cwd=project, env=env(), text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tables", type=Path, help="keep the generated table in this folder (default: temporary)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of train@mlp each way (default: 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tables) as tmp:
        csv = table(args.tables or Path(tmp), args.rows)
        project = Path(tmp) / "project"
        project.mkdir()
        clone_project(project)
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["data"].update(path="data/bench.csv", features=FEATURES, target="y", test_size=0.2, standardize=False)
        params["train"].update(log_every=1)
        params["models"] = {"linear": {"kind": "linear", "solver": "exact"}, "mlp": MLP}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        place(csv, project / "data" / "bench.csv")
        run(project, "stages.prepare")

        seconds: dict[int, list[float]] = {1: [], 2: []}
        models: dict[int, set[bytes]] = {1: set(), 2: set()}
        mse, coefficients = {}, {}
        for repeat in range(args.repeats):
            for count in (1, 2):
                set_param(project, "train.distributed", {"nproc_per_node": count})
                seconds[count].append(run(project, "stages.train", "mlp"))
                models[count].add((project / "models" / "mlp.pt").read_bytes())
                print(f"{count} worker(s): train@mlp {seconds[count][-1]:.2f} s", flush=True)
                if repeat == 0:
                    run(project, "stages.evaluate", "mlp")
                    mse[count] = json.loads((project / "metrics" / "mlp.json").read_text())["test"]["mse"]
                    run(project, "stages.train", "linear")
                    coefficients[count] = json.loads((project / "models" / "linear.json").read_text())["coefficients"]

    one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
    worst = max(abs(coefficients[2][k] - v) / abs(v) for k, v in coefficients[1].items() if v)
    runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(seconds[1], seconds[2], strict=True))
    same = len(models[1]) == 1 and len(models[2]) == 1
    print(f"\nruns (1 process / 2 workers): {runs}")
    print(
        f"\n| rows | train@mlp, 1 process (median of {args.repeats}) | 2 workers | ratio | test MSE 1 / 2 | exact "
        f"coefficients, largest relative difference | repeated runs |\n|---|---|---|---|---|---|---|\n"
        f"| {args.rows:,} | {one:.2f} s | {two:.2f} s | {two / one:.2f} | {mse[1]:.6f} / {mse[2]:.6f} "
        f"({mse[2] / mse[1] - 1:+.2%}) | {worst:.1e} | {'byte-identical' if same else 'DIFFERENT'} |"
    )


if __name__ == "__main__":
    main()
