"""Shared fixtures: tiny CSVs and params written in the test, and a way to run a stage for real."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)

SEED_CSV = "x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(range(1, 11), [3, 5, 5, 6, 7, 7, 8, 9, 9, 10]))


def default_params(**data_overrides) -> dict:
    """The project's params.yaml as a dict, with `data` keys overridden."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(data_overrides)
    return params


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("STAGES_DEBUG", None)
    return env


def run_module(workdir: Path, module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m stages.<module>` in workdir as DVC would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", f"stages.{module}", *args],
        cwd=workdir,
        env=env or stage_env(),
        text=True,
        capture_output=True,
    )


@pytest.fixture
def workdir(tmp_path: Path):
    """A folder holding data/seed.csv and params.yaml, as a stage sees the project root."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seed.csv").write_text(SEED_CSV)
    write_params(tmp_path, default_params())
    return tmp_path


def write_params(folder: Path, params: dict) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
