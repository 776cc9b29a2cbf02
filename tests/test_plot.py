import numpy as np

from tests.conftest import run_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_both_figures_deterministically(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    for name, shift in (("linear", 0.0), ("mlp", 0.5)):
        np.save(workdir / "predictions" / f"{name}.npy", np.arange(1.0, 11.0) * 0.7 + 3 + shift)
    assert run_module(workdir, "plot").returncode == 0
    figures = {name: (workdir / "plots" / name).read_bytes() for name in ("fit.png", "predicted_vs_actual.png")}
    assert all(data.startswith(PNG_MAGIC) for data in figures.values())
    assert b"Software" not in figures["fit.png"] and b"matplotlib" not in figures["fit.png"]
    assert run_module(workdir, "plot").returncode == 0
    assert figures == {name: (workdir / "plots" / name).read_bytes() for name in figures}


def test_plot_names_the_missing_predictions(workdir):
    assert run_module(workdir, "prepare").returncode == 0
    result = run_module(workdir, "plot")
    assert result.returncode == 2
    assert result.stderr == "error: predictions/linear.npy: missing; run `dvc repro train@linear` first\n"
