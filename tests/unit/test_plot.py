"""plot's pure functions: the figures and the loss overlay."""

from __future__ import annotations

import numpy as np

from stages import paths
from stages.plot import draw, overlay_losses, read_losses
from tests.unit.seed_models import X_SEED, Y_SEED

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
    """A model's importance and partial dependence as evaluate writes them into metrics/<name>.json."""
    return {
        "importance": {"split": "train", "rows": 10, "repeats": 5, "mse": 1.0,
                       "mse_increase": dict(zip(columns, increase, strict=True)),
                       "mse_increase_std": dict.fromkeys(columns, 0.1)},
        "partial_dependence": {columns[0]: {"grid": [1.0, 2.0], "mean": [3.0, 4.0]}},
    }  # fmt: skip


def sample(predicted: np.ndarray, x: np.ndarray | None = X_SEED[:, 0]) -> dict:
    """evaluate's sample of a model: every seed row as training rows."""
    part = {"actual": Y_SEED, "predicted": predicted}
    return {"train": part | ({"x": x} if x is not None else {})}


def test_draw_gives_the_same_png_bytes_twice_without_the_software_tag():
    samples = {"linear": sample(X_SEED[:, 0] * 0.7 + 3), "mlp": sample(X_SEED[:, 0] * 0.7 + 3.5)}
    importance = {"linear": found(["x"], [8.0]), "mlp": found(["x"], [7.0])}
    figures = draw(("x",), "y", samples, importance)
    assert set(figures) == {paths.FIT_FIGURE, paths.PREDICTED_FIGURE, paths.RESIDUALS_FIGURE, paths.IMPORTANCE_FIGURE}
    assert all(data.startswith(PNG_MAGIC) for data in figures.values()) and len(set(figures.values())) == 4
    assert all(b"Software" not in data and b"matplotlib" not in data for data in figures.values())
    assert draw(("x",), "y", samples, importance) == figures
    several = {name: sample(part["train"]["predicted"], None) for name, part in samples.items()}
    importance = {name: found(["z", "x"], [5.0, 1.0]) for name in samples}
    drawn = draw(("x", "z"), "y", several, importance)
    # no curve to draw over two features: the partial dependence on the most important column instead
    assert (
        drawn[paths.FIT_FIGURE] != figures[paths.FIT_FIGURE]
        and drawn[paths.FIT_FIGURE] != drawn[paths.PREDICTED_FIGURE]
    )


def test_a_text_columns_dependence_is_drawn_over_its_categories():
    importance = found(["c"], [2.0]) | {"partial_dependence": {"c": {"grid": ["a", "b"], "mean": [1.0, 3.0]}}}
    figures = draw(("c=a", "c=b"), "y", {"linear": sample(Y_SEED, None)}, {"linear": importance})
    assert figures[paths.FIT_FIGURE].startswith(PNG_MAGIC)


def test_a_dollar_in_a_column_name_is_drawn_as_it_is_not_as_mathtext():
    names = ("cost_$_per_$_unit",)
    figures = draw(names, "price $", {"linear": sample(X_SEED[:, 0])}, {"linear": found(list(names), [1.0])})
    assert all(data.startswith(PNG_MAGIC) for data in figures.values())
