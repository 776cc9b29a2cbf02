"""One training process against two (train.distributed.nproc_per_node: 2, torchrun workers) on this machine.

    python benchmarks/bench_distributed.py [--rows 1000000] [--tables DIR]

Writes the benchmark table of bench_scale.py (8 N(0,1) features, a nonlinear target), points a fresh copy
of the project at it, runs prepare, then for 1 and 2 workers times the train@mlp stage (`python -m
stages.train mlp`, workers' start-up included; MLP [128, 128] relu, batch 4096, 8 epochs, lr 0.01) and
evaluates it, and solves `exact` linear least squares both ways. Prints the times, their ratio, the test
MSEs, the largest relative difference of the exact coefficients, and whether two 2-worker runs gave the
same model bytes.
"""

from __future__ import annotations

import argparse
import json
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

        results = {}
        for count in (1, 2):
            set_param(project, "train.distributed", {"nproc_per_node": count})
            seconds = run(project, "stages.train", "mlp")
            run(project, "stages.evaluate", "mlp")
            mse = json.loads((project / "metrics" / "mlp.json").read_text())["test"]["mse"]
            model = (project / "models" / "mlp.pt").read_bytes()
            run(project, "stages.train", "linear")
            coefficients = json.loads((project / "models" / "linear.json").read_text())["coefficients"]
            results[count] = (seconds, mse, model, coefficients)
            print(f"{count} worker(s): train@mlp {seconds:.2f} s, test MSE {mse:.6f}", flush=True)
        run(project, "stages.train", "mlp")
        same = (project / "models" / "mlp.pt").read_bytes() == results[2][2]

    (one, mse_one, _, c_one), (two, mse_two, _, c_two) = results[1], results[2]
    worst = max(abs(c_two[k] - v) / abs(v) for k, v in c_one.items() if v)
    print(
        f"\n| rows | train@mlp, 1 process | 2 workers | ratio | test MSE 1 / 2 | exact coefficients, largest relative "
        f"difference | 2 runs of 2 workers |\n|---|---|---|---|---|---|---|\n"
        f"| {args.rows:,} | {one:.2f} s | {two:.2f} s | {two / one:.2f} | {mse_one:.6f} / {mse_two:.6f} "
        f"({mse_two / mse_one - 1:+.2%}) | {worst:.1e} | {'byte-identical' if same else 'DIFFERENT'} |"
    )


if __name__ == "__main__":
    main()
