"""Write report.md: what changed against BASE, ready to paste into a pull request.

    python .ci/report.py BASE [--figures-url URL]   (make report BASE=<rev> [FIGURES_URL=...]; default HEAD~1)

Holds the `dvc params diff --md` and `dvc metrics diff --md` tables against BASE, and the figures of both
revisions side by side; `dvc plots diff` writes every plot (loss curves, predicted vs actual, figures)
of both revisions into report/index.html (it draws offline: .dvc/plots/offline.html), whose PNG copies
report.md shows. With --figures-url (CI: the workflow run, whose artifact holds report/), report.md names
the figures and links there instead, so a pull-request comment needs no image uploaded anywhere.
"""

from __future__ import annotations

import argparse
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


def figures_linked(url: str) -> list[str]:
    """The figures' names, and where to see them (a workflow run's artifact)."""
    names = sorted(path.name[len("workspace_") :] for path in (PLOTS_DIR / "static").glob("workspace_*.png"))
    listed = ", ".join(f"`{name.replace('_', '/', 1)}`" for name in names) or "(no figure in this revision)"
    return [f"Both revisions' figures ({listed}) and every chart (`{PLOTS_DIR}/index.html`) are in the "
            f"`pipeline-report` artifact of [this workflow run]({url})."]  # fmt: skip


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", nargs="?", default="HEAD~1", help="the revision to compare with (default: HEAD~1)")
    parser.add_argument("--figures-url", help="link the figures here instead of showing them")
    args = parser.parse_args()
    base = args.base
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
        *(figures_linked(args.figures_url) if args.figures_url else figures_side_by_side(base)),
        "",
        f"Every plot of both revisions, loss curves and predicted-vs-actual included: `{PLOTS_DIR}/index.html`.",
        "",
    ]
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    print(f"report: wrote {REPORT} and {PLOTS_DIR}/ (workspace against {base})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
