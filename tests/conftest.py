"""Fixtures: a project folder with the seed CSV and params.yaml, as a stage sees the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SEED_CSV, default_params, write_params


@pytest.fixture
def workdir(tmp_path: Path):
    """A folder holding data/seed.csv and params.yaml, as a stage sees the project root."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seed.csv").write_text(SEED_CSV)
    write_params(tmp_path, default_params())
    return tmp_path
