import numpy as np

from tests.conftest import default_params, run_module, write_params


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
    assert result.stderr == ("error: new.csv: missing the model's feature column(s) 'x' (models/linear.pt was "
                             "trained on 'x'); the columns are 'a', 'b'\n")
    assert not (workdir / "out.csv").exists()


def test_predict_names_a_file_that_is_not_a_model(workdir):
    (workdir / "junk.pt").write_bytes(b"\x00not a model")
    result = run_module(workdir, "predict", "junk.pt", "data/seed.csv", "-o", "out.csv")
    assert result.returncode == 2 and "junk.pt: not a model file written by this pipeline" in result.stderr
