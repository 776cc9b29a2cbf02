"""Write .dvc/plots/offline.html: the page `dvc plots show`, `dvc plots diff` and `make report` fill with the
charts (.dvc/config: plots.html_template), with vega, vega-lite and vega-embed inside it, so it draws with
no network. DVC's own page loads them from a CDN: offline or behind a firewall every chart stays blank.

    python .ci/offline_charts.py        (make offline-charts; needs the npm registry, the page is committed)

Each library comes from the npm registry's package at the version pinned below (`npm pack`, which checks the
registry's integrity hash), and its build file must have the SHA-256 pinned here too, so the page changes
only when the pins do. The licenses (all BSD-3-Clause) go into the page beside the code.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / ".dvc" / "plots" / "offline.html"
# package: (version, build file in the package, its SHA-256)
PACKAGES = {
    "vega": ("5.33.1", "build/vega.min.js", "463f3db6a40b20e9747b4ed38f37ed0add508838f9141b1cf8366784b07b30c8"),
    "vega-lite": (
        "5.23.0",
        "build/vega-lite.min.js",
        "58c27358e26f2d319cf62f45bc17a4c8362f08645001df2ec8d341eee4097c7f",
    ),
    "vega-embed": (
        "6.29.0",
        "build/vega-embed.min.js",
        "12d02acfbe3ec59ef9a37dd4822a2e04e2961b5bbb671bbe661d2221715b99da",
    ),
}
LICENSE_NOTE = (
    "BSD-3-Clause, says its package.json (the package holds no LICENSE file): the University of "
    "Washington Interactive Data Lab's terms, printed below with vega-lite's"
)


def fetch(name: str, version: str, folder: Path) -> Path:
    """The package's contents, unpacked into folder/name."""
    packed = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(folder)],
                            cwd=folder, text=True, capture_output=True, check=True)  # fmt: skip
    tarball = folder / json.loads(packed.stdout)[0]["filename"]
    with tarfile.open(tarball) as archive:
        archive.extractall(folder / name, filter="data")
    return folder / name / "package"


def page(scripts: list[str], notices: list[str]) -> str:
    """DVC's page (dvc_render.html.PAGE_HTML) with the libraries inline and no {scripts} placeholder: DVC
    puts its CDN <script> tags there, so a page without it loads nothing from the network."""
    inline = "\n".join(f"<script>\n{code}\n</script>" for code in scripts)
    return f"""<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
<!--
Made by .ci/offline_charts.py. Inline below, from the npm registry:
{chr(10).join(notices)}
-->
{inline}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> int:
    scripts, notices = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, build, digest) in PACKAGES.items():
            package = fetch(name, version, Path(tmp))
            code = (package / build).read_text(encoding="utf-8")
            found = hashlib.sha256(code.encode()).hexdigest()
            if found != digest:
                print(f"error: {name}@{version} {build}: sha256 {found}, pinned {digest}", file=sys.stderr)
                return 2
            for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script"):
                if placeholder in code:  # DVC fills the page by str.replace; a script tag would end early
                    print(f"error: {name}@{version} {build} holds {placeholder!r}", file=sys.stderr)
                    return 2
            license_file = package / "LICENSE"
            terms = license_file.read_text(encoding="utf-8").strip() if license_file.exists() else LICENSE_NOTE
            meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
            notices.append(f"{name}@{version} ({build}, sha256 {found}), license {meta['license']}:\n{terms}\n")
            scripts.append(code)
    PAGE.write_text(page(scripts, notices), encoding="utf-8")
    print(f"offline_charts: wrote {PAGE.relative_to(ROOT)} ({PAGE.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
