import json
import os

import numpy as np

from tests.helpers import default_params, run_module, write_params


def test_prepare_writes_the_splits_and_meta(workdir):
    result = run_module(workdir, "prepare")
    assert result.returncode == 0, result.stderr
    assert "10 rows, 1 feature(s) -> 10 train / 0 test rows" in result.stdout
    prepared = workdir / "data" / "prepared"
    assert np.load(prepared / "y_train.npy").tolist() == [3, 5, 5, 6, 7, 7, 8, 9, 9, 10]
    assert np.load(prepared / "X_test.npy").shape == (0, 1)
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta == {"features": ["x"], "target": "y", "n_train": 10, "n_test": 0, "scaling": None}


def test_prepare_holds_out_test_rows_and_stores_training_scaling(workdir):
    write_params(workdir, default_params(test_size=0.3, split_seed=1, standardize=True))
    assert run_module(workdir, "prepare").returncode == 0
    prepared = workdir / "data" / "prepared"
    y_train = np.load(prepared / "y_train.npy")
    assert len(y_train) == 7 and len(np.load(prepared / "y_test.npy")) == 3
    scaling = json.loads((prepared / "meta.json").read_text())["scaling"]
    assert scaling["y_mean"] == float(y_train.mean()) and scaling["y_std"] == float(y_train.std())


def test_bad_csv_exits_2_with_one_line_and_writes_nothing(workdir):
    (workdir / "data" / "seed.csv").write_text("x,y\n1,2\n2,oops\n3,4\n")
    result = run_module(workdir, "prepare")
    assert result.returncode == 2
    assert result.stderr == "error: data/seed.csv: row 2 (line 3), column 'y': 'oops' is not a number\n"
    assert not (workdir / "data" / "prepared").exists()
    assert [p.name for p in (workdir / "data").iterdir()] == ["seed.csv"]


def test_debug_env_shows_the_traceback(workdir):
    (workdir / "data" / "seed.csv").write_text("x,y\n")
    from tests.helpers import stage_env

    env = {**stage_env(), "STAGES_DEBUG": "1"}
    result = run_module(workdir, "prepare", env=env)
    assert result.returncode == 1 and "Traceback" in result.stderr and "no data rows" in result.stderr


def test_binary_splits_round_trip_the_csv_values_exactly(workdir):
    # magnitudes from 1e-149 to 1e149 (beyond ±1e150 prepare refuses a value: its square overflows)
    rng = np.random.default_rng(9)
    values = np.column_stack(
        [rng.normal(size=500) * 10.0 ** rng.integers(-149, 149, size=500), rng.standard_normal(500)]
    )
    (workdir / "data" / "seed.csv").write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in values.tolist()))
    write_params(workdir, default_params(test_size=0.25, split_seed=4))
    assert run_module(workdir, "prepare").returncode == 0
    prepared = workdir / "data" / "prepared"
    X = np.concatenate([np.load(prepared / "X_train.npy"), np.load(prepared / "X_test.npy")])[:, 0]
    y = np.concatenate([np.load(prepared / "y_train.npy"), np.load(prepared / "y_test.npy")])
    assert sorted(zip(X.tolist(), y.tolist(), strict=True)) == sorted(map(tuple, values.tolist()))


def test_a_csv_outside_the_project_is_read_with_a_warning(workdir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "shared.csv"
    outside.write_text((workdir / "data" / "seed.csv").read_text())
    for path in (str(outside), os.path.relpath(outside, workdir)):  # absolute, and ../ relative
        write_params(workdir, default_params(path=path))
        result = run_module(workdir, "prepare")
        assert result.returncode == 0
        assert result.stderr == (
            f"prepare: warning: data.path {path} is outside the project, so a clone of it "
            "elsewhere (CI, a colleague) will not find the file; copy it into data/ (and "
            "`dvc add` it if it is large)\n"
        )
    write_params(workdir, default_params())
    assert run_module(workdir, "prepare").stderr == ""
