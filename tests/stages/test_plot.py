"""The plot stage as dvc runs it: what it reads from train's outputs, what it writes, what it refuses."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np

from stages.plot import SCATTER_LIMIT
from tests.helpers import default_params, run_module, write_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def trained(workdir, predictions: dict[str, np.ndarray]) -> None:
    """Prediction, importance and DVCLive's loss files as train leaves them, for the models named."""
    (workdir / "predictions").mkdir(parents=True, exist_ok=True)
    for name, values in predictions.items():
        np.save(workdir / "predictions" / f"{name}.npy", np.asarray(values, dtype=np.float64))
        importance = {"split": "train", "rows": 10, "repeats": 5, "mse": 1.0, "mse_increase": {"x": 2.0},
                      "mse_increase_std": {"x": 0.5}}  # fmt: skip
        curve = {"x": {"kind": "numeric", "grid": [1.0, 10.0], "mean": [3.0, 9.0]}}
        (workdir / "predictions" / f"{name}.importance.json").write_text(
            json.dumps({"importance": importance, "partial_dependence": curve})
        )
        losses = workdir / "dvclive" / name / "plots" / "metrics" / "train" / "loss.tsv"
        losses.parent.mkdir(parents=True, exist_ok=True)
        losses.write_text(f"step\tloss\n1\t{len(name)}.5\n2\t0.25\n")


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


def test_plot_names_the_missing_predictions_and_losses(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "plot")
    assert result.returncode == 2
    assert result.stderr == "error: predictions/linear.npy: missing; run `dvc repro train@linear` first\n"
    trained(workdir, {"linear": np.zeros(10), "mlp": np.zeros(10)})
    (workdir / "dvclive" / "mlp" / "plots" / "metrics" / "train" / "loss.tsv").unlink()
    result = run_module(workdir, "plot")
    assert (
        result.stderr == "error: dvclive/mlp/plots/metrics/train/loss.tsv: missing; run `dvc repro train@mlp` first\n"
    )


def test_plot_draws_a_density_past_the_scatter_limit_deterministically(workdir):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, size=SCATTER_LIMIT + 1000)
    (workdir / "data" / "seed.csv").write_text("x,y\n" + "".join(f"{a!r},{2 * a + 1!r}\n" for a in x.tolist()))
    assert run_module(workdir, "prepare").returncode == 0
    trained(
        workdir,
        {name: 2 * x + 1 + rng.normal(scale=noise, size=len(x)) for name, noise in (("linear", 0.5), ("mlp", 0.1))},
    )
    # prepare writes the train rows then the test rows; the predictions only need the same count here
    result = run_module(workdir, "plot")
    assert result.returncode == 0, result.stderr
    first = (workdir / "plots" / "predicted_vs_actual.png").read_bytes()
    assert first.startswith(PNG_MAGIC)
    assert run_module(workdir, "plot").returncode == 0
    assert (workdir / "plots" / "predicted_vs_actual.png").read_bytes() == first


def test_plot_refuses_outputs_of_no_current_model(workdir):
    # plot depends on the whole predictions/ and dvclive/ folders: a leftover would be hashed into dvc.lock
    assert run_module(workdir, "prepare").returncode == 0
    trained(workdir, dict.fromkeys(("linear", "mlp", "old model", "gone"), np.arange(1.0, 11.0)))
    (workdir / "predictions" / ".gitignore").write_text("/linear.npy\n/mlp.npy\n")
    shutil.rmtree(workdir / "dvclive" / "old model")
    result = run_module(workdir, "plot")
    assert result.returncode == 2 and not (workdir / "plots" / "fit.png").exists()
    assert result.stderr == (
        "error: dvclive/gone predictions/gone.importance.json predictions/gone.npy 'predictions/old "
        "model.importance.json' 'predictions/old model.npy': not the output of a model in params.yaml (linear, "
        "mlp); delete them (rm -r dvclive/gone predictions/gone.importance.json predictions/gone.npy "
        "'predictions/old model.importance.json' 'predictions/old model.npy'): this stage depends on the whole "
        "predictions/ and dvclive/ folders, so a leftover would make dvc.lock differ from a clean checkout\n"
    )
    shutil.rmtree(workdir / "dvclive" / "gone")
    for leftover in ("gone.npy", "gone.importance.json", "old model.npy", "old model.importance.json"):
        (workdir / "predictions" / leftover).unlink()
    assert run_module(workdir, "plot").returncode == 0


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
