"""Issue 25's reliability cases for single stages: a CSV that changes while prepare reads it, tables and files
whose size would make a stage allocate far more than they hold, and what must be refused before that."""

import resource
import subprocess
import sys

import numpy as np

from tests.helpers import default_params, run_module, stage_env, write_params

APPEND_WHILE_READING = """
import sys
import stages.prepare as prepare

real = prepare.stream_columns

def appending(path, names):
    for block in real(path, names):
        with open(path, "a") as f:
            f.write("11,11\\n")
        yield block

prepare.stream_columns = appending
from stages.errors import run_stage
sys.exit(run_stage(prepare.main))
"""


def test_rows_appended_while_prepare_reads_the_csv_are_refused(workdir):
    result = subprocess.run([sys.executable, "-c", APPEND_WHILE_READING], cwd=workdir, env=stage_env(), text=True,
                            capture_output=True)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: data/seed.csv changed while it was read; run dvc repro again\n"
    assert not (workdir / "data" / "prepared").exists()
    assert run_module(workdir, "prepare").returncode == 0  # the next run reads the longer file
    assert len(np.load(workdir / "data" / "prepared" / "y_train.npy")) == 11


def _limit_memory(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def test_a_short_wide_table_is_prepared_in_little_memory(workdir):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4000)).round(3)
    names = [f"f{j}" for j in range(4000)]
    lines = [",".join([*names, "y"])] + [",".join(map(str, [*row, row[:3].sum().round(3)])) for row in X]
    (workdir / "data" / "wide.csv").write_text("\n".join(lines) + "\n")
    write_params(workdir, default_params(path="data/wide.csv", features="all"))
    result = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=workdir, env=stage_env(), text=True,
                            capture_output=True, preexec_fn=_limit_memory(2 << 30))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "50 rows, 4000 feature(s)" in result.stdout
    assert np.load(workdir / "data" / "prepared" / "X_train.npy").shape == (50, 4000)
