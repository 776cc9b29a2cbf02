"""Every file in tests/corpus goes through the real stage: exit code 2, one line naming the culprit,
no traceback, and no output created or changed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import corpus_table
from tests.helpers import SEED_CSV, default_params, run_module, snapshot, stage_env, write_params

CORPUS = Path(__file__).parents[1] / "corpus"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
ALL_STAGES = ["prepare", "train linear", "train mlp", "evaluate linear", "evaluate mlp", "plot"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A project folder after a complete good run of every stage."""
    folder = tmp_path_factory.mktemp("good")
    (folder / "data").mkdir()
    (folder / "data" / "seed.csv").write_text(SEED_CSV)
    write_params(folder, default_params())
    for stage in ALL_STAGES:
        result = run_module(folder, *stage.split())
        assert result.returncode == 0, result.stderr
    return folder


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: data for name, data in snapshot(folder).items() if name not in ("params.yaml", "data/seed.csv")}


def assert_refused(folder: Path, stage: str, case: dict, before: dict[str, bytes]) -> None:
    result = run_module(folder, *stage.split())
    assert result.returncode == 2, (stage, result.stdout, result.stderr)
    if "message" in case:
        assert result.stderr == f"error: {case['message']}\n", stage
    else:
        assert case["expect"] in result.stderr, (stage, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert outputs(folder) == before, f"{stage} changed its outputs"


def test_corpus_files_all_have_a_case_and_back():
    for kind in ("csv", "params"):
        assert sorted(p.name for p in (CORPUS / kind).iterdir()) == sorted(CASES[kind])
        for name, case in CASES[kind].items():
            assert case.get("problem") and ("message" in case) != ("expect" in case), name


def test_the_docs_table_of_messages_is_the_corpus():
    assert corpus_table.table_in(corpus_table.DOC.read_text(encoding="utf-8")) == corpus_table.render(CASES), (
        "docs/errors.md is out of date: run python -m tests.corpus_table"
    )


@pytest.mark.parametrize("name", sorted(CASES["csv"]))
def test_bad_csv_is_refused_by_prepare(good_run, tmp_path, name):
    case = CASES["csv"][name]
    folder = tmp_path / "project"
    shutil.copytree(good_run, folder)
    if case.get("standardize") or case.get("data"):  # the case's own data settings
        write_params(folder, default_params(**({"standardize": True} if case.get("standardize") else {}),
                                            **case.get("data", {})))  # fmt: skip
    before = outputs(folder)
    shutil.copy(CORPUS / "csv" / name, folder / "data" / "seed.csv")
    assert_refused(folder, "prepare", case, before)


@pytest.mark.parametrize("name", sorted(CASES["params"]))
def test_bad_params_are_refused_by_every_stage(good_run, tmp_path, name):
    case = CASES["params"][name]
    folder = tmp_path / "project"
    shutil.copytree(good_run, folder)
    before = outputs(folder)
    shutil.copy(CORPUS / "params" / name, folder / "params.yaml")
    for stage in case.get("stages", ALL_STAGES):
        assert_refused(folder, stage, case, before)


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_a_stage_run_by_an_interpreter_without_the_packages_says_so(good_run, stage):
    # `python -S` leaves site-packages off the path: as if `dvc repro` ran outside the project's venv.
    before = outputs(good_run)
    module, *args = stage.split()
    result = subprocess.run(
        [sys.executable, "-S", "-m", f"stages.{module}", *args],
        cwd=good_run,
        env=stage_env(),
        text=True,
        capture_output=True,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {sys.executable} has no numpy, pandas, pyarrow, ruamel.yaml, torch, matplotlib: this is not "
        "the project's environment; run `make repro`, or `source .venv/bin/activate` first "
        "(after `make venv`)\n"
    )
    assert outputs(good_run) == before
