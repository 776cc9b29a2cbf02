"""The README stays a newcomer's page, and every relative link in the docs leads somewhere."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)#:]+)(#[^)]*)?\)")


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text."""
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {"#" + re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_at_most_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings_that_exist(doc):
    prose = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)  # not in code blocks
    for target, anchor in LINK.findall(prose):
        path = (doc.parent / target).resolve()
        assert path.exists(), f"{doc.name}: {target}"
        if anchor:
            assert anchor in anchors(path.read_text()), f"{doc.name}: {target}{anchor}"
