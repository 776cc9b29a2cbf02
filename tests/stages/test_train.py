import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.helpers import ROOT, default_params, run_module, stage_env, write_params


def test_train_linear_logs_every_n_epochs_and_final_w_and_b(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "linear")
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stdout.splitlines() if "loss" in line]
    assert [line.split()[2].rstrip(",") for line in logged] == ["1/1000"] + [f"{e}/1000" for e in range(100, 1001, 100)]
    assert "final w (x): 0.709" in result.stdout and "final b (intercept): 3.000" in result.stdout
    saved = torch.load(workdir / "models" / "linear.pt", weights_only=True)
    assert saved["features"] == ["x"] and set(saved["state_dict"]) == {"weight", "bias"}
    card = json.loads((workdir / "models" / "linear.json").read_text())
    assert card["coefficients"]["x"] == float(saved["state_dict"]["weight"][0])
    assert len(np.load(workdir / "predictions" / "linear.npy")) == 10
    # every epoch's loss through DVCLive, and its summary of the last
    loss_lines = (workdir / "dvclive" / "linear" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert loss_lines[0] == "step\tloss" and loss_lines[1].startswith("1\t") and len(loss_lines) == 1001
    summary = json.loads((workdir / "dvclive" / "linear" / "metrics.json").read_text())
    assert summary == {"train": {"loss": float(loss_lines[-1].split("\t")[1])}, "step": 1000}


def test_train_mlp_prints_and_writes_its_summary(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 0, result.stderr
    summary = (workdir / "models" / "mlp.summary.txt").read_text()
    assert summary in result.stdout
    assert "Linear-1" in summary and "[-1, 10]" in summary and "Total params: 31" in summary


def test_unknown_model_and_divergence_exit_2_and_write_nothing(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "ridge")
    assert result.returncode == 2 and "no model 'ridge' under models; known: linear, mlp" in result.stderr
    params = default_params()
    params["models"]["linear"]["lr"] = 1e30
    write_params(workdir, params)
    result = run_module(workdir, "train", "linear")
    assert result.returncode == 2
    assert "models.linear: training diverged at step" in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "models").exists() and not (workdir / "predictions").exists()


@pytest.mark.parametrize(
    "column, values, shown",
    [
        ("x", ["1e39", "2e39", "3e39"], "'x' (from 1e+39 to 3e+39)"),  # beyond float32's largest, ~3.4e38
        ("x", ["1e-50", "2e-50", "3e-50"], "'x' (from 1e-50 to 3e-50)"),  # would all round to 0 in float32
        ("y", ["1", "1.00000001", "1.00000002"], "'y' (from 1 to 1)"),  # differences below float32's resolution
    ],
)
def test_data_that_float32_cannot_hold_is_refused_not_trained_on(workdir, column, values, shown):
    other = ["1", "2", "3"]
    pairs = zip(values, other, strict=True) if column == "x" else zip(other, values, strict=True)
    (workdir / "data" / "seed.csv").write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 2 and not (workdir / "models").exists()
    assert result.stderr == (
        f"error: data: column {shown} does not fit in float32; set data.standardize: true, or train.dtype: float64\n"
    )
    params = default_params()
    params["train"]["dtype"] = "float64"
    write_params(workdir, params)
    assert run_module(workdir, "train", "mlp").returncode == 0


def test_with_standardize_the_log_says_the_loss_is_in_standardized_units(workdir):
    params = default_params(standardize=True)
    params["models"]["linear"] = {"kind": "linear", "solver": "exact"}
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "linear")
    assert result.returncode == 0, result.stderr
    y_std = float(np.std([3, 5, 5, 6, 7, 7, 8, 9, 9, 10]))
    assert f"; loss in standardized units (MSE / {y_std:.6g}^2)" in result.stdout
    card = json.loads((workdir / "models" / "linear.json").read_text())
    assert card["final_train_loss"] * y_std**2 == pytest.approx(card["least_squares_mse"], rel=1e-12)
    write_params(workdir, default_params())
    assert run_module(workdir, "prepare").returncode == 0
    assert "standardized" not in run_module(workdir, "train", "linear").stdout


def test_a_model_too_large_for_memory_is_one_line_not_a_traceback(workdir):
    params = default_params()
    params["models"]["mlp"]["hidden"] = [10**11]  # 400 GB of weights
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # refused from the estimate, before torch allocates (the allocator's own failure: tests/unit/test_errors.py)
    assert re.fullmatch(
        r"error: train@mlp: training needs about 11920\.9 GiB \(300,000,000,001 weights, with their gradients and "
        r"Adam's moments, and a step's layer outputs\); \d+\.\d GiB is available here: use smaller "
        r"models\.mlp\.hidden layers or batch_size\n",
        result.stderr,
    )


def test_a_wide_linear_model_logs_its_first_20_weights_and_says_where_the_rest_are(workdir):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 25))
    names = [f"f{j}" for j in range(25)]
    rows = "".join(",".join(map(repr, [*row.tolist(), float(row.sum())])) + "\n" for row in X)
    (workdir / "data" / "wide.csv").write_text(",".join([*names, "y"]) + "\n" + rows)
    params = default_params(path="data/wide.csv", features=names)
    params["models"]["linear"] = {"kind": "linear", "solver": "exact"}
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "linear")
    assert result.returncode == 0, result.stderr
    logged = [line for line in result.stdout.splitlines() if "final w" in line]
    assert [line.split("(")[1].split(")")[0] for line in logged] == names[:20]
    assert "train@linear: ... and 5 more weights in models/linear.json" in result.stdout
    assert len(json.loads((workdir / "models" / "linear.json").read_text())["coefficients"]) == 26


def test_early_stopping_saves_the_epoch_with_the_lowest_validation_loss(workdir):
    from stages import models
    from stages.prepared import read_split, seeded_split

    rng = np.random.default_rng(5)
    x = rng.uniform(0, 10, size=80)
    y = 0.7 * x + 3 + rng.normal(scale=1.0, size=80)
    rows = "".join(f"{a!r},{b!r}\n" for a, b in zip(x.tolist(), y.tolist(), strict=True))
    (workdir / "data" / "seed.csv").write_text("x,y\n" + rows)
    params = default_params(standardize=True, test_size=0.2)
    params["models"]["mlp"].update(hidden=[32], lr=0.05, early_stopping={"validation_fraction": 0.25, "patience": 20})
    write_params(workdir, params)
    for stage in (["prepare"], ["train", "mlp"], ["evaluate", "mlp"]):
        result = run_module(workdir, *stage)
        assert result.returncode == 0, result.stderr
    train_log = run_module(workdir, "train", "mlp").stdout
    assert "train@mlp: 48 rows (and 16 held out for validation) x 1 feature(s)" in train_log
    assert ", validation loss " in train_log and "train@mlp: early stopping kept epoch " in train_log

    lines = (workdir / "dvclive" / "mlp" / "plots" / "metrics" / "validation" / "loss.tsv").read_text().splitlines()
    assert lines[0] == "step\tloss"
    validation = [float(line.split("\t")[1]) for line in lines[1:]]
    card = json.loads((workdir / "models" / "mlp.json").read_text())["early_stopping"]
    assert card["stopped_epoch"] == len(validation) < 1000 and card["validation_rows"] == 16
    assert card["best_epoch"] == 1 + validation.index(min(validation))
    # The saved model's loss on the held-out rows, computed as training does, is the minimum in the CSV.
    split = read_split(workdir / "data" / "prepared")
    _, held_out = seeded_split(len(split.y_train), 0.25, seed=0)
    model, _ = models.load_model(workdir / "models" / "mlp.pt")
    X = models.scaled_tensor(split.X_train[held_out], split.scaling, torch.float32)
    y = models.scaled_target(split.y_train[held_out], split.scaling, torch.float32)
    with torch.no_grad():
        assert float(torch.nn.functional.mse_loss(model(X), y)) == min(validation) == card["best_validation_loss"]

    metrics = json.loads((workdir / "metrics" / "mlp.json").read_text())
    assert set(metrics) == {"train", "validation", "test", "importance", "partial_dependence"}
    y_std = split.scaling.y_std
    assert metrics["validation"]["mse"] == pytest.approx(min(validation) * y_std**2, rel=1e-5)


def stall_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "training may be stuck on a plateau" in line]


def test_an_mlp_stuck_on_a_plateau_warns_once_and_still_trains(workdir):
    # Features near 1000, unscaled: every tanh unit starts saturated, so the first layer gets no gradient
    # and the loss stops at the target's variance within a few epochs
    rows = "".join(f"{x},{np.sin(x / 7):.6f}\n" for x in range(1000, 1200))
    (workdir / "data" / "stall.csv").write_text("x,y\n" + rows)
    params = default_params(path="data/stall.csv")
    params["models"] = {"mlp": {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 300,
                                "init": "torch"}}  # fmt: skip
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 0, result.stderr
    warnings = stall_warnings(result.stderr)
    assert len(warnings) == 1 and warnings[0].startswith("train@mlp: warning: the training loss fell by only ")
    assert "over the last 60 of 300 epochs" in warnings[0] and "models.mlp.init: auto (now torch)" in warnings[0]
    assert (workdir / "models" / "mlp.pt").is_file()


def write_plateau_table(path, n_rows: int, coefficient_seed: int) -> list[str]:
    """The kind of table issue 20 found the stall on (benchmarks/bench_scale.py's plateau table): 8 N(0, 1)
    features, y = X c + 2 sin(2 x1) + 0.5 x2 x3 + 0.1 noise, c uniform in [-3, 3]. Returns the features."""
    c = np.random.default_rng(coefficient_seed).uniform(-3, 3, 8)
    rng = np.random.default_rng(coefficient_seed + 1)
    X = rng.standard_normal((n_rows, 8))
    y = X @ c + 2 * np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n_rows)
    features = [f"f{i}" for i in range(1, 9)]
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.10g", header=",".join([*features, "y"]),
               comments="")  # fmt: skip
    return features


def test_torchs_default_init_stalling_on_the_plateau_table_warns(workdir):
    # The settings ([10] tanh, batch 1024, lr 0.01, no standardization) with torch's draws: the loss
    # stops near 0.13 (the line's is about 2, the noise 0.01) from epoch ~50 on; 100 epochs of 157 batches
    # are as many steps as 1.6 epochs at 10^7 rows, where this table stalls the same way
    features = write_plateau_table(workdir / "data" / "plateau.csv", 200_000, coefficient_seed=4)
    params = default_params(path="data/plateau.csv", features=features, target="y", test_size=0.2)
    params["models"] = {"mlp": {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 100,
                                "batch_size": 1024, "init": "torch"}}  # fmt: skip
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 0, result.stderr
    warnings = stall_warnings(result.stderr)
    assert len(warnings) == 1 and "over the last 20 of 100 epochs" in warnings[0], result.stderr
    assert "models.mlp.init: auto (now torch)" in warnings[0] and "data.standardize: true" in warnings[0]
    history = workdir / "dvclive" / "mlp" / "plots" / "metrics" / "train" / "loss.tsv"
    losses = [float(row.split("\t")[1]) for row in history.read_text().splitlines()[1:]]
    assert 0.05 < losses[-1] < 0.2  # on the plateau: far below the first epochs, far above the noise


def test_the_seed_run_gives_no_stall_warning(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    "mlp",
    [
        {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 1000},
        {"kind": "mlp", "hidden": [10], "activation": "tanh", "lr": 0.01, "epochs": 1000,
         "early_stopping": {"validation_fraction": 0.2, "patience": 100}},
        {"kind": "mlp", "hidden": [16], "activation": "tanh", "lr": 0.003, "epochs": 500, "batch_size": 64,
         "early_stopping": {"validation_fraction": 0.2, "patience": 30}},
    ],
    ids=["plain", "early-stopping", "readme-start"],
)  # fmt: skip
def test_the_diabetes_runs_give_no_stall_warning(workdir, mlp):
    (workdir / "data" / "diabetes.csv").write_bytes((ROOT / "data" / "diabetes.csv").read_bytes())
    features = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    params = default_params(path="data/diabetes.csv", features=features, target="progression", test_size=0.2,
                            standardize=True)  # fmt: skip
    params["models"] = {"mlp": mlp}
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "train", "mlp")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_the_dvclive_loss_file_grows_while_training_runs_and_an_interrupted_run_leaves_none(workdir):
    params = default_params()
    params["models"]["mlp"].update(epochs=10_000_000)  # minutes: stopped below once rows have been written
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    history = workdir / "dvclive" / "mlp" / "plots" / "metrics" / "train" / "loss.tsv"
    process = subprocess.Popen([sys.executable, "-m", "stages.train", "mlp"], cwd=workdir, env=stage_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not history.exists() or len(history.read_text().splitlines()) < 3):
            time.sleep(0.05)
        rows = history.read_text().splitlines()
        assert process.poll() is None and rows[:2] == ["step\tloss", rows[1]] and rows[1].startswith("1\t")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and stderr.startswith("error: interrupted"), stderr
    assert not (workdir / "dvclive" / "mlp").exists() and not (workdir / "models" / "mlp.pt").exists()
