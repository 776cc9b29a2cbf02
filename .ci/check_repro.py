"""Reproduce the pipeline and fail if dvc.lock or any output differs from what is committed.

Run from the project root with the project's environment on PATH (`make check-repro` does that).
Prints which stages were out of date and why, which outputs changed, and `dvc metrics diff` against HEAD.
When outputs differ but every metric agrees within TOL (relative to max(|value|, 1), default 1e-6; set
the TOL environment variable), it says "within tolerance", so numerical noise from another CPU can be
told from a real change;
it still fails, since dvc.lock was not reproduced exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

DEFAULT_TOL = 1e-6


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


def lock_outputs(text: str | None) -> dict[str, str]:
    """Map every output path in a dvc.lock text to its hash."""
    if not text:
        return {}
    outs = {}
    for entry in (yaml.safe_load(text) or {}).get("stages", {}).values():
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
    tolerance = float(os.environ.get("TOL") or DEFAULT_TOL)
    largest, where = largest_relative_change(run("dvc", "metrics", "diff", "HEAD", "--json", check=False).stdout)
    if largest <= tolerance:
        print(
            f"check-repro: within tolerance: every metric agrees with the commit within TOL={tolerance:g} "
            f"(largest relative change {largest:.3g}{', in ' + where if where else ''}), which is what "
            "numerical noise from another CPU or library build looks like; the outputs' bytes still differ, "
            "so dvc.lock is not reproduced exactly"
        )
    else:
        print(
            f"check-repro: beyond tolerance: {where} changed by {largest:.3g} relative "
            f"(TOL={tolerance:g}): a real change; run `dvc repro` and commit dvc.lock and the outputs"
        )
    return 1


def largest_relative_change(diff_json: str) -> tuple[float, str]:
    """The largest change of any metric in `dvc metrics diff --json`, relative to the larger of |old|,
    |new| and 1 (so metrics that live near zero, like optimality_gap, are compared absolutely), and where."""
    largest, where = 0.0, ""
    for path, entries in (json.loads(diff_json or "{}") or {}).items():
        for key, change in entries.items():
            old, new = change.get("old"), change.get("new")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
                relative = 0.0 if old == new else float("inf")  # appeared, vanished or not a number
            else:
                relative = abs(new - old) / max(abs(old), abs(new), 1.0)
            if relative > largest:
                largest, where = relative, f"{path}: {key}"
    return largest, where


if __name__ == "__main__":
    sys.exit(main())
