"""The predict tool as users run it: a trained model applied to a CSV."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from stages import models
from tests.helpers import default_params, run_module, stage_env, write_params


def test_predict_reproduces_the_training_predictions_of_both_models_exactly(workdir):
    write_params(workdir, default_params(standardize=True))
    for stage in (["prepare"], ["train", "linear"], ["train", "mlp"]):
        assert run_module(workdir, *stage).returncode == 0
    for name in ("linear", "mlp"):
        result = run_module(workdir, "predict", f"models/{name}.pt", "data/seed.csv", "-o", f"out/{name}.csv")
        assert result.returncode == 0, result.stderr
        lines = (workdir / "out" / f"{name}.csv").read_text().splitlines()
        assert lines[0] == "x,y,prediction"
        inputs = (workdir / "data" / "seed.csv").read_text().splitlines()[1:]
        assert [line.split(",")[:2] for line in lines[1:]] == [row.split(",") for row in inputs]
        written = [line.split(",")[2] for line in lines[1:]]
        # a float32 model's predictions with float32's digits: the shortest text of the same float32 value
        expected = np.load(workdir / "predictions" / f"{name}.npy").astype(np.float32)
        assert [np.float32(text) for text in written] == expected.tolist()
        assert written == [str(value) for value in expected] and max(map(len, written)) <= 11


def test_predict_warns_once_about_rows_beyond_the_training_range_unless_quiet(workdir):
    for stage in (["prepare"], ["train", "linear"]):
        assert run_module(workdir, *stage).returncode == 0
    (workdir / "new.csv").write_text("x\n5\n100\n-3\n10\n")  # trained on x = 1..10
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 0 and result.stderr == (
        "predict: warning: 2 row(s) of new.csv lie beyond the training rows' range in 'x' (1 to 10); the model "
        "extrapolates there\n"
    )
    quiet = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert len((workdir / "out.csv").read_text().splitlines()) == 5


def test_predict_rejects_a_csv_without_the_feature_column(workdir):
    for stage in (["prepare"], ["train", "linear"]):
        assert run_module(workdir, *stage).returncode == 0
    (workdir / "new.csv").write_text("a,b\n1,2\n")
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 2
    assert result.stderr == (
        "error: new.csv: missing the model's feature column(s) 'x' (models/linear.pt was "
        "trained on 'x'); the columns are 'a', 'b'\n"
    )
    assert not (workdir / "out.csv").exists()


def test_predict_names_a_missing_csv_without_pointing_at_params(workdir):
    # the CSV came from the command line, so data.path in params.yaml is not what to fix
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 2
    assert result.stderr == "error: new.csv: file not found; point the CSV argument at an existing CSV\n"


def test_predict_names_a_file_that_is_not_a_model(workdir):
    (workdir / "junk.pt").write_bytes(b"\x00not a model")
    result = run_module(workdir, "predict", "junk.pt", "data/seed.csv", "-o", "out.csv")
    assert result.returncode == 2 and "junk.pt: not a model file written by this pipeline" in result.stderr


def test_predict_copies_every_record_as_pandas_counts_rows(workdir):
    for stage in (["prepare"], ["train", "linear"]):
        assert run_module(workdir, *stage).returncode == 0
    long_text = "z" * 200_000  # past the csv module's default field limit
    text = '\ufeffid, x,note\r\n1, 2.5,plain\r\n\r\n   \r\n2,3,"a, ""quoted""\nnote"\r\n3,4,' + long_text + "\r\n"
    (workdir / "new.csv").write_bytes(text.encode())
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 0, result.stderr
    csv.field_size_limit(1 << 20)
    with (workdir / "out.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "x", "note", "prediction"]
    expected_rows = [["1", "2.5", "plain"], ["2", "3", 'a, "quoted"\nnote'], ["3", "4", long_text]]
    assert [row[:3] for row in rows[1:]] == expected_rows
    model, _ = models.load_model(str(workdir / "models" / "linear.pt"))
    expected = models.predict(model, np.array([[2.5], [3.0], [4.0]]), None)
    assert [np.float32(row[3]) for row in rows[1:]] == expected.astype(np.float32).tolist()


@pytest.fixture
def trained(workdir):
    """The seed project with a trained linear model."""
    for stage in (["prepare"], ["train", "linear"]):
        assert run_module(workdir, *stage).returncode == 0
    return workdir


def predict_to(workdir, output: str, model: str = "models/linear.pt", source: str = "data/seed.csv"):
    return run_module(workdir, "predict", model, source, "-o", output)


def test_predict_never_writes_over_its_input_csv_or_its_model(trained):
    before = {name: (trained / name).read_bytes() for name in ("data/seed.csv", "models/linear.pt")}
    (trained / "also-seed.csv").hardlink_to(trained / "data" / "seed.csv")
    (trained / "seed-link.csv").symlink_to("data/seed.csv")
    cases = {
        "data/seed.csv": "is the input CSV",
        "./data/../data/seed.csv": "is the input CSV",
        "also-seed.csv": "is the input CSV",
        "seed-link.csv": "is the input CSV",
        "models/linear.pt": "is the model file",
    }
    for output, what in cases.items():
        result = predict_to(trained, output)
        assert result.returncode == 2
        assert result.stderr == f"error: -o {output}: {what}; write the predictions to another file\n"
    assert {name: (trained / name).read_bytes() for name in before} == before


def test_predict_writes_through_a_symbolic_link_and_keeps_it(trained):
    (trained / "real.csv").write_text("old\n")
    (trained / "link.csv").symlink_to("real.csv")
    assert predict_to(trained, "link.csv").returncode == 0
    assert (trained / "link.csv").is_symlink() and os.readlink(trained / "link.csv") == "real.csv"
    assert (trained / "real.csv").read_text().startswith("x,y,prediction\n")


def test_predict_keeps_the_permission_bits_of_the_file_it_replaces(trained):
    (trained / "private.csv").write_text("old\n")
    (trained / "private.csv").chmod(0o600)
    assert predict_to(trained, "private.csv").returncode == 0
    assert stat.S_IMODE((trained / "private.csv").stat().st_mode) == 0o600
    assert (trained / "private.csv").read_text().startswith("x,y,prediction\n")


def test_predict_never_replaces_a_folder_a_fifo_or_a_device(trained):
    (trained / "folder").mkdir()
    os.mkfifo(trained / "pipe")
    cases = {"folder": "a folder", "pipe": "a named pipe (FIFO)", os.devnull: "a character device"}
    for output, kind in cases.items():
        result = predict_to(trained, output)
        assert result.returncode == 2
        assert result.stderr == f"error: -o {output}: is {kind}, not a regular file; name a file to write\n"
    assert stat.S_ISFIFO((trained / "pipe").stat().st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert list((trained / "folder").iterdir()) == []
    long_name = "p" * 300 + ".csv"
    result = predict_to(trained, long_name)
    assert (result.returncode, result.stderr) == (2, f"error: -o {long_name}: File name too long; use a shorter name\n")


def test_predict_refuses_a_model_or_csv_that_is_no_regular_file(trained):
    os.mkfifo(trained / "pipe")
    (trained / "loop").symlink_to("loop")
    model_fix = "run `dvc repro` first, or name a model file written by this pipeline"
    csv_fix = "point the CSV argument at an existing CSV"
    cases = [
        ("pipe", "data/seed.csv", f"pipe: is a named pipe (FIFO), not a file; {model_fix}"),
        ("models", "data/seed.csv", f"models: is a folder, not a file; {model_fix}"),
        ("loop", "data/seed.csv", "loop: Too many levels of symbolic links; a symbolic link on the way leads back "
         "to itself; fix or remove the link"),
        ("models/linear.pt", "pipe", f"pipe: is a named pipe (FIFO), not a file; {csv_fix}"),
        ("models/linear.pt", "data", f"data: is a folder, not a file; {csv_fix}"),
    ]  # fmt: skip
    for model, source, message in cases:
        result = predict_to(trained, "out.csv", model=model, source=source)
        assert (result.returncode, result.stderr) == (2, f"error: {message}\n")
    assert not (trained / "out.csv").exists()


def test_predict_into_a_folder_it_cannot_write_is_one_line(trained):
    (trained / "locked").mkdir()
    (trained / "locked").chmod(0o555)
    prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"] if os.geteuid() == 0 else []
    command = [
        *prefix,
        sys.executable,
        "-m",
        "stages.predict",
        "models/linear.pt",
        "data/seed.csv",
        "-o",
        "locked/p.csv",
    ]
    result = subprocess.run(command, cwd=trained, env=stage_env(), text=True, capture_output=True)
    assert result.returncode == 2
    assert (
        result.stderr
        == "error: locked/p.csv: Permission denied; check the file's and its folders' permissions (ls -l)\n"
    )
    assert list((trained / "locked").iterdir()) == []
