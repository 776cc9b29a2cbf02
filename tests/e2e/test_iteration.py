"""The second run costs less than the first, with the real dvc: an edit reruns only the stages whose code
it touches, and params run before are restored from DVC's run-cache instead of retrained."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, clone_project, import_closure, outputs, repro, set_param, sh

pytestmark = pytest.mark.slow

MAKE = ["make", "--no-print-directory", "-o", f"{sys.prefix}/.installed", f"VENV={sys.prefix}"]
STAGE_MODULES = {
    "prepare": "stages.prepare",
    "train@linear": "stages.train",
    "train@mlp": "stages.train",
    "evaluate@linear": "stages.evaluate",
    "evaluate@mlp": "stages.evaluate",
    "plot": "stages.plot",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh clone after `make repro`, the README's first command."""
    repo = clone_project(tmp_path_factory.mktemp("clone"))
    sh(repo, *MAKE, "repro")
    assert sh(repo, "git", "status", "--porcelain").stdout == ""
    return repo


def changed_stages(repo: Path) -> set[str]:
    return set(json.loads(sh(repo, "dvc", "status", "--json").stdout))


def cached_stages(out: str) -> set[str]:
    return {
        line.split("'")[1]
        for line in out.splitlines()
        if line.endswith("is cached - skipping run, checking out outputs")
    }


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "stages").glob("*.py")))
def test_a_comment_in_a_code_file_changes_exactly_the_stages_that_import_it(repo, path):
    expected = {stage for stage, module in STAGE_MODULES.items() if path in import_closure(module)}
    source = repo / path
    original = source.read_text()
    source.write_text(original + "# an edit that changes no behaviour\n")
    try:
        assert changed_stages(repo) == expected
    finally:
        source.write_text(original)
    assert changed_stages(repo) == set()


def test_a_message_edit_in_the_csv_reader_reruns_prepare_alone(repo):
    before = outputs(repo)
    reader = repo / "stages" / "csv_input.py"
    original = reader.read_text()
    reader.write_text(original.replace("the file is empty;", "the file has no bytes at all;"))
    try:
        assert repro(repo) == {"prepare"}
        assert outputs(repo) == before
    finally:
        reader.write_text(original)
    repro(repo)  # back to the committed code: prepare is restored from the run-cache
    assert sh(repo, "git", "status", "--porcelain").stdout == ""


def test_going_back_to_params_run_before_restores_every_output_without_running(repo):
    before = outputs(repo)
    set_param(repo, "models.mlp.lr", 0.02)
    assert repro(repo) == {"train@mlp", "evaluate@mlp", "plot"}
    assert outputs(repo) != before
    sh(repo, "git", "checkout", "--", "params.yaml")
    out = sh(repo, "dvc", "repro").stdout
    assert "Running stage" not in out
    assert cached_stages(out) == {"train@mlp", "evaluate@mlp", "plot"}
    assert outputs(repo) == before
    assert sh(repo, "git", "status", "--porcelain").stdout == ""


def test_exp_run_of_a_value_tried_before_runs_no_training(repo):
    first = sh(repo, "dvc", "exp", "run", "-S", "models.mlp.lr=0.03").stdout
    assert "Running stage 'train@mlp'" in first
    trained = (repo / "models" / "mlp.pt").read_bytes()
    sh(repo, "dvc", "exp", "run", "-S", "models.mlp.lr=0.01")  # the committed value: restored, not trained
    again = sh(repo, "dvc", "exp", "run", "-S", "models.mlp.lr=0.03").stdout
    assert "Running stage" not in again and {"train@mlp", "evaluate@mlp", "plot"} <= cached_stages(again)
    assert (repo / "models" / "mlp.pt").read_bytes() == trained
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "-q")
    assert "Data and pipelines are up to date." in sh(repo, "dvc", "status").stdout
