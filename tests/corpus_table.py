"""docs/errors.md's table of messages, made from tests/corpus/cases.yaml so that it cannot drift from what
the stages print (tests/stages/test_bad_inputs.py checks both). `python -m tests.corpus_table` rewrites it."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES_FILE = ROOT / "tests" / "corpus" / "cases.yaml"
DOC = ROOT / "docs" / "errors.md"
BEGIN = "<!-- corpus table: made by `python -m tests.corpus_table` from tests/corpus/cases.yaml -->"
END = "<!-- end of corpus table -->"
SOURCES = {"csv": "the CSV (`data.path`)", "params": "`params.yaml`"}


def render(cases: dict) -> str:
    """The table: one row per corpus file, with the message exactly as a stage prints it after `error: `
    (a fragment and `…` where its numbers depend on floating point)."""
    rows = ["| in | problem | message (`error: ` first, exit code 2) | corpus file |", "|---|---|---|---|"]
    for kind, source in SOURCES.items():
        for name, case in cases[kind].items():
            message = case.get("message") or f"{case['expect']} …"
            cell = message.replace("|", "\\|")
            rows.append(f"| {source} | {case['problem']} | `{cell}` | `{kind}/{name}` |")
    return "\n".join([BEGIN, *rows, END])


def table_in(doc: str) -> str:
    """The table as it stands in the document, markers included."""
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[start:end]


def main() -> int:
    doc = DOC.read_text(encoding="utf-8")
    fresh = render(yaml.safe_load(CASES_FILE.read_text(encoding="utf-8")))
    DOC.write_text(doc.replace(table_in(doc), fresh), encoding="utf-8")
    print(f"corpus_table: wrote the table of {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
