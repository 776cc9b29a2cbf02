"""plot's pure functions: the density grid, the figures, the loss overlay, leftovers."""

from __future__ import annotations

import numpy as np

from stages import paths
from stages.plot import density, draw, leftover_files, overlay_losses, read_losses
from stages.prepared import Split
from tests.unit.seed_models import X_SEED, Y_SEED

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_overlay_puts_every_models_losses_in_one_long_table_in_params_order():
    losses = {"mlp": {"epoch": ["1", "2"], "loss": ["5.0", "4.0"]}, "linear": {"epoch": ["1"], "loss": ["3.0"]}}
    assert overlay_losses(losses) == "model,epoch,loss\nmlp,1,5.0\nmlp,2,4.0\nlinear,1,3.0\n"


def test_overlay_leaves_a_column_one_model_lacks_empty():
    losses = {
        "a": {"epoch": ["1"], "loss": ["5.0"], "validation_loss": ["6.0"]},
        "b": {"epoch": ["1"], "loss": ["3.0"]},
    }
    assert overlay_losses(losses).splitlines() == ["model,epoch,loss,validation_loss", "a,1,5.0,6.0", "b,1,3.0,"]


def test_overlay_keeps_every_epoch_up_to_the_limit_then_every_kth_and_the_last():
    epochs = [str(i) for i in range(1, 5002)]
    long = overlay_losses({"m": {"epoch": epochs, "loss": epochs}}, limit=2000).splitlines()
    assert long[1] == "m,1,1" and long[2] == "m,4,4" and long[-1] == "m,5001,5001" and len(long) == 1 + 1668


def test_losses_are_read_from_what_dvclive_wrote(tmp_path, monkeypatch):
    from dvclive import Live

    monkeypatch.chdir(tmp_path)
    live = Live("dvclive/m", dvcyaml=False, save_dvc_exp=False, report=None)
    for epoch, (loss, validation) in enumerate([(0.5, 0.7), (0.25, 0.375)], start=1):
        live.step = epoch
        live.log_metric("train/loss", loss)
        live.log_metric("validation/loss", validation)
    live.end()
    assert read_losses("m") == {"epoch": ["1", "2"], "loss": ["0.5", "0.25"], "validation_loss": ["0.7", "0.375"]}


def found(columns: list[str], increase: list[float]) -> dict:
    """A model's importance and partial dependence as train writes them (predictions/<name>.importance.json)."""
    return {
        "importance": {"split": "train", "rows": 10, "repeats": 5, "mse": 1.0,
                       "mse_increase": dict(zip(columns, increase, strict=True)),
                       "mse_increase_std": dict.fromkeys(columns, 0.1)},
        "partial_dependence": {columns[0]: {"kind": "numeric", "grid": [1.0, 2.0], "mean": [3.0, 4.0]}},
    }  # fmt: skip


def test_draw_gives_the_same_png_bytes_twice_without_the_software_tag():
    split = Split(("x",), "y", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], None)
    predictions = {"linear": X_SEED[:, 0] * 0.7 + 3, "mlp": X_SEED[:, 0] * 0.7 + 3.5}
    importance = {"linear": found(["x"], [8.0]), "mlp": found(["x"], [7.0])}
    figures = draw(split, predictions, importance)
    assert set(figures) == {paths.FIT_FIGURE, paths.PREDICTED_FIGURE, paths.RESIDUALS_FIGURE, paths.IMPORTANCE_FIGURE}
    assert all(data.startswith(PNG_MAGIC) for data in figures.values()) and len(set(figures.values())) == 4
    assert all(b"Software" not in data and b"matplotlib" not in data for data in figures.values())
    assert draw(split, predictions, importance) == figures
    several = Split(("x", "z"), "y", np.column_stack([X_SEED, X_SEED]), Y_SEED, np.zeros((0, 2)), Y_SEED[:0], None)
    importance = {name: found(["z", "x"], [5.0, 1.0]) for name in predictions}
    drawn = draw(several, predictions, importance)
    # no curve to draw over two features: the partial dependence on the most important column instead
    assert (
        drawn[paths.FIT_FIGURE] != figures[paths.FIT_FIGURE]
        and drawn[paths.FIT_FIGURE] != drawn[paths.PREDICTED_FIGURE]
    )


def test_a_dollar_in_a_column_name_is_drawn_as_it_is_not_as_mathtext():
    names = ("cost_$_per_$_unit",)
    split = Split(names, "price $", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], None)
    figures = draw(split, {"linear": X_SEED[:, 0]}, {"linear": found(list(names), [1.0])})
    assert all(data.startswith(PNG_MAGIC) for data in figures.values())


def test_leftovers_are_the_files_of_models_no_longer_in_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("linear", "gone"):
        (tmp_path / "dvclive" / name).mkdir(parents=True)
        (tmp_path / "predictions").mkdir(exist_ok=True)
        (tmp_path / "predictions" / f"{name}.npy").write_text("")
    (tmp_path / "dvclive" / "gone" / "plots").mkdir()
    (tmp_path / "dvclive" / "gone" / "plots" / "x.tsv").write_text("")
    (tmp_path / "dvclive" / "emptied" / "plots").mkdir(parents=True)  # what dvc checkout leaves: no file
    (tmp_path / "predictions" / ".gitignore").write_text("/linear.npy\n")
    assert [str(p) for p in leftover_files(["linear"])] == ["dvclive/gone", "predictions/gone.npy"]
