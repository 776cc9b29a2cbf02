"""plot's pure functions: the density grid, the figures, the loss overlay, leftovers."""

from __future__ import annotations

import numpy as np

from stages.plot import density, draw, leftover_files, overlay_losses
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
    losses = {"mlp": "epoch,loss\n1,5.0\n2,4.0\n", "linear": "epoch,loss\n1,3.0\n"}
    assert overlay_losses(losses) == "model,epoch,loss\nmlp,1,5.0\nmlp,2,4.0\nlinear,1,3.0\n"


def test_overlay_leaves_a_column_one_model_lacks_empty():
    losses = {"a": "epoch,loss,validation_loss\n1,5.0,6.0\n", "b": "epoch,loss\n1,3.0\n"}
    assert overlay_losses(losses).splitlines() == ["model,epoch,loss,validation_loss", "a,1,5.0,6.0", "b,1,3.0,"]


def test_draw_gives_the_same_png_bytes_twice_without_the_software_tag():
    split = Split(("x",), "y", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], None)
    predictions = {"linear": X_SEED[:, 0] * 0.7 + 3, "mlp": X_SEED[:, 0] * 0.7 + 3.5}
    fit, predicted = draw(split, predictions)
    assert fit.startswith(PNG_MAGIC) and predicted.startswith(PNG_MAGIC) and fit != predicted
    assert b"Software" not in fit and b"matplotlib" not in fit
    assert draw(split, predictions) == (fit, predicted)
    several = Split(("x", "z"), "y", np.column_stack([X_SEED, X_SEED]), Y_SEED, np.zeros((0, 2)), Y_SEED[:0], None)
    fit, predicted = draw(several, predictions)
    assert fit == predicted  # no curve to draw over two features: the fit figure is predicted vs actual


def test_leftovers_are_the_files_of_models_no_longer_in_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder, suffix in (("predictions", "npy"), ("plots/loss", "csv")):
        (tmp_path / folder).mkdir(parents=True)
        for name in ("linear", "gone"):
            (tmp_path / folder / f"{name}.{suffix}").write_text("")
    (tmp_path / "predictions" / ".gitignore").write_text("/linear.npy\n")
    assert [str(p) for p in leftover_files(["linear"])] == ["plots/loss/gone.csv", "predictions/gone.npy"]
    assert leftover_files(["linear", "gone"]) == []
