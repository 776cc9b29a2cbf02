"""Write report.md: what changed against BASE, ready to paste into a pull request.

    python .ci/report.py BASE        (make report BASE=<rev>; default HEAD~1)

Holds the `dvc params diff --md` and `dvc metrics diff --md` tables against BASE, and the figures of both
revisions side by side; `dvc plots diff` writes every plot (loss curves, predicted vs actual, figures)
of both revisions into report/index.html, whose PNG copies report.md shows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPORT = Path("report.md")
PLOTS_DIR = Path("report")


def dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], text=True, capture_output=True)
    if result.returncode != 0:
        sys.exit(f"error: dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def figures_side_by_side(base: str) -> list[str]:
    """A markdown table row per PNG figure: BASE's version beside the workspace's."""
    static = PLOTS_DIR / "static"
    current = sorted(static.glob("workspace_*.png"))
    rows = [f"| figure | {base} | workspace |", "|---|---|---|"]
    for path in current:
        suffix = path.name[len("workspace_") :]
        old = [p for p in static.glob(f"*_{suffix}") if not p.name.startswith("workspace_")]
        old_cell = f"![{base}]({old[0].as_posix()})" if old else "(absent)"
        rows.append(f"| `{suffix.replace('_', '/', 1)}` | {old_cell} | ![workspace]({path.as_posix()}) |")
    return rows if current else ["(no figure in this revision)"]


def main() -> int:
    base = sys.argv[1] if len(sys.argv) > 1 else "HEAD~1"
    if (
        subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], capture_output=True
        ).returncode
        != 0
    ):
        print(f"error: BASE={base} is not a git revision here; pass one, e.g. make report BASE=main", file=sys.stderr)
        return 2
    params = dvc("params", "diff", base, "--md") or "No parameter changed."
    metrics = dvc("metrics", "diff", base, "--md") or "No metric changed."
    shutil.rmtree(PLOTS_DIR, ignore_errors=True)
    dvc("plots", "diff", base, "--out", str(PLOTS_DIR))
    lines = [
        f"# Pipeline report: workspace against {base}",
        "",
        "## Parameters",
        "",
        params,
        "",
        "## Metrics",
        "",
        metrics,
        "",
        "## Figures",
        "",
        *figures_side_by_side(base),
        "",
        f"Every plot of both revisions, loss curves and predicted-vs-actual included: `{PLOTS_DIR}/index.html`.",
        "",
    ]
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    print(f"report: wrote {REPORT} and {PLOTS_DIR}/ (workspace against {base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
