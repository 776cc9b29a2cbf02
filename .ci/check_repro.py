"""Reproduce the pipeline and fail if dvc.lock or any output differs from what is committed.

Run from the project root with the project's environment on PATH (`make check-repro` does that).
Prints which stages were out of date and why, which outputs changed, and `dvc metrics diff` against HEAD.
"""
from __future__ import annotations

import subprocess
import sys

import yaml


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def lock_outputs(text: str | None) -> dict[str, str]:
    """Map every output path in a dvc.lock text to its hash."""
    if not text:
        return {}
    outs = {}
    for stage, entry in (yaml.safe_load(text) or {}).get("stages", {}).items():
        for out in entry.get("outs", []):
            outs[out["path"]] = out.get("md5") or out.get("hash", "?")
    return outs


def main() -> int:
    committed = run("git", "show", "HEAD:dvc.lock", check=False)
    if committed.returncode != 0:
        print("check-repro: no committed dvc.lock at HEAD; run `dvc repro` and commit dvc.lock", file=sys.stderr)
        return 1
    status = run("dvc", "status", check=False)
    print("check-repro: dvc status before reproducing:")
    print("  " + status.stdout.strip().replace("\n", "\n  "))

    repro = subprocess.run(["dvc", "repro"], text=True, capture_output=True)
    lines = repro.stdout.splitlines()
    ran = [line.split("'")[1] for line in lines if line.startswith("Running stage '")]
    restored = [line.split("'")[1] for line in lines if "skipping run" in line and line.startswith("Stage '")]
    print(f"check-repro: dvc repro ran {len(ran)} stage(s): {', '.join(ran) or 'none'}")
    if restored:
        print(f"check-repro: restored from DVC's run cache: {', '.join(restored)}")
    if repro.returncode != 0:
        print(repro.stdout + repro.stderr, file=sys.stderr)
        print("check-repro: FAILED: dvc repro did not succeed", file=sys.stderr)
        return 1

    before, after = lock_outputs(committed.stdout), lock_outputs(open("dvc.lock", encoding="utf-8").read())
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    lock_diff = run("git", "diff", "--stat", "HEAD", "--", "dvc.lock", check=False).stdout.strip()
    dirty = run("git", "status", "--porcelain", "--untracked-files=no", check=False).stdout.rstrip()
    if not changed and not lock_diff and not dirty:
        print("check-repro: OK: dvc.lock and every output match the commit")
        return 0

    print("check-repro: FAILED: the reproduced pipeline differs from the commit")
    for path in changed:
        print(f"  output {path}: committed {before.get(path, '(absent)')}, reproduced {after.get(path, '(absent)')}")
    if dirty:
        print("  changed files in git:\n    " + dirty.replace("\n", "\n    "))
    metrics = run("dvc", "metrics", "diff", "HEAD", check=False)
    print("dvc metrics diff HEAD:")
    print(metrics.stdout.strip() or "  (no metric changed)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
