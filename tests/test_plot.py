import struct

import numpy as np

from stages.plot import SCATTER_LIMIT, density
from tests.conftest import default_params, run_module, write_params

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


def test_density_counts_every_row_in_the_bin_numpy_puts_it():
    rng = np.random.default_rng(8)
    actual = rng.normal(size=50_000)
    predicted = actual * 0.8 + rng.normal(scale=0.3, size=50_000)
    counts, x_edges, y_edges = density(actual, predicted, bins=40)
    expected, *_ = np.histogram2d(actual, predicted, bins=[x_edges, y_edges])
    assert counts.sum() == 50_000 and np.array_equal(counts, expected)
    in_blocks, *_ = density(actual, predicted, bins=40, block_rows=999)  # blocks change nothing
    assert np.array_equal(in_blocks, counts)


def test_density_of_constant_predictions_is_one_row_of_bins():
    counts, _, y_edges = density(np.arange(100.0), np.full(100, 3.0), bins=10)
    assert counts.sum() == 100 and np.count_nonzero(counts.sum(axis=0)) == 1
    assert y_edges[0] < 3.0 < y_edges[-1]


def test_plot_draws_a_density_past_the_scatter_limit_deterministically(workdir):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, size=SCATTER_LIMIT + 1000)
    (workdir / "data" / "seed.csv").write_text("x,y\n" + "".join(f"{a!r},{2 * a + 1!r}\n" for a in x.tolist()))
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    for name, noise in (("linear", 0.5), ("mlp", 0.1)):
        np.save(workdir / "predictions" / f"{name}.npy", 2 * x + 1 + rng.normal(scale=noise, size=len(x)))
    # prepare writes the train rows then the test rows; the predictions only need the same count here
    result = run_module(workdir, "plot")
    assert result.returncode == 0, result.stderr
    first = (workdir / "plots" / "predicted_vs_actual.png").read_bytes()
    assert first.startswith(PNG_MAGIC)
    assert run_module(workdir, "plot").returncode == 0
    assert (workdir / "plots" / "predicted_vs_actual.png").read_bytes() == first


def test_plot_refuses_predictions_of_no_current_model(workdir):
    # plot depends on the whole predictions/ folder: a leftover file would be hashed into dvc.lock
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    for name in ("linear", "mlp", "old model", "gone"):
        np.save(workdir / "predictions" / f"{name}.npy", np.arange(1.0, 11.0))
    (workdir / "predictions" / ".gitignore").write_text("/linear.npy\n/mlp.npy\n")
    result = run_module(workdir, "plot")
    assert result.returncode == 2 and not (workdir / "plots").exists()
    assert result.stderr == (
        "error: predictions/gone.npy 'predictions/old model.npy': not the predictions of a model in params.yaml "
        "(linear, mlp); delete them (rm -r predictions/gone.npy 'predictions/old model.npy'): this stage depends "
        "on the whole predictions/ folder, so a leftover would make dvc.lock differ from a clean checkout\n"
    )
    for name in ("gone", "old model"):
        (workdir / "predictions" / f"{name}.npy").unlink()
    assert run_module(workdir, "plot").returncode == 0


def test_many_models_are_drawn_in_rows_of_four_panels(workdir):
    params = default_params()
    params["models"] = {f"m{i}": {"kind": "linear", "solver": "exact"} for i in range(6)}
    write_params(workdir, params)
    assert run_module(workdir, "prepare").returncode == 0
    (workdir / "predictions").mkdir()
    for i in range(6):
        np.save(workdir / "predictions" / f"m{i}.npy", np.arange(1.0, 11.0) * 0.7 + 3 + i / 10)
    assert run_module(workdir, "plot").returncode == 0
    png = (workdir / "plots" / "predicted_vs_actual.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the PNG header: 4.2 inches per panel at 100 dpi
    assert (width, height) == (4 * 420, 2 * 420)
