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


def links(doc) -> list[tuple[str, str]]:
    """(target, #anchor) of each relative link in the document's prose (not in code blocks)."""
    prose = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)
    return LINK.findall(prose)


LINKED = [doc for doc in DOCS if links(doc)]  # a document with no relative link has nothing to check


def test_the_documents_with_links_are_the_ones_expected():
    assert {doc.relative_to(ROOT).as_posix() for doc in DOCS if doc not in LINKED} == {"docs/errors.md"}


@pytest.mark.parametrize("doc", LINKED, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings_that_exist(doc):
    for target, anchor in links(doc):
        path = (doc.parent / target).resolve()
        assert path.exists(), f"{doc.name}: {target}"
        if anchor:
            assert anchor in anchors(path.read_text()), f"{doc.name}: {target}{anchor}"
