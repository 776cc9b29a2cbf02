"""train's pure parts: fitting a spec on a split, the log, the loss file."""

from __future__ import annotations

import io
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from stages.params import ModelSpec, TrainParams
from stages.prepared import Scaling, Split
from stages.train import EpochLog, coefficient_lines, fit_model, stall_warning
from tests.unit.seed_models import LINEAR, MLP, X_SEED, Y_SEED, fit_quietly

SEED_SPLIT = Split(("x",), "y", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], None)


def test_epoch_log_draws_a_progress_bar_on_a_terminal_and_plain_lines_otherwise(monkeypatch, capsys):
    spec = ModelSpec(name="m", kind="mlp", lr=0.1, epochs=4, hidden=(2,))
    plain = EpochLog(spec, log_every=2)
    for epoch in range(1, 5):
        plain(epoch, 1.0 / epoch)
    plain.close()
    out = capsys.readouterr()
    assert [line.split(",")[0] for line in out.out.splitlines()[:3]] == [
        "train@m: epoch 1/4",
        "train@m: epoch 2/4",
        "train@m: epoch 4/4",
    ]
    assert "/epoch)" in out.out and "train@m: trained in" in out.out and out.err == ""

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = EpochLog(spec, log_every=2)
    for epoch in range(1, 5):
        bar(epoch, 1.0 / epoch)
    bar.close()
    out = capsys.readouterr()
    assert "epoch 1/4" not in out.out and "4/4" in out.err and "train@m" in out.err


def test_fit_model_reaches_the_reference_line_and_describes_what_it_trained():
    said = []
    trained = fit_model(LINEAR, TrainParams(), SEED_SPLIT, "cpu", say=said.append)
    assert said[0] == trained.summary and said[1] == (
        "train@linear: 10 rows x 1 feature(s), Adam lr 0.07, full batch, 1000 epochs, float32 on cpu"
    )
    assert trained.card["coefficients"]["x"] == pytest.approx(0.709, abs=5e-4)
    assert trained.card["least_squares_mse"] == pytest.approx(1.56 / 11, rel=1e-12)
    assert len(trained.losses) == 1000 and trained.card["final_train_loss"] == trained.losses[-1]
    saved = torch.load(io.BytesIO(trained.model_bytes), weights_only=True)
    assert saved["features"] == ["x"] and saved["scaling"] is None and set(saved["state_dict"]) == {"weight", "bias"}
    w, b = trained.card["coefficients"]["x"], trained.card["coefficients"]["intercept"]
    np.testing.assert_allclose(trained.predictions, X_SEED[:, 0] * w + b, rtol=1e-6)


def test_fit_model_is_deterministic_and_predicts_train_then_test_rows():
    split = Split(("x",), "y", X_SEED[:7], Y_SEED[:7], X_SEED[7:], Y_SEED[7:], None)
    first, again = fit_quietly(MLP, split), fit_quietly(MLP, split)
    assert first.model_bytes == again.model_bytes and first.losses == again.losses
    assert len(first.predictions) == 10 and np.array_equal(first.predictions, again.predictions)
    reseeded = fit_quietly(MLP, split, TrainParams(seed=1))
    assert reseeded.model_bytes != first.model_bytes


def test_fit_model_with_scaling_reports_coefficients_and_predictions_in_original_units():
    scaling = Scaling((5.5,), (float(X_SEED.std()),), float(Y_SEED.mean()), float(Y_SEED.std()))
    split = Split(("x",), "y", X_SEED, Y_SEED, X_SEED[:0], Y_SEED[:0], scaling)
    said = []
    trained = fit_model(
        ModelSpec(name="ls", kind="linear", solver="exact"), TrainParams(), split, "cpu", say=said.append
    )
    assert trained.card["coefficients"]["x"] == pytest.approx(0.70909090909, rel=1e-9)
    assert said[1].endswith(f"; loss in standardized units (MSE / {scaling.y_std:.6g}^2)")
    assert np.mean((trained.predictions - Y_SEED) ** 2) == pytest.approx(1.56 / 11, rel=1e-9)


def test_coefficient_lines_log_the_first_20_weights_and_say_where_the_rest_are():
    coefficients = {f"f{j}": j / 10 for j in range(25)} | {"intercept": 3.0}
    lines = coefficient_lines("m", coefficients)
    assert lines[0] == "train@m: final w (f0): 0.000" and lines[19] == "train@m: final w (f19): 1.900"
    assert lines[20:] == ["train@m: ... and 5 more weights in models/m.json", "train@m: final b (intercept): 3.000"]


STALLING = ModelSpec(name="mlp", kind="mlp", lr=0.01, epochs=5, hidden=(10,), batch_size=1024, init="torch")


def test_a_flat_loss_gets_one_warning_line_with_what_to_try():
    # the run with torch's default init at 10^7 rows: stuck at 0.128 from the second epoch
    warning = stall_warning(STALLING, [0.2905, 0.1292, 0.1279, 0.1277, 0.1276], standardized=False)
    assert warning == (
        "train@mlp: warning: the training loss fell by only 0.23% over the last 2 of 5 epochs (0.1279 -> 0.1276): "
        "training may be stuck on a plateau; try models.mlp.init: auto (now torch) or another train.seed, another "
        "models.mlp.lr (now 0.01), data.standardize: true, or more epochs if it is still learning (one that has "
        "converged is flat too)"
    )
    standardized = stall_warning(replace(STALLING, init="auto", epochs=4), [3.0, 1.0, 1.0, 1.0], standardized=True)
    assert "init: torch (now auto)" in standardized and "standardize" not in standardized


@pytest.mark.parametrize(
    "losses",
    [
        [0.263, 0.062, 0.020, 0.019, 0.018],  # scikit-learn's run on the same table: still learning (10%)
        [0.3, 0.1],  # too short to tell
    ],
)
def test_a_loss_that_still_falls_gets_no_warning(losses):
    assert stall_warning(STALLING, losses, standardized=False) is None


def test_no_stall_warning_for_linear_models_or_runs_that_early_stopping_ended():
    flat = [1.0, 0.5, 0.5, 0.5, 0.5]
    assert stall_warning(STALLING, flat, standardized=False) is not None
    assert stall_warning(LINEAR, flat, standardized=False) is None
    assert stall_warning(replace(STALLING, epochs=1000), flat, standardized=False) is None  # early stopping ended it


def test_the_stall_window_is_the_last_fifth_of_a_long_run():
    falling_then_flat = [10.0 / epoch for epoch in range(1, 801)] + [0.0125] * 200
    warning = stall_warning(replace(MLP, epochs=1000), falling_then_flat, standardized=False)
    assert "over the last 200 of 1000 epochs" in warning
    assert (
        stall_warning(replace(MLP, epochs=1000), [10.0 / epoch for epoch in range(1, 1001)], standardized=False) is None
    )


def test_a_loss_that_rose_at_the_end_is_flat_too_and_says_so():
    warning = stall_warning(STALLING, [0.3, 0.13, 0.128, 0.129, 0.13], standardized=False)
    assert "the training loss rose by 1.56% over the last 2 of 5 epochs (0.128 -> 0.13)" in warning
