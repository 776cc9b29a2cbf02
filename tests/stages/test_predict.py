"""The predict tool as users run it: a trained model applied to a CSV."""

from __future__ import annotations

import csv

import numpy as np

from stages import models
from tests.helpers import default_params, run_module, write_params


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
        predicted = [float(line.split(",")[2]) for line in lines[1:]]
        assert predicted == np.load(workdir / "predictions" / f"{name}.npy").tolist()


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
    assert [float(row[3]) for row in rows[1:]] == expected.tolist()
