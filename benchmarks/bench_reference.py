"""Time a forced `dvc repro` of the whole pipeline against the two reference programs run back to back.

    python benchmarks/bench_reference.py [REFERENCE_DIR_OR_SCRIPTS ...] [--rounds N]

Both sides run in this process tree with the same interpreter, alternating order each round; the
script prints every round, the medians, the ratio pipeline / reference (target <= 1.0), and where
the pipeline's time goes: each stage run on its own, and dvc's own share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import clone_project  # noqa: E402  (the same copy the end-to-end tests use)

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"
STAGE_COMMANDS = [
    ("prepare", ["-m", "stages.prepare"]),
    ("train@linear", ["-m", "stages.train", "linear"]),
    ("train@mlp", ["-m", "stages.train", "mlp"]),
    ("evaluate@linear", ["-m", "stages.evaluate", "linear"]),
    ("evaluate@mlp", ["-m", "stages.evaluate", "mlp"]),
    ("plot", ["-m", "stages.plot"]),
]


def env() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PATH"] = str(Path(sys.executable).parent) + os.pathsep + environment.get("PATH", "")
    environment["DVC_NO_ANALYTICS"] = "1"
    return environment


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def reference_scripts(paths: list[str]) -> list[Path]:
    scripts: list[Path] = []
    for given in paths or [str(DEFAULT_REFERENCE)]:
        path = Path(given)
        scripts += sorted(path.glob("seed_*.py")) if path.is_dir() else [path]
    missing = [str(p) for p in scripts if not p.is_file()]
    if not scripts or missing:
        sys.exit(f"error: reference programs not found: {', '.join(missing) or paths}")
    return scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", nargs="*", help=f"reference folder or scripts (default: {DEFAULT_REFERENCE})")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: 5)")
    args = parser.parse_args()
    scripts = reference_scripts(args.reference)

    with tempfile.TemporaryDirectory() as tmp:
        project, scratch = Path(tmp) / "project", Path(tmp) / "scratch"
        project.mkdir()
        scratch.mkdir()
        clone_project(project)
        timed(["dvc", "repro", "--force"], project)  # warm-up: bytecode caches, file system
        for script in scripts:
            timed([sys.executable, str(script)], scratch)

        pipeline, reference = [], []
        for round_no in range(args.rounds):
            sides = [("pipeline", project), ("reference", scratch)]
            for side, cwd in sides if round_no % 2 == 0 else sides[::-1]:
                if side == "pipeline":
                    pipeline.append(timed(["dvc", "repro", "--force"], cwd))
                else:
                    reference.append(sum(timed([sys.executable, str(s)], cwd) for s in scripts))
            print(f"round {round_no + 1}: pipeline {pipeline[-1]:.2f} s, reference {reference[-1]:.2f} s", flush=True)

        stage_times = {
            name: statistics.median(timed([sys.executable, *cmd], project) for _ in range(3))
            for name, cmd in STAGE_COMMANDS
        }
        import_torch = statistics.median(timed([sys.executable, "-c", "import torch"], scratch) for _ in range(3))
        noop = statistics.median(timed([sys.executable, "-c", "pass"], scratch) for _ in range(3))

    p_med, r_med = statistics.median(pipeline), statistics.median(reference)
    print(f"\nreference programs: {', '.join(s.name for s in scripts)}")
    print(f"median: pipeline {p_med:.2f} s, reference {r_med:.2f} s over {args.rounds} rounds")
    print(f"ratio pipeline / reference: {p_med / r_med:.3f} (target <= 1.0)")
    print("\nwhere the pipeline's time goes (each stage alone, median of 3, imports included):")
    for name, seconds in stage_times.items():
        print(f"  {name:<16}{seconds:6.2f} s")
    stages_total = sum(stage_times.values())
    print(f"  {'stages total':<16}{stages_total:6.2f} s")
    print(f"  {'dvc itself':<16}{p_med - stages_total:6.2f} s (repro minus the stages)")
    print(f"for scale: python start-up {noop:.2f} s, `import torch` {import_torch:.2f} s")


if __name__ == "__main__":
    main()
