"""The plot stage as dvc runs it: what it reads from train's outputs, what it writes, what it refuses."""

from __future__ import annotations

import json
import struct

import numpy as np

from tests.helpers import default_params, run_module, write_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trained(workdir, predictions: dict[str, np.ndarray]) -> None:
    """The files plot reads, as train and evaluate leave them for the models named: the predicted-vs-actual
    sample, the metrics with importance and partial dependence, DVCLive's loss per epoch (every row of the
    seed data a training row, x = 1..10)."""
    for folder in ("plots/predicted", "metrics"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    for name, values in predictions.items():
        rows = [
            f"train,{y!r},{float(p)!r},{float(x)!r}" for x, (y, p) in enumerate(zip(Y, values, strict=True), start=1)
        ]
        (workdir / "plots" / "predicted" / f"{name}.csv").write_text(
            "split,actual,predicted,x\n" + "\n".join(rows) + "\n"
        )
        importance = {"split": "train", "rows": 10, "repeats": 5, "mse": 1.0, "mse_increase": {"x": 2.0},
                      "mse_increase_std": {"x": 0.5}}  # fmt: skip
        curve = {"x": {"grid": [1.0, 10.0], "mean": [3.0, 9.0]}}
        metrics = {"train": {"mse": 1.0}, "importance": importance, "partial_dependence": curve}
        (workdir / "metrics" / f"{name}.json").write_text(json.dumps(metrics))
        losses = workdir / "dvclive" / name / "plots" / "metrics" / "train" / "loss.tsv"
        losses.parent.mkdir(parents=True, exist_ok=True)
        losses.write_text(f"step\tloss\n1\t{len(name)}.5\n2\t0.25\n")


Y = [3.0, 5.0, 5.0, 6.0, 7.0, 7.0, 8.0, 9.0, 9.0, 10.0]


def test_plot_draws_both_figures_deterministically(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    trained(workdir, {name: np.arange(1.0, 11.0) * 0.7 + 3 + shift for name, shift in (("linear", 0.0), ("mlp", 0.5))})
    result = run_module(workdir, "plot")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "plot: wrote plots/fit.png, plots/predicted_vs_actual.png, plots/residuals.png, plots/importance.png and "
        "plots/losses.csv\n"
    )
    assert (workdir / "plots" / "losses.csv").read_text() == (
        "model,epoch,loss\nlinear,1,6.5\nlinear,2,0.25\nmlp,1,3.5\nmlp,2,0.25\n"
    )
    names = ("fit.png", "predicted_vs_actual.png", "residuals.png", "importance.png")
    figures = {name: (workdir / "plots" / name).read_bytes() for name in names}
    assert all(data.startswith(PNG_MAGIC) for data in figures.values())
    assert b"Software" not in figures["fit.png"] and b"matplotlib" not in figures["fit.png"]
    assert run_module(workdir, "plot").returncode == 0
    assert figures == {name: (workdir / "plots" / name).read_bytes() for name in figures}


def test_plot_names_the_missing_sample_and_losses(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "plot")
    assert result.returncode == 2
    assert result.stderr == "error: plots/predicted/linear.csv: missing; run `dvc repro evaluate@linear` first\n"
    trained(workdir, {"linear": np.zeros(10), "mlp": np.zeros(10)})
    (workdir / "dvclive" / "mlp" / "plots" / "metrics" / "train" / "loss.tsv").unlink()
    result = run_module(workdir, "plot")
    assert (
        result.stderr == "error: dvclive/mlp/plots/metrics/train/loss.tsv: missing; run `dvc repro train@mlp` first\n"
    )


def test_the_files_of_a_model_no_longer_in_params_are_left_alone_and_unread(workdir):
    # plot depends on the whole metrics/, plots/predicted/ and dvclive/ folders, in git: a removed model's
    # files stay, committed, and a fresh clone hashes the folders the same
    assert run_module(workdir, "prepare").returncode == 0
    trained(workdir, dict.fromkeys(("linear", "mlp"), np.arange(1.0, 11.0)))
    assert run_module(workdir, "plot").returncode == 0
    figures = {name: (workdir / "plots" / name).read_bytes() for name in ("predicted_vs_actual.png", "losses.csv")}
    trained(workdir, {"gone": np.zeros(10)})
    assert run_module(workdir, "plot").returncode == 0
    assert figures == {name: (workdir / "plots" / name).read_bytes() for name in figures}
    assert (workdir / "metrics" / "gone.json").exists() and (workdir / "dvclive" / "gone").exists()


def test_many_models_are_drawn_in_rows_of_four_panels(workdir):
    params = default_params()
    params["models"] = {f"m{i}": {"kind": "linear", "solver": "exact"} for i in range(6)}
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    trained(workdir, {f"m{i}": np.arange(1.0, 11.0) * 0.7 + 3 + i / 10 for i in range(6)})
    assert run_module(workdir, "plot").returncode == 0
    png = (workdir / "plots" / "predicted_vs_actual.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the PNG header: 4.2 inches per panel at 100 dpi
    assert (width, height) == (4 * 420, 2 * 420)
